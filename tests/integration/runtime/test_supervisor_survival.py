"""Containers outlive their clients and their supervisor.

* The engine side (a trio program using the client) is SIGKILLed: the
  supervisor and the container keep running, logs keep being captured, and a
  new client sees the container and can stop it.
* The supervisor itself is SIGKILLed: the container keeps running (its log
  pipes are held by the fd keeper, so its writes do not fail); a new
  supervisor re-adopts it (pid + start time + pidfd), resumes log capture,
  and reports its exit with the code unknown, as it is not its parent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from pycompose.runtime.client import open_runtime
from pycompose.runtime.logs import follow, read_logs
from pycompose.runtime.spec import ContainerStatus

from .test_container_support import (
    TEST_TIMEOUT,
    cleanup,
    spec,
    supervisor_pids,
    wait_gone,
)

pytestmark = pytest.mark.root

TICKER = "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.1; done"

ENGINE = """
import sys, trio
from pycompose.runtime.client import open_runtime
from pycompose.runtime.spec import ContainerSpec

async def main(root, instance, layer, cid):
    async with open_runtime(root, instance) as rt:
        await rt.create(ContainerSpec(id=cid, name="survivor", layers=(layer,),
                                      command=("sh", "-c", sys.argv[5])))
        await rt.start(cid)
        print("started", flush=True)
        await trio.sleep_forever()

trio.run(main, *sys.argv[1:5])
"""


async def wait_for_new_tick(path: Path, after: int) -> int:
    """Wait until the container logs a tick numbered above ``after``; return it."""
    async with aclosing(follow(path)) as entries:
        async for entry in entries:
            if entry.text.startswith("tick-") and int(entry.text[5:]) > after:
                return int(entry.text[5:])
    raise AssertionError("log ended")


def last_tick(path: Path) -> int:
    ticks = [int(e.text[5:]) for e in read_logs(path) if e.text.startswith("tick-")]
    return ticks[-1] if ticks else -1


async def test_engine_killed_containers_keep_running(state_root: Path, instance: str,
                                                     busybox_rootfs: Path) -> None:
    cid = spec(busybox_rootfs).id
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, str(state_root), instance,  # noqa: ASYNC220
                               str(busybox_rootfs), cid, TICKER],
                              stdout=subprocess.PIPE, cwd="/work/main" if
                              os.path.isdir("/work/main") else None)  # noqa: ASYNC240
    try:
        with trio.fail_after(TEST_TIMEOUT):
            assert engine.stdout is not None
            line = await trio.to_thread.run_sync(engine.stdout.readline)
            assert line == b"started\n"
            engine.send_signal(signal.SIGKILL)
            await trio.to_thread.run_sync(engine.wait)
            async with open_runtime(state_root, instance) as rt:
                (info,) = await rt.list()
                assert info.id == cid
                assert info.status is ContainerStatus.RUNNING
                assert info.pid is not None
                assert os.path.exists(f"/proc/{info.pid}")  # noqa: ASYNC240
                # The events of the killed client's session are replayed on request.
                async with rt.events(since=0) as events:
                    kinds = [(await events.receive()).kind for _ in range(2)]
                assert [k.value for k in kinds] == ["created", "started"]
                # Logs keep flowing with no engine attached.
                seen = last_tick(rt.log_path(cid))
                await wait_for_new_tick(rt.log_path(cid), seen)
                status = await rt.stop(cid, timeout=5)
                assert status.code == 143 or status.code == 137
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        if engine.stdout:
            engine.stdout.close()
        await cleanup(state_root, instance)


async def test_supervisor_killed_containers_readopted(state_root: Path, instance: str,
                                                     busybox_rootfs: Path) -> None:
    container_pids: set[int] = set()
    try:
        with trio.fail_after(TEST_TIMEOUT):
            async with open_runtime(state_root, instance) as rt:
                running = await rt.create(spec(busybox_rootfs, "sh", "-c", TICKER))
                await rt.start(running.id)
                short = await rt.create(spec(busybox_rootfs, "sleep", "300", name="short"))
                await rt.start(short.id)
                await wait_for_new_tick(rt.log_path(running.id), -1)
                pids = {i.id: i.pid for i in await rt.list()}
                container_pids |= {p for p in pids.values() if p}
                sup = supervisor_pids(state_root)
                # The supervisor, not its fd keeper: the one whose children are the inits.
                (supervisor,) = [p for p in sup
                                 if str(pids[running.id]) in
                                 Path(f"/proc/{p}/task/{p}/children").read_text().split()]  # noqa: ASYNC240
                os.kill(supervisor, signal.SIGKILL)
                await wait_gone(supervisor)
            # No supervisor: the container keeps running and writing (the keeper
            # holds its pipe, so writes neither fail nor are lost).
            assert os.path.exists(f"/proc/{pids[running.id]}")  # noqa: ASYNC240
            # The short one ends while nobody supervises it.
            os.kill(pids[short.id], signal.SIGKILL)
            await wait_gone(pids[short.id])

            async with open_runtime(state_root, instance) as rt:
                infos = {i.id: i for i in await rt.list()}
                assert infos[running.id].status is ContainerStatus.RUNNING
                assert infos[running.id].pid == pids[running.id]
                assert infos[short.id].status is ContainerStatus.EXITED
                assert infos[short.id].exit is not None
                assert infos[short.id].exit.code is None
                # Log capture resumed on the same pipe, nothing lost in between.
                seen = last_tick(rt.log_path(running.id))
                await wait_for_new_tick(rt.log_path(running.id), seen)
                ticks = [int(e.text[5:]) for e in read_logs(rt.log_path(running.id))]
                assert ticks == list(range(len(ticks)))
                # Stop works on an adopted container; its exit code is unknown.
                status = await rt.stop(running.id, timeout=5)
                assert status.code is None
                assert (await rt.inspect(running.id)).status is ContainerStatus.EXITED
    finally:
        await cleanup(state_root, instance, container_pids)
