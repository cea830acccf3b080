#!/usr/bin/env python3
"""Run the pycompose benchmarks side by side with the reference tools.

    python benchmarks/run.py [--quick] [--only NAME[,NAME...]] [--json FILE] [--list]

Prints a table (rich when available, plain otherwise) with the median, the
range and the ratio to each figure's baseline tool, and with ``--json`` writes
``{"figure": {"tool": median, ...}, ...}``.  ``--only`` takes figure or group
names; with ``--json`` it updates those figures in an existing file and keeps
the others.  Tools that are not installed are left out, never estimated.
Inputs are generated in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import GROUPS  # noqa: E402
from benchmarks.harness import (  # noqa: E402
    Context,
    Group,
    Result,
    clean_env,
    figures_json,
    print_table,
    run_figure,
)


def load_groups() -> list[Group]:
    return [importlib.import_module(f"benchmarks.figures.{name}").GROUP for name in GROUPS]


def select(groups: list[Group], only: list[str]) -> list[tuple[Group, list[str]]]:
    """The groups to run with the names of their selected figures."""
    known = {g.name for g in groups} | {f.name for g in groups for f in g.figures}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise SystemExit(f"unknown figure or group: {', '.join(unknown)} (see --list)")
    chosen = []
    for g in groups:
        names = [f.name for f in g.figures if not only or g.name in only or f.name in only]
        if names:
            chosen.append((g, names))
    return chosen


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these figures or groups (repeatable, comma-separated)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the medians as JSON")
    parser.add_argument("--repeats", type=int, help="samples per tool and figure")
    parser.add_argument("--list", action="store_true", help="list groups and figures, then exit")
    parser.add_argument(
        "--plain", action="store_true", help="plain-text table even if rich is there"
    )
    args = parser.parse_args(argv)

    groups = load_groups()
    if args.list:
        for g in groups:
            print(f"{g.name}:")
            for f in g.figures:
                print(f"  {f.name:<24} {f.unit:<4} {', '.join(f.measures)}  - {f.description}")
        return 0
    only = [name for item in args.only for name in item.split(",") if name]
    chosen = select(groups, only)

    repeats = args.repeats or (3 if args.quick else 7)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="pycompose-bench-") as tmp:
        ctx = Context(
            workdir=Path(tmp), quick=args.quick, repeats=repeats, warmups=1, env=clean_env()
        )
        for group, names in chosen:
            log(f"[{group.name}]")
            tools = {t.name: t for t in group.tools}
            try:
                if group.setup is not None:
                    group.setup(ctx)
            except Exception as e:  # the group's figures fail, the other groups still run
                log(f"  setup of {group.name} failed: {type(e).__name__}: {e}")
                for figure in group.figures:
                    if figure.name in names:
                        reason = f"setup failed: {type(e).__name__}: {e}"
                        results.append(
                            Result(figure, failed=dict.fromkeys(figure.measures, reason))
                        )
                continue
            try:
                for figure in group.figures:
                    if figure.name in names:
                        results.append(run_figure(figure, ctx, tools, log))
            finally:
                if group.teardown is not None:
                    group.teardown(ctx)

    print_table(results, plain=args.plain or not sys.stdout.isatty())
    if args.json:
        out = Path(args.json)
        data: dict[str, dict[str, float]] = {}
        if only and out.exists():
            data = json.loads(out.read_text())
        data.update(figures_json(results))
        out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        log(f"wrote {out}")
    failed = any(r.failed for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
