"""Stack lifecycle through the CLI: ``up -d`` / ``down`` of N busybox services.

pycompose runs against its own engine on a private state root (started once in
the group's setup, stopped at exit); docker-compose against a private dockerd
and podman-compose against podman with a private configuration, both set up by
``benchmarks/peers`` in the group's setup and removed in its teardown. All
three get the same busybox rootfs imported as ``bb:latest`` and the same stack
files. The peers cannot network containers here without touching the host's
firewall and forwarding (other people's tests run on this machine), so every
stack uses ``network_mode: none``; ``pycompose-net`` is pycompose on the same
stacks without that line (its default per-stack bridge and DNS), reported as
an extra line so that the comparison does not flatter pycompose. A tool that
is not installed or does not come up is left out with the reason.

* ``up_n1_s``, ``up_n10_s``, ``up_n50_s``: ``up -d`` of N ``sleep`` services
  from nothing (the ``down`` after each sample is not timed).
* ``up_chain10_s``: ten services chained with ``depends_on`` (service_started).
* ``up_noop_n10_s``: a second ``up -d`` on an unchanged, running 10-service stack.
  Targets (issue 4): pycompose's ``up_n50_s`` at most 1/5 and ``up_noop_n10_s``
  at most 1/3 of the fastest peer's.
* ``down_n50_s``: ``down`` of a running 50-service stack.
* ``engine_rss_n50_mib``: resident memory of the engine process with 50 services up.

Before timing, each tool's ``up -d`` is checked once per figure: all N
containers of the project must be running.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks import peers
from benchmarks.figures._supervisor import stop_supervisor
from benchmarks.harness import Context, Figure, Group, MeasureError, Target, Tool, program

PROJECT = "benchlc"
PEERS = "lc_peers"  # ctx.state key of the peers started for this group
PEER_TOOLS = ("docker-compose", "podman-compose")


def _pycompose_available(ctx: Context) -> str | None:
    if os.geteuid() != 0:
        return "needs root (containers)"
    if not Path("/bin/busybox").exists():
        return "needs Debian's busybox-static for the test image"
    return None


def _docker_available(ctx: Context) -> str | None:
    if program("docker-compose") is None:
        return "docker-compose is not installed (Debian package docker-compose)"
    return peers.reason(ctx, PEERS, "docker")


def _podman_available(ctx: Context) -> str | None:
    if peers.podman_compose() is None:
        return "podman-compose is not installed (make bench puts it in .venv/peers)"
    return peers.reason(ctx, PEERS, "podman")


TOOLS = [Tool("pycompose", _pycompose_available), Tool("pycompose-net", _pycompose_available),
         Tool("docker-compose", _docker_available), Tool("podman-compose", _podman_available)]


def _write(path: Path, n: int, chain: bool = False, network: bool = False) -> Path:
    """A stack of N ``sleep`` services; ``network=False`` adds ``network_mode: none``."""
    path.mkdir(parents=True, exist_ok=True)
    lines = ["services:"]
    for i in range(n):
        lines += [f"  s{i}:", f"    image: {peers.IMAGE}", "    command: [sleep, '100000']"]
        if not network:
            lines.append("    network_mode: none")
        if chain and i:
            lines += ["    depends_on:", f"      s{i - 1}: {{condition: service_started}}"]
    (path / "compose.yaml").write_text("\n".join(lines) + "\n")
    return path


def setup(ctx: Context) -> None:
    for n in (1, 10, 50):
        ctx.state[f"lc_n{n}"] = _write(ctx.workdir / f"lc-n{n}", n)
        ctx.state[f"lc_n{n}_net"] = _write(ctx.workdir / f"lc-n{n}-net", n, network=True)
    ctx.state["lc_chain10"] = _write(ctx.workdir / "lc-chain10", 10, chain=True)
    ctx.state["lc_chain10_net"] = _write(ctx.workdir / "lc-chain10-net", 10, chain=True,
                                         network=True)
    if _pycompose_available(ctx) is None:
        _start_pycompose(ctx)
    if os.geteuid() == 0:  # last: a failed setup skips the teardown that stops them
        peers.start(ctx, PEERS)


def _start_pycompose(ctx: Context) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from pycompose.client import start_engine
    from pycompose.paths import host_paths
    from pycompose.runtime.images import ImageStore

    # Outside the harness's workdir, which is gone by the time atexit runs the teardown.
    root = Path(tempfile.mkdtemp(prefix="pycompose-lc-"))
    tar = peers.busybox_tar(ctx)  # the rootfs the peers get too
    ImageStore(root / "images").import_rootfs(tar, peers.IMAGE, changes=['CMD ["sh"]'])
    instance = "b" + secrets.token_hex(2)
    env = dict(ctx.env, PYCOMPOSE_ROOT=str(root), PYCOMPOSE_INSTANCE=instance)
    paths = host_paths(env)
    pid = start_engine(paths)
    ctx.state["lc_env"] = env
    ctx.state["lc_pid"] = pid

    def stop() -> None:
        # The run's workdir is gone by now: take the project down by name, from /.
        exe = program("pycompose")
        if exe is not None:
            subprocess.run([exe, "-p", PROJECT, "--progress", "quiet", "down", "-t", "0"],
                           cwd="/", env=env, capture_output=True, timeout=600, check=False)
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        stop_supervisor(root, instance)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)


def _command(ctx: Context, tool: str, key: str) -> tuple[list[str], dict[str, str], Path]:
    """argv prefix, environment and working directory of ``tool`` on stack ``key``."""
    if tool in ("pycompose", "pycompose-net"):
        exe = program("pycompose")
        assert exe is not None
        cwd = ctx.state[key + "_net" if tool == "pycompose-net" else key]
        return [exe, "-p", PROJECT, "--progress", "quiet"], ctx.state["lc_env"], cwd
    if tool == "docker-compose":
        exe, engine = program("docker-compose"), peers.engine(ctx, PEERS, "docker")
    else:
        exe, engine = peers.podman_compose(), peers.engine(ctx, PEERS, "podman")
    assert exe is not None
    return [exe, "-p", PROJECT], dict(ctx.env, **engine.env), ctx.state[key]


def _cli(ctx: Context, tool: str, key: str, *args: str, check: bool = True) -> float:
    argv, env, cwd = _command(ctx, tool, key)
    start = time.perf_counter()
    proc = subprocess.run([*argv, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise MeasureError(f"{tool} {' '.join(args)}: {proc.stderr.strip()[-300:]}")
    return elapsed


def _running(ctx: Context, tool: str, key: str) -> int:
    """How many containers of the project the tool's engine has running."""
    if tool in ("pycompose", "pycompose-net"):
        argv, env, cwd = _command(ctx, tool, key)
        out = subprocess.run([*argv, "ps", "-q", "--status", "running"], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=120, check=True)
        return len(out.stdout.split())
    if tool == "docker-compose":
        return peers.engine(ctx, PEERS, "docker").running(f"com.docker.compose.project={PROJECT}")
    return peers.engine(ctx, PEERS, "podman").running(f"io.podman.compose.project={PROJECT}")


