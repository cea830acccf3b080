"""A supervisor restarted from another cgroup still finds its containers' cgroups.

Container cgroups are created below the supervisor's own cgroup; each
container's record keeps where its cgroup is, so a supervisor started later
from elsewhere (a service manager's slice, a different session) enters the
right cgroup on ``exec`` and removes the right one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pycompose.runtime import cgroups
from pycompose.runtime.client import open_runtime
from pycompose.runtime.spec import ContainerStatus, ExecSpec

from .test_container_support import TEST_TIMEOUT, cleanup, spec, supervisor_pids, wait_gone

pytestmark = pytest.mark.root


@pytest.fixture
def other_cgroup(run_id: str) -> Iterator[list[Path]]:
    """A child of the test's own cgroup in every hierarchy (removed afterwards)."""
    layout = cgroups.detect_layout()
    bases = layout.v1_dirs() if layout.mode != "unified" else [layout.v2]
    dirs = [Path(b) / f"pycompose_t{run_id}_moved" for b in bases if b is not None]
    for d in dirs:
        d.mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):  # an empty cpuset admits no task
            if (d / name).exists():
                (d / name).write_text((d.parent / name).read_text())
    yield dirs
    for d in dirs:
        for sub in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


async def start_supervisor_in(root: Path, instance: str, dirs: list[Path]) -> None:
    procs = [str(d / ("tasks" if (d / "tasks").exists() else "cgroup.procs")) for d in dirs]
    script = 'for f in "$@"; do echo $$ > "$f"; done; exec "$PY" -m ' \
             'pycompose.runtime.supervisor --root "$ROOT" --instance "$INST" --daemon'
    await trio.run_process(["sh", "-c", script, "sh", *procs],
                           env={**os.environ, "PY": sys.executable, "ROOT": str(root),
                                "INST": instance}, stdin=b"")


async def test_exec_after_restart_from_another_cgroup(state_root: Path, instance: str,
                                                     busybox_rootfs: Path,
                                                     other_cgroup: list[Path]) -> None:
    pids: set[int] = set()
    try:
        with trio.fail_after(TEST_TIMEOUT):
            async with open_runtime(state_root, instance) as rt:
                info = await rt.create(spec(busybox_rootfs, "sleep", "300"))
                info = await rt.start(info.id)
                assert info.pid is not None
                pids.add(info.pid)
                # The supervisor is the init's parent (the fd keeper stays: it holds the
                # container's pipes).
                supervisor = parent_of(info.pid)
                await rt.shutdown()
            await wait_gone(supervisor)
            before = set(supervisor_pids(state_root))
            await start_supervisor_in(state_root, instance, other_cgroup)
            async with open_runtime(state_root, instance) as rt:
                # The new supervisor (the first one's fd keeper stays) runs elsewhere.
                (sup,) = set(supervisor_pids(state_root)) - before
                own = Path(f"/proc/{sup}/cgroup").read_text()  # noqa: ASYNC240
                assert other_cgroup[0].name in own
                result = await rt.exec_run(info.id, ExecSpec(argv=("echo", "in")))
                assert result.exit_code == 0, result.stderr
                assert result.stdout == b"in\n"
                # A long exec joined the container's own cgroup (created by the first
                # supervisor), where the pids controller counts it.
                assert (await rt.stats(info.id)).pids_current == 1
                proc = await rt.exec(info.id, ExecSpec(argv=("sleep", "30")))
                assert (await rt.stats(info.id)).pids_current == 2
                await proc.kill()
                assert await proc.wait() == 137
                await proc.aclose()
                await rt.stop(info.id, timeout=1)
                assert (await rt.inspect(info.id)).status is ContainerStatus.EXITED
    finally:
        await cleanup(state_root, instance, pids)
