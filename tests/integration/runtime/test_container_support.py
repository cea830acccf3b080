"""Fixtures for the container tests (imported by the ``test_container*`` modules).

``rt`` opens the runtime on the test's own state root, with a supervisor of
its own and an instance tag made of the run id (so the cgroup parent is
``pycompose_t<run_id>``). Its teardown removes every container, stops the
supervisor, and asserts that nothing of the test is left on the host: no
mount below the state root, no cgroup under the parent, none of the
supervisor's child processes, no supervisor.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from pycompose.runtime import cgroups
from pycompose.runtime.client import Runtime, open_runtime
from pycompose.runtime.logs import read_logs
from pycompose.runtime.spec import ContainerSpec

#: Ceiling for any one container test: a hung container must fail, not hang CI.
TEST_TIMEOUT = 60


async def run_container(rt: Runtime, s: ContainerSpec, *,
                        remove: bool = False) -> tuple[int | None, str]:
    """Create, start and wait; return the exit code and stdout+stderr text (``remove``:
    remove the container afterwards)."""
    info = await rt.create(s)
    await rt.start(info.id)
    status = await rt.wait(info.id)
    out = "".join(e.text for e in read_logs(rt.log_path(info.id)))
    if remove:
        await rt.remove(info.id)
    return status.code, out


def new_id() -> str:
    return secrets.token_hex(32)


def spec(layers: Path | tuple[str, ...], *command: str, **kw: object) -> ContainerSpec:
    """A busybox container spec running ``command``."""
    lay = (str(layers),) if isinstance(layers, Path) else layers
    return ContainerSpec(id=kw.pop("id", None) or new_id(),  # type: ignore[arg-type]
                         name=str(kw.pop("name", "t")), layers=lay,
                         command=tuple(command) or None, **kw)  # type: ignore[arg-type]


def supervisor_pid(root: Path) -> int | None:
    """The supervisor (or its fd keeper, forked from it) of ``root``."""
    pids = supervisor_pids(root)
    return pids[0] if pids else None


def supervisor_pids(root: Path) -> list[int]:
    needle = f"--root\0{root}\0".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if b"pycompose.runtime.supervisor" in cmd and needle in cmd + b"\0":
            found.append(int(entry))
    return sorted(found)


def children_of(pid: int) -> set[int]:
    out: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.update(int(p) for p in fh.read().split())
    except OSError:
        pass
    return out


def mounts_below(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as fh:
        return [line.split()[4] for line in fh if (line.split()[4] + "/").startswith(prefix)]


async def wait_gone(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with trio.fail_after(10):
            await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


async def stop_supervisor(rt: Runtime) -> None:
    """Ask the supervisor to exit and wait until it (and its idle fd keeper) has."""
    pids = supervisor_pids(rt.root)
    try:
        await rt.shutdown()
    except Exception:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        await wait_gone(pid)


@pytest.fixture
def instance(run_id: str) -> str:
    return "t" + run_id


async def cleanup(state_root: Path, instance: str, extra_pids: set[int] | None = None) -> None:
    """Remove every container of ``state_root``, stop its supervisor, and assert
    that nothing of the test is left on the host."""
    layout = cgroups.detect_layout()
    parent = f"pycompose_{instance}"
    kids = set(extra_pids or ())
    with trio.CancelScope(shield=True), trio.fail_after(30):
        async with open_runtime(state_root, instance) as runtime:
            for sup in supervisor_pids(state_root):
                kids |= children_of(sup)
            for info in await runtime.list():
                if info.pid:
                    kids.add(info.pid)
                await runtime.remove(info.id, force=True, volumes=True)
            await stop_supervisor(runtime)
        for pid in kids:
            await wait_gone(pid)
    # Anything left of this test is a bug of the runtime under test.
    leftover_cgroups = [d for d in cgroups._parent_dirs(layout, parent) if d.exists()
                        and any(p.is_dir() for p in d.iterdir())]
    for d in cgroups._parent_dirs(layout, parent):
        if d.exists():
            cgroups.remove_parent(layout, parent)
            break
    assert mounts_below(state_root) == []
    assert leftover_cgroups == []
    assert os.listdir(state_root / "containers") == []
    assert os.listdir(state_root / "trash") == []
    assert supervisor_pids(state_root) == []
    assert [p for p in kids if alive(p)] == []


def alive(pid: int) -> bool:
    """Running (a zombie waiting for an unrelated reaper does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
async def rt(state_root: Path, instance: str) -> AsyncIterator[Runtime]:
    try:
        async with open_runtime(state_root, instance) as runtime:
            assert supervisor_pid(state_root) is not None
            yield runtime
    finally:
        await cleanup(state_root, instance)
