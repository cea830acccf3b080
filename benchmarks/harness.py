"""The small framework behind ``benchmarks/run.py``.

A *figure* is one number per tool (``config_parse_s``: pycompose, docker-compose).
Figures live in groups, one module per group under ``benchmarks/figures/``,
registered by name in ``benchmarks/figures/__init__.py``.  A group module
exposes ``GROUP = Group(...)``: a ``setup`` that prepares inputs in a
temporary directory (never in the repository), and its figures.

Each figure names, per tool, a ``Measure``: a function taking the run
``Context`` (plus whatever ``setup`` returned) and returning one sample.  The
harness runs warm-ups, then ``repeats`` rounds of one sample per tool (round
robin, so that drift in the machine's load weighs on every tool alike), and
reports the median (with min and max).  A tool whose ``available`` check
returns a reason is left out and the reason is printed: nothing is ever
estimated or faked.  A sample that
fails (the tool exits non-zero) fails the tool's figure with the error text.

Ratios are printed against the figure's ``baseline`` tool; a ``Target`` states
the goal the issue sets (a ratio, or an absolute bound) and is marked met or
missed in the table.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class MeasureError(Exception):
    """A tool failed while being measured (non-zero exit, bad output)."""


@dataclass
class Context:
    """What every measurement can use."""

    workdir: Path  # a private temporary directory for this run
    quick: bool
    repeats: int
    warmups: int
    env: dict[str, str]  # a clean environment for child processes
    state: dict[str, Any] = field(default_factory=dict)  # filled by group setups


Measure = Callable[[Context], float]
Check = Callable[[Context], "str | None"]


@dataclass(frozen=True)
class Tool:
    """A program measured by some figures; ``available`` returns None or why not."""

    name: str
    available: Check


@dataclass(frozen=True)
class Target:
    """A figure's goal: ``tool`` at most ``ratio`` x the baseline, or at most ``value``.

    With ``at_least=True`` the bound is a floor instead (throughput figures).
    """

    tool: str
    ratio: float | None = None
    value: float | None = None
    at_least: bool = False

    def describe(self, unit: str) -> str:
        op = ">=" if self.at_least else "<="
        if self.ratio is not None:
            return f"{self.tool} {op} {self.ratio:g}x"
        return f"{self.tool} {op} {self.value:g} {unit}"

    def met(self, values: Mapping[str, float], baseline: str | None) -> bool | None:
        mine = values.get(self.tool)
        if mine is None:
            return None
        if self.ratio is not None:
            if baseline is None or baseline not in values:
                return None
            bound = self.ratio * values[baseline]
        else:
            assert self.value is not None
            bound = self.value
        return mine >= bound if self.at_least else mine <= bound


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    description: str
    measures: Mapping[str, Measure]  # tool name -> one sample
    baseline: str | None = None  # ratios are printed as tool / baseline
    target: Target | None = None
    higher_is_better: bool = False
    # Run once per tool before timing: None when the tool did the work right,
    # else why not (a fast but wrong answer must not count).
    verify: Callable[[Context, str], str | None] | None = None


@dataclass(frozen=True)
class Group:
    name: str
    tools: Sequence[Tool]
    figures: Sequence[Figure]
    setup: Callable[[Context], None] | None = None
    # Runs after the group's figures, also when they failed (stop daemons, ...).
    teardown: Callable[[Context], None] | None = None


@dataclass
class Result:
    figure: Figure
    samples: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # tool -> reason
    failed: dict[str, str] = field(default_factory=dict)  # tool -> error

    @property
    def medians(self) -> dict[str, float]:
        return {tool: statistics.median(s) for tool, s in self.samples.items() if s}


# -- helpers for measures -----------------------------------------------------


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small, stable environment for the programs under test."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def timed_run(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float = 300
) -> float:
    """Wall time of one run of ``argv``; raises MeasureError when it fails."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise MeasureError(f"{argv[0]} timed out after {timeout:g}s") from e
    except OSError as e:
        raise MeasureError(f"cannot run {argv[0]}: {e.strerror}") from e
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise MeasureError(f"exit status {proc.returncode}: {' | '.join(tail)}")
    return elapsed


