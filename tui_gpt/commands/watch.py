"""`tui-gpt watch RUN`: the dashboard attached to a run folder, following its events."""

from __future__ import annotations

import argparse

from tui_gpt.commands.common import add_run_dir, open_app, runs_dir
from tui_gpt.core.runs import find_run


def add_parser(sub) -> None:
    p = sub.add_parser(
        "watch",
        help="open the dashboard of a run (live or finished)",
        description="Open the training dashboard on a run folder and follow its events as they are "
        "appended, e.g. a run started with `tui-gpt train` in another terminal.",
    )
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or folder")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return open_app(runs_dir(args), watch=find_run(args.run, runs_dir(args)))
