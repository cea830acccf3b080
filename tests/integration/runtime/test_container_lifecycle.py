"""Stop, kill, init, exec, top, pause, events: the lifecycle on real containers."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pycompose.runtime.client import Runtime
from pycompose.runtime.errors import ContainerStateError, SpawnError
from pycompose.runtime.logs import read_logs
from pycompose.runtime.spec import EventKind, ExecSpec

from .test_container_support import TEST_TIMEOUT, alive, spec

pytestmark = pytest.mark.root

# A shell that reports the signal it gets, then exits with a code of its own.
TRAPPER = "trap 'echo got-$1; exit 7' {sig}; echo ready; while :; do sleep 0.05; done"


async def wait_for_log(rt: Runtime, cid: str, text: str) -> None:
    from contextlib import aclosing

    from pycompose.runtime.logs import follow

    async with aclosing(follow(rt.log_path(cid))) as entries:
        async for entry in entries:
            if text in entry.text:
                return


async def test_stop_with_custom_signal(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", TRAPPER.format(sig="USR1"),
                                    stop_signal="SIGUSR1", stop_grace_period=30))
        await rt.start(info.id)
        await wait_for_log(rt, info.id, "ready")
        status = await rt.stop(info.id)
    assert status.code == 7
    assert status.signal is None
    assert "got-\n" in [e.text for e in read_logs(rt.log_path(info.id))]


async def test_stop_kills_after_grace_period(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        # Ignores SIGTERM: the supervisor must SIGKILL it after the grace period.
        info = await rt.create(spec(busybox_rootfs, "sh", "-c",
                                    "trap '' TERM; echo ready; while :; do sleep 1; done",
                                    stop_grace_period=0.3))
        await rt.start(info.id)
        await wait_for_log(rt, info.id, "ready")
        before = trio.current_time()
        status = await rt.stop(info.id)
        assert trio.current_time() - before >= 0.3
    assert (status.code, status.signal) == (137, 9)


async def test_kill_reaches_double_forked_daemons(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c",
                                    "(setsid sh -c 'sleep 300' &) ; echo ready; sleep 300"))
        await rt.start(info.id)
        await wait_for_log(rt, info.id, "ready")
        procs = await rt.top(info.id)
        assert len(procs) >= 2
        await rt.kill(info.id, "SIGKILL")
        await rt.wait(info.id)
    for p in procs:
        assert not alive(p.pid)


async def test_init_reaps_zombies_and_forwards_signals(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", "echo ready; exec sleep 300",
                                    init=True, stop_grace_period=20))
        await rt.start(info.id)
        await wait_for_log(rt, info.id, "ready")
        procs = await rt.top(info.id)
        assert procs[0].container_pid == 1
        assert "init" in procs[0].command
        assert procs[1].container_pid == 2
        assert procs[1].ppid == procs[0].pid
        # The exec'd shell leaves an orphan behind; it is re-parented to PID 1,
        # which must reap it once it exits.
        res = await rt.exec_run(info.id, ExecSpec(("sh", "-c", "sleep 0.2 & exit 0")))
        assert res.exit_code == 0
        res = await rt.exec_run(info.id, ExecSpec(("sh", "-c",
                                                   "sleep 1; ps -o pid,ppid,stat,comm")))
        assert " Z " not in res.stdout.decode(), res.stdout.decode()
        # catatonit forwards SIGTERM to sleep, which dies of it: no grace-period wait.
        before = trio.current_time()
        status = await rt.stop(info.id)
        assert trio.current_time() - before < 10
    assert status.code in (143, 0), status


async def test_exec_sees_container_and_returns_code(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c",
                                    "echo from-init > /tmp/marker; sleep 300",
                                    hostname="box", env={"FOO": "bar"}, working_dir="/tmp"))
        await rt.start(info.id)
        res = await rt.exec_run(info.id, ExecSpec(
            ("sh", "-c", "while [ ! -s /tmp/marker ]; do sleep 0.05; done; cat marker; "
                         "hostname; echo $FOO $BAR; id -u; echo err >&2; exit 5"),
            env={"BAR": "baz"}, user="1000"))
        assert res.exit_code == 5
        assert res.stdout.decode().split("\n") == ["from-init", "box", "bar baz", "1000", ""]
        assert res.stderr == b"err\n"
        # stdin is passed through
        res = await rt.exec_run(info.id, ExecSpec(("cat",), stdin=True), input=b"piped\n")
        assert (res.exit_code, res.stdout) == (0, b"piped\n")
        # the exec'd process is inside the container's pid namespace
        res = await rt.exec_run(info.id, ExecSpec(("sh", "-c",
                                                   "echo $$; ls /proc | grep -c '^[0-9]'")))
        pid_inside = int(res.stdout.split()[0])
        assert pid_inside > 1
        assert int(res.stdout.split()[1]) <= 4
        with pytest.raises(SpawnError, match="executable file not found"):
            await rt.exec(info.id, ExecSpec(("nope",)))
        await rt.kill(info.id)
        await rt.wait(info.id)
        with pytest.raises(ContainerStateError):
            await rt.exec(info.id, ExecSpec(("true",)))


async def test_pause_unpause(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sleep", "300"))
        await rt.start(info.id)
        await rt.pause(info.id)
        assert (await rt.inspect(info.id)).status.value == "paused"
        pid = (await rt.inspect(info.id)).pid
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]  # noqa: ASYNC240
        assert state in ("D", "T", "t")  # frozen
        with pytest.raises(ContainerStateError):
            await rt.exec(info.id, ExecSpec(("true",)))
        await rt.unpause(info.id)
        assert (await rt.inspect(info.id)).status.value == "running"
        # stopping a paused container works too
        await rt.pause(info.id)
        status = await rt.stop(info.id, timeout=0.1)
        assert status.code == 137


async def test_events_stream(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with rt.events() as events:
            info = await rt.create(spec(busybox_rootfs, "sh", "-c", "exit 3"))
            await rt.start(info.id)
            await rt.wait(info.id)
            await rt.remove(info.id)
            kinds = []
            async for ev in events:
                if ev.id == info.id:
                    kinds.append(ev.kind)
                    if ev.kind is EventKind.EXITED:
                        assert ev.status is not None
                        assert ev.status.code == 3
                if ev.kind is EventKind.REMOVED:
                    break
    assert kinds == [EventKind.CREATED, EventKind.STARTED, EventKind.EXITED, EventKind.REMOVED]


async def test_exec_with_tty(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sleep", "300"))
        await rt.start(info.id)
        res = await rt.exec_run(info.id, ExecSpec(
            ("sh", "-c", "tty; stty size; echo to-stderr >&2; exit 4"), tty=True,
            tty_size=(33, 101), user="1000"))
        assert res.exit_code == 4
        lines = res.stdout.decode().replace("\r", "").split("\n")
        assert lines[0].startswith("/dev/pts/")
        assert lines[1:3] == ["33 101", "to-stderr"]
        # Interactive: input through the terminal, resize while running.
        proc = await rt.exec(info.id, ExecSpec(("sh",), tty=True, stdin=True))
        assert proc.stdin is not None
        assert proc.stderr is None
        await proc.resize(10, 20)
        await proc.stdin.send_all(b"stty size; exit 6\n")
        out = b""
        while chunk := await proc.stdout.receive_some(1024):
            out += chunk
        assert await proc.wait() == 6
        await proc.aclose()
        assert b"10 20" in out


async def test_tty_and_stdin_open_containers(rt: Runtime, busybox_rootfs: Path) -> None:
    from contextlib import aclosing

    from pycompose.runtime.logs import follow

    with trio.fail_after(TEST_TIMEOUT):
        # `tty: true` + `stdin_open: true` keeps a shell alive, as on Docker.
        info = await rt.create(spec(busybox_rootfs, "sh", tty=True, stdin_open=True))
        await rt.start(info.id)
        assert (await rt.inspect(info.id)).status.value == "running"
        await rt.resize(info.id, 25, 90)
        term = await rt.attach(info.id)
        await term.send_all(b"tty; stty size; ls -l /dev/console | cut -c1; exit 9\n")
        assert (await rt.wait(info.id)).code == 9
        await term.aclose()
        text = "".join(e.text for e in read_logs(rt.log_path(info.id))).replace("\r", "")
        assert "/dev/pts/0\n25 90\nc\n" in text
        # stdin_open without a terminal: a pipe that stays open until written to.
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", "echo waiting; read x; echo got-$x",
                                    stdin_open=True))
        await rt.start(info.id)
        async with aclosing(follow(rt.log_path(info.id))) as entries:
            async for entry in entries:
                if entry.text == "waiting\n":
                    break
        stdin = await rt.attach(info.id)
        await stdin.send_all(b"hello\n")
        await stdin.aclose()
        assert (await rt.wait(info.id)).code == 0
        assert read_logs(rt.log_path(info.id))[-1].text == "got-hello\n"


async def test_close_stdin_ends_input(rt: Runtime, busybox_rootfs: Path) -> None:
    """A ``stdin_open`` container reads EOF once the attached stream and the
    supervisor's end are both closed."""
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", "wc -c; echo done",
                                    stdin_open=True))
        await rt.start(info.id)
        stream = await rt.attach(info.id)
        await stream.send_all(b"x" * 100_000)
        await stream.aclose()
        await rt.close_stdin(info.id)
        status = await rt.wait(info.id)
        assert status.code == 0
        out = [e.text for e in read_logs(rt.log_path(info.id))]
        assert out == ["100000\n", "done\n"]
        await rt.close_stdin(info.id)  # again, and after the exit: nothing to do


async def test_a_cancelled_caller_still_gets_its_cleanup_answered(
        rt: Runtime, busybox_rootfs: Path, state_root: Path, instance: str) -> None:
    """A build cancelled during a RUN removes its container in a shielded scope: the
    connection's reader must outlive the cancellation to deliver that answer."""
    from pycompose.runtime.client import open_runtime

    removed = False
    with trio.fail_after(TEST_TIMEOUT), trio.CancelScope() as outer:
        async with open_runtime(state_root, instance) as own:
            info = await own.create(spec(busybox_rootfs, "sleep", "600"))
            await own.start(info.id)
            outer.cancel()  # as a cancelled build: everything in here, the reader too
            try:
                await own.wait(info.id)
            finally:
                with trio.CancelScope(shield=True), trio.fail_after(20):
                    await own.remove(info.id, force=True)
                    removed = True
    assert removed
    assert [c.id for c in await rt.list()] == []