def _verify(key: str, n: int) -> Callable[[Context, str], str | None]:
    """``up -d`` must leave all N containers running, and ``down`` none."""

    def verify(ctx: Context, tool: str) -> str | None:
        try:
            _cli(ctx, tool, key, "up", "-d")
            up = _running(ctx, tool, key)
            _cli(ctx, tool, key, "down", "-t", "0")
            down = _running(ctx, tool, key)
        except (MeasureError, subprocess.SubprocessError, RuntimeError) as e:
            return str(e)
        finally:
            _cli(ctx, tool, key, "down", "-t", "0", check=False)
        if up != n:
            return f"{up} of {n} containers running after up -d"
        if down != 0:
            return f"{down} containers still running after down"
        return None

    return verify


def _up(tool: str, key: str) -> Callable[[Context], float]:
    def measure(ctx: Context) -> float:
        try:
            return _cli(ctx, tool, key, "up", "-d")
        finally:
            _cli(ctx, tool, key, "down", "-t", "0", check=False)

    return measure


def _noop(tool: str) -> Callable[[Context], float]:
    def measure(ctx: Context) -> float:
        _cli(ctx, tool, "lc_n10", "up", "-d")
        try:
            return _cli(ctx, tool, "lc_n10", "up", "-d")
        finally:
            _cli(ctx, tool, "lc_n10", "down", "-t", "0", check=False)

    return measure


