"""`tui-gpt plot RUN`: the loss curves (and perplexity) of a run, drawn in the terminal."""

from __future__ import annotations

import argparse
import shutil
import sys

from tui_gpt.charts import LossHistory, loss_chart
from tui_gpt.commands.common import add_run_dir, runs_root
from tui_gpt.core.runs import find_run


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="plot a run's losses and perplexity in the terminal",
        description="Training and validation loss against epochs and tokens seen, then perplexity.",
    )
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or folder")
    p.add_argument("--width", type=int, help="columns (default: the terminal's)")
    p.add_argument("--height", type=int, default=18, help="rows per chart (default 18)")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    history = LossHistory()
    for event in find_run(args.run, runs_root(args)).typed_events():
        history.add_event(event)
    width = args.width or shutil.get_terminal_size((100, 24)).columns
    color = sys.stdout.isatty()
    print(loss_chart(history, width, args.height, color=color))
    print(loss_chart(history, width, args.height, perplexity=True, color=color))
    return 0
