"""The container runtime on its own: ``start_exit_ms`` and ``mem_per_container_kib``.

* ``start_exit_ms``: create + start + exit of ``/bin/true`` from a busybox
  rootfs. pycompose: through ``runtime/client.py`` to a running supervisor
  (one sample = the median of a batch; removing the container is not timed);
  crun and runc: ``<tool> run --bundle B ID`` on an OCI bundle over the same
  rootfs (process start of the tool included, as PEERS.md measured).
  crun 1.8 refuses this hybrid cgroup layout unless hugetlb is mounted as a
  v1 hierarchy: the group does that for the measurement and undoes it after.
* ``mem_per_container_kib``: the supervisor's (and its fd keeper's) resident
  memory with 51 idle ``sleep`` containers minus with 1, divided by 50.
  docker and podman (started privately by ``benchmarks/peers``, containers with
  ``--network none`` from the same busybox rootfs as ``bb:latest``): the same
  difference, 1 against 11 idle containers, over the processes the engine adds
  per container: containerd-shim-runc-v2 for docker, conmon for podman.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import peers
from benchmarks.harness import REPO, Context, Figure, Group, MeasureError, Target, Tool, program

BATCH, BATCH_QUICK = 20, 8
HUGETLB = Path("/sys/fs/cgroup/hugetlb")


def _root(ctx: Context) -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, cgroups, overlayfs)"
    if not Path("/bin/busybox").exists():
        return "needs Debian's busybox-static for the rootfs"
    return None


def _oci(name: str) -> object:
    def check(ctx: Context) -> str | None:
        if os.geteuid() != 0:
            return "needs root"
        if program(name) is None:
            return f"{name} is not installed (Debian package {name})"
        return None
    return check


PEERS = "rt_peers"  # ctx.state key of the peers started for this group
PEER_IDLE = 10  # extra idle containers for the peers' per-container figure


def _peer(name: str) -> object:
    def check(ctx: Context) -> str | None:
        return peers.reason(ctx, PEERS, name)
    return check


TOOLS = [Tool("pycompose", _root), Tool("crun", _oci("crun")),  # type: ignore[arg-type]
         Tool("runc", _oci("runc")),  # type: ignore[arg-type]
         Tool("docker", _peer("docker")), Tool("podman", _peer("podman"))]  # type: ignore[arg-type]


def _setup(ctx: Context) -> None:
    if os.geteuid() != 0 or not Path("/bin/busybox").exists():
        return
    sys.path.insert(0, str(REPO))
    from tests.helpers.images import make_busybox_rootfs

    base = Path(tempfile.mkdtemp(prefix="pycompose-rtbench-", dir=ctx.workdir))
    rootfs = make_busybox_rootfs(base / "bundle" / "rootfs")
    ctx.state["rt_base"] = base
    ctx.state["rt_rootfs"] = rootfs
    ctx.state["rt_root"] = base / "state"
    ctx.state["rt_instance"] = "bench" + secrets.token_hex(1)
    for tool in ("crun", "runc"):
        exe = program(tool)
        if exe is None:
            continue
        bundle = base / f"bundle-{tool}"
        bundle.mkdir()
        (bundle / "rootfs").symlink_to(rootfs)
        subprocess.run([exe, "spec"], cwd=bundle, check=True)
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/true"]
        config["root"] = {"path": str(rootfs), "readonly": False}
        (bundle / "config.json").write_text(json.dumps(config))
        ctx.state[f"rt_bundle_{tool}"] = bundle
    if program("crun") and not HUGETLB.exists():
        HUGETLB.mkdir()
        subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(HUGETLB)],
                       check=True)
        ctx.state["rt_hugetlb_mounted"] = True
    peers.start(ctx, PEERS)  # last: a failed setup skips the teardown that stops them


def _teardown(ctx: Context) -> None:
    peers.stop(ctx, PEERS)
    if ctx.state.get("rt_hugetlb_mounted"):
        subprocess.run(["umount", str(HUGETLB)], check=False)
        with contextlib.suppress(OSError):
            HUGETLB.rmdir()
    root = ctx.state.get("rt_root")
    if root is not None and Path(root).exists():
        import trio

        from pycompose.runtime.client import open_runtime

        async def stop() -> None:
            async with open_runtime(root, ctx.state["rt_instance"]) as rt:
                for info in await rt.list():
                    await rt.remove(info.id, force=True, volumes=True)
                await rt.gc()
                await rt.shutdown()

        trio.run(stop)
        from pycompose.runtime import cgroups

        layout = cgroups.detect_layout()
        with contextlib.suppress(Exception):
            cgroups.remove_parent(layout, f"pycompose_{ctx.state['rt_instance']}")
    base = ctx.state.get("rt_base")
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def _pycompose_start_exit(ctx: Context) -> float:
    import trio

    from pycompose.runtime.client import open_runtime
    from pycompose.runtime.spec import ContainerSpec

    n = BATCH_QUICK if ctx.quick else BATCH

    async def main() -> float:
        times = []
        async with open_runtime(ctx.state["rt_root"], ctx.state["rt_instance"]) as rt:
            for _ in range(n):
                cid = secrets.token_hex(32)
                t0 = time.perf_counter()
                await rt.create(ContainerSpec(id=cid, name="bench", command=("/bin/true",),
                                              layers=(str(ctx.state["rt_rootfs"]),)))
                await rt.start(cid)
                status = await rt.wait(cid)
                times.append(time.perf_counter() - t0)
                await rt.remove(cid)
                if status.code != 0:
                    raise MeasureError(f"/bin/true exited with {status}")
        return statistics.median(times) * 1000

    return trio.run(main)


def _oci_run(tool: str):  # type: ignore[no-untyped-def]
    def measure(ctx: Context) -> float:
        bundle = ctx.state[f"rt_bundle_{tool}"]
        cid = f"pcbench{secrets.token_hex(4)}"
        start = time.perf_counter()
        proc = subprocess.run([program(tool) or tool, "run", "--bundle", str(bundle), cid],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            subprocess.run([program(tool) or tool, "delete", "-f", cid], capture_output=True)
            raise MeasureError(proc.stderr.decode(errors="replace").strip()[-200:])
        return elapsed * 1000
    return measure


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _pycompose_mem(ctx: Context) -> float:
    import trio

    from pycompose.runtime.client import open_runtime
    from pycompose.runtime.spec import ContainerSpec

    root = Path(ctx.state["rt_root"])

    def supervisor_pids() -> list[int]:
        needle = f"--root\0{root}\0".encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"pycompose.runtime.supervisor" in cmd and needle in cmd + b"\0":
                    found.append(int(entry))
        return found

    async def main() -> float:
        ids = []
        async with open_runtime(root, ctx.state["rt_instance"]) as rt:
            try:
                for i in range(51):
                    cid = secrets.token_hex(32)
                    await rt.create(ContainerSpec(id=cid, name=f"idle{i}", command=("sleep", "600"),
                                                  layers=(str(ctx.state["rt_rootfs"]),)))
                    await rt.start(cid)
                    ids.append(cid)
                    if i == 0:
                        one = _rss_kib(supervisor_pids())
                fifty_one = _rss_kib(supervisor_pids())
            finally:
                for cid in ids:
                    await rt.remove(cid, force=True)
        return (fifty_one - one) / 50

    return trio.run(main)


def _peer_mem(name: str) -> Callable[[Context], float]:
    """Resident KiB per extra idle container of the engine's per-container processes."""

    def measure(ctx: Context) -> float:
        engine = peers.engine(ctx, PEERS, name)
        run, per_container = engine.cli, engine.monitor_pids
        n = PEER_IDLE // 2 if ctx.quick else PEER_IDLE
        label = f"pcbench={secrets.token_hex(4)}"
        ids: list[str] = []
        try:
            for i in range(n + 1):
                out = run("run", "-d", "--network", "none", "--label", label,
                          peers.IMAGE, "sleep", "600")
                ids.append(out.stdout.strip())
                if i == 0:
                    one = _rss_kib(per_container())
            pids = per_container()
            if len(pids) != n + 1:
                raise MeasureError(f"{len(pids)} per-container processes for {n + 1} containers")
            running = engine.running(label)
            if running != n + 1:
                raise MeasureError(f"{running} of {n + 1} containers running")
            many = _rss_kib(pids)
        finally:
            if ids:
                run("rm", "-f", *ids, check=False)
        return (many - one) / n

    return measure


GROUP = Group(
    name="runtime",
    tools=TOOLS,
    setup=_setup,
    teardown=_teardown,
    figures=[
        Figure(
            name="start_exit_ms",
            unit="ms",
            description="create + start + exit of /bin/true from a busybox rootfs",
            measures={"pycompose": _pycompose_start_exit, "crun": _oci_run("crun"),
                      "runc": _oci_run("runc")},
            baseline="crun",
            target=Target("pycompose", ratio=2.0),
        ),
        Figure(
            name="mem_per_container_kib",
            unit="KiB",
            description="engine-side resident memory per additional idle container",
            measures={"pycompose": _pycompose_mem, "docker": _peer_mem("docker"),
                      "podman": _peer_mem("podman")},
            baseline="docker",
            target=Target("pycompose", value=1024.0),
        ),
    ],
)