def _down(tool: str) -> Callable[[Context], float]:
    def measure(ctx: Context) -> float:
        _cli(ctx, tool, "lc_n50", "up", "-d")
        return _cli(ctx, tool, "lc_n50", "down", "-t", "0")

    return measure


def _rss(ctx: Context) -> float:
    _cli(ctx, "pycompose", "lc_n50", "up", "-d")
    try:
        status = Path(f"/proc/{ctx.state['lc_pid']}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
        return kib / 1024
    finally:
        _cli(ctx, "pycompose", "lc_n50", "down", "-t", "0", check=False)


@dataclass(frozen=True)
class FastestPeer(Target):
    """pycompose at most ``ratio`` x the fastest peer that ran (issue 4's wording)."""

    peers: tuple[str, ...] = PEER_TOOLS

    def describe(self, unit: str) -> str:
        assert self.ratio is not None
        return f"{self.tool} <= 1/{1 / self.ratio:g} of fastest peer"

    def met(self, values: Mapping[str, float], baseline: str | None) -> bool | None:
        theirs = [values[p] for p in self.peers if p in values]
        if self.tool not in values or not theirs or self.ratio is None:
            return None
        return values[self.tool] <= self.ratio * min(theirs)


TOOL_NAMES = ("pycompose", "pycompose-net", *PEER_TOOLS)


def _figure(name: str, desc: str, measure: Callable[[str], Callable[[Context], float]],
            verify: tuple[str, int], target: Target | None = None) -> Figure:
    return Figure(name=name, unit="s", description=desc,
                  measures={tool: measure(tool) for tool in TOOL_NAMES},
                  baseline="docker-compose", target=target, verify=_verify(*verify))


def _stack(key: str) -> Callable[[str], Callable[[Context], float]]:
    return lambda tool: _up(tool, key)


def teardown(ctx: Context) -> None:
    peers.stop(ctx, PEERS)


GROUP = Group(
    name="lifecycle",
    tools=TOOLS,
    setup=setup,
    teardown=teardown,
    figures=[
        _figure("up_n1_s", "up -d, 1 busybox service", _stack("lc_n1"), ("lc_n1", 1)),
        _figure("up_n10_s", "up -d, 10 busybox services", _stack("lc_n10"), ("lc_n10", 10)),
        _figure("up_n50_s", "up -d, 50 busybox services", _stack("lc_n50"), ("lc_n50", 50),
                target=FastestPeer("pycompose", ratio=1 / 5)),
        _figure("up_chain10_s", "up -d, chain of 10 depends_on (service_started)",
                _stack("lc_chain10"), ("lc_chain10", 10)),
        _figure("up_noop_n10_s", "second up -d on an unchanged running 10-service stack",
                _noop, ("lc_n10", 10), target=FastestPeer("pycompose", ratio=1 / 3)),
        _figure("down_n50_s", "down of a running 50-service stack", _down, ("lc_n50", 50)),
        Figure(name="engine_rss_n50_mib", unit="MiB",
               description="engine resident memory with 50 services up",
               measures={"pycompose": _rss}),
    ],
)
