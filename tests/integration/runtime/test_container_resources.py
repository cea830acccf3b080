"""Resource limits through the supervisor: OOM kills reported, pids limit, stats."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pycompose.runtime.client import Runtime
from pycompose.runtime.logs import read_logs
from pycompose.runtime.spec import EventKind, Resources

from .test_container_support import TEST_TIMEOUT, spec

pytestmark = pytest.mark.root
MIB = 1 << 20


async def test_memory_hog_is_oom_killed_and_reported(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with rt.events() as events:
            info = await rt.create(spec(busybox_rootfs, "dd", "if=/dev/zero", "of=/dev/null",
                                        "bs=200M", "count=1",
                                        resources=Resources(memory=32 * MIB,
                                                            memory_swap=32 * MIB)))
            await rt.start(info.id)
            status = await rt.wait(info.id)
            kinds = []
            async for ev in events:
                if ev.id == info.id:
                    kinds.append(ev.kind)
                if ev.kind is EventKind.EXITED:
                    break
    assert status.oom_killed
    assert status.signal == 9
    assert status.code == 137
    assert EventKind.OOM in kinds
    assert (await rt.inspect(info.id)).exit == status


async def test_pids_limit_stops_fork_bomb(rt: Runtime, busybox_rootfs: Path) -> None:
    script = "for i in $(seq 60); do sleep 30 & done; echo started"
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", script,
                                    resources=Resources(pids_limit=20)))
        await rt.start(info.id)
        await rt.wait(info.id)
        stats = await rt.stats(info.id)
    out = "".join(e.text for e in read_logs(rt.log_path(info.id)))
    assert "can't fork" in out or "Resource temporarily unavailable" in out
    assert stats.pids_limit == 20


async def test_stats_of_running_container(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", "sleep 300",
                                    resources=Resources(memory=64 * MIB)))
        await rt.start(info.id)
        st = await rt.stats(info.id)
    assert st.memory_limit == 64 * MIB
    assert st.memory_usage is not None
    assert st.memory_usage > 0
    assert st.pids_current is not None
    assert st.pids_current >= 1
    assert st.cpu_usage_ns is not None
