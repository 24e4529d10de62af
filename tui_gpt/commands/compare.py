"""`tui-gpt compare RUN RUN...`: validation curves overlaid, the settings that differ, and
each run's best validation loss, time to it and speed."""

from __future__ import annotations

import argparse
import shutil
import sys

from tui_gpt.commands.common import add_chart_args, add_run_dir, print_json, runs_dir


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare runs: curves overlaid, settings that differ, best values",
        description="Overlay the validation curves of several runs and list only the settings "
        "that differ between them, with each run's best validation loss, the training time to "
        "reach it and its tokens/s.",
    )
    add_chart_args(p)
    p.add_argument("--train", action="store_true", help="draw the training curves too")
    p.add_argument("--json", action="store_true", help="runs, differing settings, best values")
    add_run_dir(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui_gpt.charts import check_size, compare_chart
    from tui_gpt.core.errors import TuiGptError
    from tui_gpt.core.experiments import comparison_rows, details, differing, undamaged
    from tui_gpt.core.runs import find_run

    found = [details(undamaged(find_run(ref, runs_dir(args)))) for ref in args.runs]
    if len({r.path for r in found}) < 2:
        raise TuiGptError("compare needs at least two different runs")
    if args.json:
        print_json({
            "runs": [r.to_dict(with_curve=True) for r in found],
            "differing": differing(found),
        })  # fmt: skip
        return 0
    width = args.width or shutil.get_terminal_size((100, 24)).columns
    check_size(width, args.height)
    print(compare_chart(found, args.x, width, args.height, args.train, color=sys.stdout.isatty()))
    rows = comparison_rows(found)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0
