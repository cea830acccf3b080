"""The benchmark harness's bookkeeping (selection, medians, ratios, JSON); no timing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.harness import (
    Context,
    Figure,
    Group,
    MeasureError,
    Target,
    Tool,
    figures_json,
    run_figure,
    table_rows,
    timed_run,
)


def _ctx(tmp_path: Path) -> Context:
    return Context(workdir=tmp_path, quick=True, repeats=3, warmups=1, env={})


def _samples(values: list[float]):  # type: ignore[no-untyped-def]
    it = iter(values)
    return lambda ctx: next(it)


TOOLS = {
    "mine": Tool("mine", lambda ctx: None),
    "ref": Tool("ref", lambda ctx: None),
    "absent": Tool("absent", lambda ctx: "absent is not installed"),
}


def test_medians_ratios_targets_and_json(tmp_path: Path) -> None:
    fig = Figure(
        name="demo_s",
        unit="s",
        description="demo",
        # one warm-up sample, then three timed ones
        measures={
            "mine": _samples([9.0, 1.0, 3.0, 2.0]),
            "ref": _samples([9.0, 8.0, 4.0, 6.0]),
            "absent": _samples([]),
        },
        baseline="ref",
        target=Target("mine", ratio=0.5),
    )
    res = run_figure(fig, _ctx(tmp_path), TOOLS, lambda line: None)
    assert res.medians == {"mine": 2.0, "ref": 6.0}
    assert res.skipped == {"absent": "absent is not installed"}
    assert figures_json([res]) == {"demo_s": {"mine": 2.0, "ref": 6.0}}
    rows = table_rows([res])
    assert rows[0][:2] == ["demo_s", "mine"]
    assert rows[0][4] == "0.33x"
    assert rows[0][5] == "mine <= 0.5x: met"
    assert "left out: absent is not installed" in rows[2][3]


def test_missed_target_and_failed_tool(tmp_path: Path) -> None:
    def broken(ctx: Context) -> float:
        raise MeasureError("exit status 1: boom")

    fig = Figure(
        name="demo_small_s",
        unit="s",
        description="demo",
        measures={"mine": _samples([1.0, 0.2, 0.2, 0.2]), "ref": broken},
        baseline="ref",
        target=Target("mine", value=0.1),
    )
    res = run_figure(fig, _ctx(tmp_path), TOOLS, lambda line: None)
    assert res.failed == {"ref": "exit status 1: boom"}
    assert figures_json([res]) == {"demo_small_s": {"mine": 0.2}}
    assert table_rows([res])[0][5] == "mine <= 0.1 s: MISSED"


def test_wrong_result_is_not_timed(tmp_path: Path) -> None:
    calls: list[str] = []

    def measure(ctx: Context) -> float:
        calls.append("ran")
        return 0.001

    fig = Figure(
        name="x_s",
        unit="s",
        description="",
        measures={"mine": measure},
        verify=lambda ctx, tool: "lists 0 services, expected 3",
    )
    res = run_figure(fig, _ctx(tmp_path), TOOLS, lambda line: None)
    assert res.failed == {"mine": "wrong result: lists 0 services, expected 3"}
    assert calls == []


def test_timed_run_reports_failures(tmp_path: Path) -> None:
    assert timed_run([sys.executable, "-c", "pass"], cwd=tmp_path, env={}) > 0
    with pytest.raises(MeasureError, match="exit status 3: bad input"):
        timed_run(
            [sys.executable, "-c", "import sys; sys.stderr.write('bad input'); sys.exit(3)"],
            cwd=tmp_path,
            env={},
        )
    with pytest.raises(MeasureError, match="cannot run"):
        timed_run([str(tmp_path / "missing")], cwd=tmp_path, env={})


def test_selection_by_figure_or_group() -> None:
    fig_a = Figure("a_s", "s", "", {})
    fig_b = Figure("b_s", "s", "", {})
    groups = [Group("g1", [], [fig_a, fig_b]), Group("g2", [], [Figure("c_s", "s", "", {})])]
    assert [(g.name, names) for g, names in run.select(groups, [])] == [
        ("g1", ["a_s", "b_s"]),
        ("g2", ["c_s"]),
    ]
    assert [(g.name, names) for g, names in run.select(groups, ["b_s", "g2"])] == [
        ("g1", ["b_s"]),
        ("g2", ["c_s"]),
    ]
    with pytest.raises(SystemExit, match="unknown figure or group: nope"):
        run.select(groups, ["nope"])


def test_registered_groups_load_and_use_design_names() -> None:
    groups = run.load_groups()
    names = {f.name for g in groups for f in g.figures}
    assert {"config_parse_s", "config_small_s"} <= names
    for g in groups:
        tools = {t.name for t in g.tools}
        for f in g.figures:
            assert set(f.measures) <= tools
            assert f.baseline is None or f.baseline in f.measures


def test_generated_projects(tmp_path: Path) -> None:
    import yaml

    from benchmarks.figures.composegen import write_large_project, write_small_project

    large = write_large_project(tmp_path / "large", services=20)
    doc = yaml.safe_load(large.read_text())
    assert len(doc["services"]) == 20
    assert doc["services"]["svc003"]["depends_on"] == {
        "svc001": {"condition": "service_healthy"},
        "svc002": {"condition": "service_healthy"},
    }
    assert (tmp_path / "large" / ".env").exists()
    small = write_small_project(tmp_path / "small")
    assert set(yaml.safe_load(small.read_text())["services"]) == {"web", "api", "db"}


def test_json_update_with_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--only with --json updates the chosen figures and keeps the others."""
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"other_s": {"x": 1.0}, "a_s": {"mine": 9.0}}))
    group = Group("g", [TOOLS["mine"]], [Figure("a_s", "s", "", {"mine": lambda ctx: 0.5})])
    monkeypatch.setattr(run, "load_groups", lambda: [group])
    assert run.main(["--only", "a_s", "--json", str(out), "--repeats", "1", "--plain"]) == 0
    assert json.loads(out.read_text()) == {"other_s": {"x": 1.0}, "a_s": {"mine": 0.5}}


