"""`tui-gpt runs`: every run with its state, size and best validation loss; `runs show RUN`
for one run's facts and settings; `runs label RUN TEXT` to name it."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import get_args

from tui_gpt.commands.common import add_run_dir, print_json, runs_dir
from tui_gpt.core.events import count
from tui_gpt.core.experiments import short_count
from tui_gpt.core.runs import RunSummary, State, find_run, list_runs, matching, set_label


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
    root = runs_dir(args)
    found = matching(list_runs(root), args.label, args.dataset, args.state)
    if args.json:
        print_json([r.to_dict() for r in found])
        return 0
    if not found:
        print(f"no runs in {root}" + (" match" if args.label or args.dataset or args.state else ""))
        return 0
    for line in runs_table(found, _terminal_columns()):
        print(line)
    print(f"\n{count(len(found), 'run')} in {root}")
    return 0


def _terminal_columns() -> int:
    """The terminal's width; 0 (no limit) where the output goes to a pipe or a file, so
    that a script's `grep` sees every column (scripts should read `--json`)."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return shutil.get_terminal_size((100, 24)).columns
    return 0


# Left out in this order, one at a time, until the table fits the terminal.
_DROPPABLE = ("CREATED", "PARAMS", "PRESET", "BEST VAL")


def runs_table(found: list[RunSummary], columns: int = 0) -> list[str]:
    """`tui-gpt runs` as lines: ids cut to their shortest unique prefix (which every verb
    takes), the label column only where a run has one, and at `columns` wide the state in
    a word and the least needed columns dropped until the table fits."""
    names = short_ids([r.id for r in found])
    table: dict[str, list[str]] = {"ID": names}
    if any(r.label for r in found):
        table["LABEL"] = [r.label or "-" for r in found]
    table["CREATED"] = [
        time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)) if r.created else "-"
        for r in found
    ]
    table["DATASET"] = [r.dataset[:24] for r in found]
    table["PRESET"] = [r.preset for r in found]
    table["PARAMS"] = [short_count(r.params) for r in found]
    table["STEPS"] = [f"{r.steps:,}" for r in found]
    table["BEST VAL"] = [f"{r.best_val_loss:.3f}" if r.best_val_loss is not None else "-"
                         for r in found]  # fmt: skip
    table["BITS/B"] = [f"{r.best_val_bpb:.3f}" if r.best_val_bpb is not None else "-"
                       for r in found]  # fmt: skip
    table["STATE"] = [r.describe() for r in found]

    def lines() -> list[str]:
        heads = list(table)
        widths = [max(len(h), *(len(v) for v in table[h])) for h in heads[:-1]]
        out = []
        for i in range(-1, len(found)):
            cells = [h if i < 0 else table[h][i] for h in heads]
            out.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))
                       + "  " + cells[-1])  # fmt: skip
        return out

    if columns:

        def excess() -> int:
            return max(len(line) for line in lines()) - columns

        if excess() > 0:
            table["STATE"] = [r.brief() for r in found]
        for head in _DROPPABLE:
            if excess() <= 0:
                break
            table.pop(head)
        if excess() > 0:  # then the dataset names, cut (to 8 characters at the least)
            keep = max(8, max(map(len, table["DATASET"])) - excess())
            table["DATASET"] = [d[:keep] for d in table["DATASET"]]
    return lines()


def short_ids(ids: list[str], least: int = 15) -> list[str]:
    """Each id cut to the shortest prefix of at least `least` characters that no other id
    shares (the date and time a run began, where that is unique)."""
    out = []
    for run_id in ids:
        cut = least
        while cut < len(run_id) and any(o != run_id and o.startswith(run_id[:cut]) for o in ids):
            cut += 1
        out.append(run_id[:cut])
    return out


def run_show(args: argparse.Namespace) -> int:
    from tui_gpt.core.experiments import describe, details

    d = details(find_run(args.run, runs_dir(args)))
    if args.json:
        print_json(d.to_dict())
        return 0
    for line in describe(d):
        print(line)
    return 0


def run_label(args: argparse.Namespace) -> int:
    target = find_run(args.run, runs_dir(args))
    set_label(target, args.text)
    print(
        f"run {target.id}: label {args.text!r}"
        if args.text.strip()
        else f"run {target.id}: no label"
    )
    return 0
