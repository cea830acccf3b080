"""Stack lifecycle through the CLI: ``up -d`` / ``down`` of N busybox services.

pycompose runs against its own engine on a private state root (started once in
the group's setup, stopped at exit), with a busybox image imported into its
store. docker-compose needs a running dockerd and podman-compose a working
podman; where they are not set up on this machine they are left out with the
reason (PEERS.md says how to start them), never estimated.

* ``up_n1_s``, ``up_n10_s``, ``up_n50_s``: ``up -d`` of N ``sleep`` services
  from nothing (the ``down`` after each sample is not timed).
* ``up_chain10_s``: ten services chained with ``depends_on`` (service_started).
* ``up_noop_n10_s``: a second ``up -d`` on an unchanged, running 10-service stack.
* ``down_n50_s``: ``down`` of a running 50-service stack.
* ``engine_rss_n50_mib``: resident memory of the engine process with 50 services up.
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
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import Context, Figure, Group, MeasureError, Target, Tool, program

PROJECT = "benchlc"


def _pycompose_available(ctx: Context) -> str | None:
    if os.geteuid() != 0:
        return "needs root (containers)"
    if not Path("/bin/busybox").exists():
        return "needs Debian's busybox-static for the test image"
    return None


def _docker_available(ctx: Context) -> str | None:
    if program("docker-compose") is None:
        return "docker-compose is not installed"
    if not Path("/var/run/docker.sock").exists():
        return "no dockerd is running (start one as PEERS.md describes)"
    return None


def _podman_available(ctx: Context) -> str | None:
    if program("podman-compose") is None or program("podman") is None:
        return "podman-compose/podman are not installed"
    return "podman needs a private configuration here (PEERS.md); not set up by this group"


TOOLS = [Tool("pycompose", _pycompose_available), Tool("docker-compose", _docker_available),
         Tool("podman-compose", _podman_available)]


def _write(path: Path, n: int, chain: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    lines = ["services:"]
    for i in range(n):
        lines += [f"  s{i}:", "    image: busybox", "    command: [sleep, '100000']",
                  "    network_mode: none"]
        if chain and i:
            lines += ["    depends_on:", f"      s{i - 1}: {{condition: service_started}}"]
    (path / "compose.yaml").write_text("\n".join(lines) + "\n")
    return path


def setup(ctx: Context) -> None:
    if _pycompose_available(ctx) is not None:
        return
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from pycompose.client import start_engine
    from pycompose.paths import host_paths
    from pycompose.runtime.images import ImageStore
    from tests.helpers.images import make_busybox_rootfs, make_rootfs_tar

    # Outside the harness's workdir, which is gone by the time atexit runs the teardown.
    root = Path(tempfile.mkdtemp(prefix="pycompose-lc-"))
    rootfs = make_busybox_rootfs(ctx.workdir / "lc-busybox")
    tar = make_rootfs_tar(rootfs, ctx.workdir / "lc-busybox.tar")
    ImageStore(root / "images").import_rootfs(tar, "busybox:latest", changes=['CMD ["sh"]'])
    instance = "b" + secrets.token_hex(2)
    env = dict(ctx.env, PYCOMPOSE_ROOT=str(root), PYCOMPOSE_INSTANCE=instance)
    paths = host_paths(env)
    pid = start_engine(paths)
    ctx.state["lc_env"] = env
    ctx.state["lc_pid"] = pid
    for n in (1, 10, 50):
        ctx.state[f"lc_n{n}"] = _write(ctx.workdir / f"lc-n{n}", n)
    ctx.state["lc_chain10"] = _write(ctx.workdir / "lc-chain10", 10, chain=True)

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
        _stop_supervisor(root, instance)
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)


def _stop_supervisor(root: Path, instance: str) -> None:
    import trio

    from pycompose.runtime.client import open_runtime

    async def shutdown() -> None:
        async with open_runtime(root, instance, autostart=False) as rt:
            await rt.shutdown()

    try:
        trio.run(shutdown)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _cli(ctx: Context, key: str, *args: str, check: bool = True) -> float:
    exe = program("pycompose")
    assert exe is not None
    start = time.perf_counter()
    proc = subprocess.run([exe, "-p", PROJECT, "--progress", "quiet", *args],
                          cwd=ctx.state[key], env=ctx.state["lc_env"], capture_output=True,
                          text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise MeasureError(f"pycompose {' '.join(args)}: {proc.stderr.strip()[-300:]}")
    return elapsed


def _up(key: str) -> Callable[[Context], float]:
    def measure(ctx: Context) -> float:
        try:
            return _cli(ctx, key, "up", "-d")
        finally:
            _cli(ctx, key, "down", "-t", "0", check=False)

    return measure


def _noop(ctx: Context) -> float:
    _cli(ctx, "lc_n10", "up", "-d")
    try:
        return _cli(ctx, "lc_n10", "up", "-d")
    finally:
        _cli(ctx, "lc_n10", "down", "-t", "0", check=False)


def _down(ctx: Context) -> float:
    _cli(ctx, "lc_n50", "up", "-d")
    return _cli(ctx, "lc_n50", "down", "-t", "0")


def _rss(ctx: Context) -> float:
    _cli(ctx, "lc_n50", "up", "-d")
    try:
        status = Path(f"/proc/{ctx.state['lc_pid']}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
        return kib / 1024
    finally:
        _cli(ctx, "lc_n50", "down", "-t", "0", check=False)


def _figure(name: str, desc: str, measure: Callable[[Context], float],
            target: Target | None = None, unit: str = "s") -> Figure:
    return Figure(name=name, unit=unit, description=desc, measures={"pycompose": measure},
                  baseline=None, target=target)


GROUP = Group(
    name="lifecycle",
    tools=TOOLS,
    setup=setup,
    figures=[
        _figure("up_n1_s", "up -d, 1 busybox service", _up("lc_n1")),
        _figure("up_n10_s", "up -d, 10 busybox services", _up("lc_n10")),
        _figure("up_n50_s", "up -d, 50 busybox services", _up("lc_n50")),
        _figure("up_chain10_s", "up -d, chain of 10 depends_on (service_started)",
                _up("lc_chain10")),
        _figure("up_noop_n10_s", "second up -d on an unchanged running 10-service stack",
                _noop),
        _figure("down_n50_s", "down of a running 50-service stack", _down),
        _figure("engine_rss_n50_mib", "engine resident memory with 50 services up", _rss,
                unit="MiB"),
    ],
)
