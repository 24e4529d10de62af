"""`tui-gpt runs`: every run with its status, size and best validation loss."""

from __future__ import annotations

import argparse
import time

from tui_gpt.commands.common import add_run_dir, print_json, runs_root
from tui_gpt.core.runs import list_runs


def add_parser(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="list training runs",
        description="List the runs in the run folder, newest first.",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    add_run_dir(p)
    p.set_defaults(func=run)


def _params(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def run(args: argparse.Namespace) -> int:
    root = runs_root(args)
    found = list_runs(root)
    if args.json:
        print_json([r.to_dict() for r in found])
        return 0
    if not found:
        print(f"no runs in {root}")
        return 0
    rows = [("ID", "CREATED", "DATASET", "PRESET", "PARAMS", "STEPS", "BEST VAL", "STATE")]
    for r in found:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)) if r.created else "-"
        best = f"{r.best_val_loss:.3f}" if r.best_val_loss is not None else "-"
        status = r.describe()
        rows.append(
            (r.id, created, r.dataset[:24], r.preset, _params(r.params), str(r.steps), best, status)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )
    print(f"\n{len(found)} run(s) in {root}")
    return 0
