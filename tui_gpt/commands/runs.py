"""`tui-gpt runs`: every run with its state, size and best validation loss; `runs show RUN`
for one run's facts and settings; `runs label RUN TEXT` to name it."""

from __future__ import annotations

import argparse
import time
from typing import get_args

from tui_gpt.commands.common import add_run_dir, print_json, runs_root
from tui_gpt.core.events import count
from tui_gpt.core.experiments import short_count
from tui_gpt.core.runs import State, find_run, list_runs, matching, set_label


def add_parser(sub) -> None:
    p = sub.add_parser(
        "runs",
        help="list runs; show one (runs show RUN); name one (runs label RUN TEXT)",
        description="List the runs in the run folder, newest first, optionally filtered.",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.add_argument("--label", default="", help="only runs whose label contains this")
    p.add_argument("--dataset", default="", help="only runs whose dataset name contains this")
    p.add_argument("--state", default="", choices=get_args(State), metavar="STATE",
                   help=f"only runs in this state: {', '.join(get_args(State))}")  # fmt: skip
    add_run_dir(p)
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="one run's facts and settings")
    show.add_argument("run", metavar="RUN", help="run id, unique prefix, or folder")
    show.add_argument("--json", action="store_true", help="print them as JSON")
    add_run_dir(show)
    show.set_defaults(func=run_show)
    label = actions.add_parser("label", help="name or tag a run")
    label.add_argument("run", metavar="RUN", help="run id, unique prefix, or folder")
    label.add_argument("text", metavar="TEXT", help="the label (empty to remove it)")
    add_run_dir(label)
    label.set_defaults(func=run_label)


def run(args: argparse.Namespace) -> int:
    root = runs_root(args)
    found = matching(list_runs(root), args.label, args.dataset, args.state)
    if args.json:
        print_json([r.to_dict() for r in found])
        return 0
    if not found:
        print(f"no runs in {root}" + (" match" if args.label or args.dataset or args.state else ""))
        return 0
    rows = [
        (
            "ID",
            "LABEL",
            "CREATED",
            "DATASET",
            "PRESET",
            "PARAMS",
            "STEPS",
            "BEST VAL",
            "BITS/B",
            "STATE",
        )
    ]
    for r in found:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)) if r.created else "-"
        best = f"{r.best_val_loss:.3f}" if r.best_val_loss is not None else "-"
        bpb = f"{r.best_val_bpb:.3f}" if r.best_val_bpb is not None else "-"
        rows.append((r.id, r.label or "-", created, r.dataset[:24], r.preset, short_count(r.params),
                     str(r.steps), best, bpb, r.describe()))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    print(f"\n{count(len(found), 'run')} in {root}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from tui_gpt.core.experiments import describe, details

    d = details(find_run(args.run, runs_root(args)))
    if args.json:
        print_json(d.to_dict())
        return 0
    for line in describe(d):
        print(line)
    return 0


def run_label(args: argparse.Namespace) -> int:
    target = find_run(args.run, runs_root(args))
    set_label(target, args.text)
    print(
        f"run {target.id}: label {args.text!r}"
        if args.text.strip()
        else f"run {target.id}: no label"
    )
    return 0
