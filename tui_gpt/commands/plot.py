"""`tui-gpt plot RUN [RUN...]`: loss curves in the terminal, or to a file (.csv rows of every
evaluation; .png / .svg / .pdf images through matplotlib)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tui_gpt.commands.common import add_chart_args, add_run_dir, runs_dir

FORMATS = (".csv", ".png", ".svg", ".pdf")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="plot runs' losses in the terminal, or write them as CSV / PNG / SVG / PDF",
        description="One run: training and validation loss against epochs and tokens seen, "
        "then perplexity. Several runs: their validation curves overlaid. --output writes "
        "a file instead: .csv (one row per evaluation) or an image (needs tui-gpt[plots]).",
    )
    add_chart_args(p)
    p.add_argument("--output", metavar="FILE", help=f"write to FILE ({', '.join(FORMATS)})")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.charts import LossHistory, check_size, compare_chart, loss_chart, save_figure
    from tui_gpt.core.errors import TuiGptError
    from tui_gpt.core.events import count
    from tui_gpt.core.experiments import details, undamaged, write_csv
    from tui_gpt.core.runs import find_run

    found = [undamaged(find_run(ref, runs_dir(args))) for ref in args.runs]
    if args.output:
        suffix = Path(args.output).suffix.lower()
        if suffix not in FORMATS:
            raise TuiGptError(
                f"--output: {suffix or 'no suffix'}; write one of {', '.join(FORMATS)}"
            )
        runs = [details(r) for r in found]
        if suffix == ".csv":
            try:
                rows = write_csv(runs, Path(args.output))
            except OSError as exc:
                raise TuiGptError(f"cannot write {args.output}: {exc.strerror or exc}") from None
            print(f"wrote {count(rows, 'evaluation')} of {count(len(runs), 'run')} to {args.output}")
        else:
            save_figure(runs, args.output, args.x)
            print(f"wrote {args.output}")
        return 0
    width = args.width or shutil.get_terminal_size((100, 24)).columns
    check_size(width, args.height)
    color = sys.stdout.isatty()
    if len(found) > 1:
        print(compare_chart([details(r) for r in found], args.x, width, args.height, True, color))
        return 0
    history = LossHistory()
    for event in found[0].typed_events():
        history.add_event(event)
    print(loss_chart(history, width, args.height, color=color))
    print(loss_chart(history, width, args.height, "perplexity", color=color))
    if history.has_bpb:
        print(loss_chart(history, width, args.height, "bpb", color=color))
    return 0