def program(name: str) -> str | None:
    """Absolute path of an executable: the virtualenv's own first, then PATH (absolute:
    figures run programs from other working directories)."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() and os.access(local, os.X_OK) else shutil.which(name)
    return os.path.abspath(found) if found is not None else None


# -- running ----------------------------------------------------------------------


def run_figure(
    figure: Figure, ctx: Context, tools: Mapping[str, Tool], log: Callable[[str], None]
) -> Result:
    result = Result(figure)
    ready: dict[str, Measure] = {}
    for tool_name, measure in figure.measures.items():
        tool = tools[tool_name]
        reason = ctx.state.setdefault("_availability", {}).get(tool_name, ...)
        if reason is ...:
            reason = tool.available(ctx)
            ctx.state["_availability"][tool_name] = reason
        if reason is not None:
            result.skipped[tool_name] = reason
            continue
        problem = figure.verify(ctx, tool_name) if figure.verify else None
        if problem is not None:
            result.failed[tool_name] = f"wrong result: {problem}"
            log(f"  {figure.name} / {tool_name}: FAILED: wrong result: {problem}")
            continue
        if _sample(result, tool_name, measure, ctx, log, ctx.warmups) is not None:
            ready[tool_name] = measure
    # Round robin: each round takes one sample of every tool, so that a machine getting
    # busier or quieter during the run weighs on all tools alike.
    samples: dict[str, list[float]] = {name: [] for name in ready}
    for _ in range(ctx.repeats):
        for tool_name, measure in list(ready.items()):
            taken = _sample(result, tool_name, measure, ctx, log, 1)
            if taken is None:
                del ready[tool_name]
            else:
                samples[tool_name] += taken
    for tool_name in ready:
        result.samples[tool_name] = samples[tool_name]
        log(f"  {figure.name} / {tool_name}: median "
            f"{statistics.median(samples[tool_name]):.4g} {figure.unit}")
    return result


def _sample(result: Result, tool_name: str, measure: Measure,
            ctx: Context, log: Callable[[str], None], count: int) -> list[float] | None:
    """``count`` samples of one tool; None (and the tool marked failed) when one fails."""
    try:
        return [measure(ctx) for _ in range(count)]
    except MeasureError as e:
        result.failed[tool_name] = str(e)
        log(f"  {result.figure.name} / {tool_name}: FAILED: {e}")
    except Exception as e:  # a broken measure fails its figure, not the whole run
        result.failed[tool_name] = f"{type(e).__name__}: {e}"
        log(f"  {result.figure.name} / {tool_name}: FAILED: {type(e).__name__}: {e}")
    return None


def format_value(value: float, unit: str) -> str:
    if unit.endswith("_s") or unit == "s":
        return f"{value:.3f}"
    return f"{value:.4g}"


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    rows: list[list[str]] = []
    for res in results:
        fig = res.figure
        medians = res.medians
        met = fig.target.met(medians, fig.baseline) if fig.target else None
        first = True
        for tool in fig.measures:
            cells = [fig.name if first else "", tool]
            if tool in medians:
                s = res.samples[tool]
                low, high = format_value(min(s), fig.unit), format_value(max(s), fig.unit)
                cells += [
                    f"{format_value(medians[tool], fig.unit)} {fig.unit}",
                    f"{low}-{high} (n={len(s)})",
                ]
                if fig.baseline and fig.baseline in medians and tool != fig.baseline:
                    cells.append(f"{medians[tool] / medians[fig.baseline]:.2f}x")
                else:
                    cells.append("")
            elif tool in res.failed:
                cells += ["failed", res.failed[tool][:60], ""]
            else:
                cells += ["-", f"left out: {res.skipped.get(tool, '?')}"[:60], ""]
            if first and fig.target:
                status = {True: "met", False: "MISSED", None: "n/a"}[met]
                cells.append(f"{fig.target.describe(fig.unit)}: {status}")
            else:
                cells.append("")
            rows.append(cells)
            first = False
    return rows


HEADERS = ["figure", "tool", "median", "range", "ratio", "target"]


def print_table(results: Sequence[Result], *, plain: bool = False) -> None:
    rows = table_rows(results)
    if not plain:
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            plain = True
    if not plain:
        table = Table(title="pycompose benchmarks (ratios are tool / baseline; lower is better)")
        for h in HEADERS:
            table.add_column(h)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADERS)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def figures_json(results: Sequence[Result]) -> dict[str, dict[str, float]]:
    """``{"figure": {"tool": median, ...}, ...}``; tools left out or failed are absent."""
    return {res.figure.name: {t: round(v, 6) for t, v in res.medians.items()} for res in results}