def test_failing_setup_and_measure_do_not_stop_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    torn_down: list[str] = []

    def bad_setup(ctx: Context) -> None:
        raise RuntimeError("no engine")

    def bad_measure(ctx: Context) -> float:
        raise ValueError("parse error")

    broken = Group(
        "broken",
        [TOOLS["mine"]],
        [Figure("b_s", "s", "", {"mine": lambda c: 1.0})],
        setup=bad_setup,
    )
    ok = Group(
        "ok",
        [TOOLS["mine"], TOOLS["ref"]],
        [Figure("o_s", "s", "", {"mine": bad_measure, "ref": lambda c: 2.0})],
        teardown=lambda ctx: torn_down.append("ok"),
    )
    monkeypatch.setattr(run, "load_groups", lambda: [broken, ok])
    out = tmp_path / "b.json"
    assert run.main(["--json", str(out), "--repeats", "1", "--plain"]) == 1
    assert json.loads(out.read_text()) == {"b_s": {}, "o_s": {"ref": 2.0}}
    assert torn_down == ["ok"]
    printed = capsys.readouterr().out
    assert "setup failed: RuntimeError: no engine" in printed
    assert "ValueError: parse error" in printed


def test_samples_are_taken_round_robin_after_each_tools_warmups(tmp_path: Path) -> None:
    order: list[str] = []

    def measure(name: str):  # type: ignore[no-untyped-def]
        def sample(ctx: Context) -> float:
            order.append(name)
            if name == "ref" and order.count("ref") == 3:
                raise MeasureError("broke in round 2")
            return 1.0
        return sample

    fig = Figure(name="rr_s", unit="s", description="round robin",
                 measures={"mine": measure("mine"), "ref": measure("ref")})
    res = run_figure(fig, _ctx(tmp_path), TOOLS, lambda line: None)
    # warm-ups first (one per tool), then rounds; a tool that fails leaves the rounds
    assert order == ["mine", "ref", "mine", "ref", "mine", "ref", "mine"]
    assert res.failed == {"ref": "broke in round 2"}
    assert res.samples == {"mine": [1.0, 1.0, 1.0]}
