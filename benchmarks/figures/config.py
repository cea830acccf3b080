"""Compose parse time: ``config -q`` on a 300-service and on a 3-service project."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from benchmarks.figures.composegen import write_large_project, write_small_project
from benchmarks.harness import Context, Figure, Group, Target, Tool, program, timed_run

PROJECT = "bench"
LARGE_SERVICES = 300


def _pycompose_available(ctx: Context) -> str | None:
    exe = program("pycompose")
    if exe is None:
        return "pycompose is not installed"
    proc = subprocess.run(
        [exe, "config", "--help"], capture_output=True, env=ctx.env, check=False, timeout=60
    )
    if proc.returncode != 0:
        return "this pycompose has no 'config' command yet"
    return None


def _docker_compose_available(ctx: Context) -> str | None:
    if program("docker-compose") is None:
        return "docker-compose is not installed (Debian package docker-compose)"
    return None


TOOLS = [
    Tool("pycompose", _pycompose_available),
    Tool("docker-compose", _docker_compose_available),
]


def setup(ctx: Context) -> None:
    ctx.state["config_large"] = write_large_project(ctx.workdir / "large", LARGE_SERVICES)
    ctx.state["config_small"] = write_small_project(ctx.workdir / "small")


def _config_q(tool: str, key: str) -> Callable[[Context], float]:
    def measure(ctx: Context) -> float:
        file: Path = ctx.state[key]
        exe = program(tool)
        assert exe is not None
        argv = [exe, "-p", PROJECT, "-f", str(file), "config", "-q"]
        return timed_run(argv, cwd=file.parent, env=ctx.env)

    return measure


def _lists_services(key: str, expected: int) -> Callable[[Context, str], str | None]:
    """Check that ``config --services`` of the tool lists every generated service."""

    def verify(ctx: Context, tool: str) -> str | None:
        file: Path = ctx.state[key]
        exe = program(tool)
        assert exe is not None
        argv = [exe, "-p", PROJECT, "-f", str(file), "config", "--services"]
        proc = subprocess.run(
            argv, cwd=file.parent, env=ctx.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            return f"config --services exited {proc.returncode}: {proc.stderr.strip()[-200:]}"
        count = len(proc.stdout.split())
        return None if count == expected else f"lists {count} services, expected {expected}"

    return verify


GROUP = Group(
    name="config",
    tools=TOOLS,
    setup=setup,
    figures=[
        Figure(
            name="config_parse_s",
            unit="s",
            description="config -q on a generated 300-service file (anchors, .env, env_file, ...)",
            measures={t: _config_q(t, "config_large") for t in ("pycompose", "docker-compose")},
            baseline="docker-compose",
            target=Target("pycompose", ratio=0.5),
            verify=_lists_services("config_large", LARGE_SERVICES),
        ),
        Figure(
            name="config_small_s",
            unit="s",
            description="config -q on a 3-service file (start-up cost)",
            measures={t: _config_q(t, "config_small") for t in ("pycompose", "docker-compose")},
            baseline="docker-compose",
            target=Target("pycompose", value=0.10),
            verify=_lists_services("config_small", 3),
        ),
    ],
)
