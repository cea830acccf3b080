"""The trio API to the runtime: talk to the per-root supervisor process.

::

    async with open_runtime(root, instance) as rt:
        info = await rt.create(spec)            # ContainerInfo (warnings: clamped ulimits, …)
        await rt.start(info.id)                 # returns once the user's program is exec'd
        status = await rt.wait(info.id)         # ExitStatus(code, signal, oom_killed, exited_at)
        await rt.stop(info.id, timeout=5)       # stop signal, SIGKILL after the grace period
        proc = await rt.exec(info.id, ExecSpec(("sh", "-c", "echo hi")))
        out = await proc.stdout.receive_some(); code = await proc.wait()
        async with rt.events() as events:       # started / exited / oom / …
            async for ev in events: ...
        await rt.remove(info.id, force=True)

Also: ``inspect``, ``list``, ``kill``, ``pause``/``unpause``, ``top``,
``stats``, ``gc``, ``shutdown``; ``exec`` with ``ExecSpec(tty=True)`` (a pty of the
container's devpts, ``resize``); ``attach``/``resize``/``close_stdin`` for containers
created with ``stdin_open``/``tty``; logs are read from ``log_path(id)`` with
:mod:`pycompose.runtime.logs` (``read_logs``, ``follow``). A running
container's filesystem is reachable from the host at ``/proc/<pid>/root``.

The supervisor (``python -m pycompose.runtime.supervisor``) is started on
first use, detached, and outlives this program: containers keep running and
their logs keep being captured when the engine exits or is killed. A new
:func:`open_runtime` reconnects; ``list()`` then shows the current state,
including exits that happened meanwhile, and ``events(since=)`` replays the
recent events the supervisor still holds.

Every error is a :mod:`pycompose.runtime.errors` type; :class:`SpawnError`
carries ``step`` and ``path``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import socket as _stdsocket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from pycompose.runtime import errors
from pycompose.runtime.spec import (
    ContainerEvent,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ExecSpec,
    ExitStatus,
    GcReport,
    ProcessInfo,
)
from pycompose.runtime.supervisor import protocol as P
from pycompose.runtime.supervisor.codec import from_json

SOCKET_NAME = "supervisor.sock"
_MAX_FDS = 16

__all__ = ["ExecProcess", "ExecResult", "Runtime", "open_runtime", "log_path"]


def log_path(root: str | os.PathLike[str], cid: str) -> Path:
    """The json-file log of container ``cid`` (rotated files get ``.1``, ``.2``, …)."""
    return Path(root) / "containers" / cid / f"{cid}-json.log"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


class ExecProcess:
    """A process started by :meth:`Runtime.exec`. Close it (``aclose``) when done."""

    def __init__(self, rt: Runtime, started: P.ExecStarted, fds: builtins.list[int]) -> None:
        self._rt = rt
        self.exec_id = started.exec_id
        self.pid = started.pid
        self.tty = started.tty
        self.stdin: trio.lowlevel.FdStream | None
        self.stdout: trio.abc.ReceiveStream
        #: ``None`` with a tty: the terminal carries both outputs on ``stdout``.
        self.stderr: trio.abc.ReceiveStream | None
        if started.tty:
            (master,) = fds
            self.stdin = trio.lowlevel.FdStream(os.dup(master)) if started.stdin else None
            self.stdout = _PtyStream(trio.lowlevel.FdStream(master))
            self.stderr = None
        else:
            it = iter(fds)
            self.stdin = trio.lowlevel.FdStream(next(it)) if started.stdin else None
            self.stdout = trio.lowlevel.FdStream(next(it))
            self.stderr = trio.lowlevel.FdStream(next(it))
        self.status: ExitStatus | None = None

    async def resize(self, rows: int, columns: int) -> None:
        """Set the terminal size (with ``tty`` only)."""
        await self._rt._call(P.ExecResize(self.exec_id, rows, columns))

    async def wait(self) -> int:
        """The exit code (128+N when killed by signal N)."""
        if self.status is None:
            self.status = await self._rt._call(P.ExecWait(self.exec_id))
        code = self.status.code
        assert code is not None  # an exec is always our child: never unknown
        return int(code)

    async def kill(self, signal: str = "SIGKILL") -> None:
        await self._rt._call(P.ExecKill(self.exec_id, signal))

    async def aclose(self) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                await stream.aclose()


class _PtyStream(trio.abc.ReceiveStream):
    """A pty master's output; EIO (every slave end closed) reads as end of stream."""

    def __init__(self, stream: trio.lowlevel.FdStream) -> None:
        self._stream = stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            return await self._stream.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            if isinstance(exc.__cause__, OSError) and exc.__cause__.errno == errno.EIO:
                return b""
            raise

    async def aclose(self) -> None:
        await self._stream.aclose()


class Runtime:
    """One connection to the supervisor of a state root. Use :func:`open_runtime`."""

    def __init__(self, root: Path, sock: trio.socket.SocketType) -> None:
        self.root = root
        self._sock = sock
        self._seq = 0
        self._pending: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._subscribers: set[trio.MemorySendChannel[ContainerEvent]] = set()
        self._subscribed = False
        self._send_lock = trio.Lock()
        self._closed: BaseException | None = None

    # -- containers -------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Record the container and prepare its directories, volumes and cgroup."""
        result: ContainerInfo = await self._call(P.Create(spec))
        return result

    async def start(self, cid: str) -> ContainerInfo:
        """Spawn the container; returns when its program runs (or raises ``SpawnError``)."""
        result: ContainerInfo = await self._call(P.Start(cid))
        return result

    async def wait(self, cid: str) -> ExitStatus:
        """Wait for the current run to end; the last exit at once when not running."""
        result: ExitStatus = await self._call(P.Wait(cid))
        return result

    async def stop(self, cid: str, signal: str | None = None,
                   timeout: float | None = None,  # noqa: ASYNC109 - the grace period, Docker's name
                   ) -> ExitStatus:
        """Send the stop signal (the spec's by default), SIGKILL after ``timeout``
        (the spec's ``stop_grace_period`` by default); returns the exit status."""
        result: ExitStatus = await self._call(P.Stop(cid, signal, timeout))
        return result

    async def kill(self, cid: str, signal: str = "SIGKILL") -> None:
        await self._call(P.Kill(cid, signal))

    async def pause(self, cid: str) -> None:
        await self._call(P.Pause(cid))

    async def unpause(self, cid: str) -> None:
        await self._call(P.Unpause(cid))

    async def remove(self, cid: str, force: bool = False, volumes: bool = False) -> None:
        """Remove the container (its upper dir, cgroup, log); ``force`` kills it first,
        ``volumes`` also removes its anonymous volumes."""
        await self._call(P.Remove(cid, force, volumes))

    async def inspect(self, cid: str) -> ContainerInfo:
        result: ContainerInfo = await self._call(P.Inspect(cid))
        return result

    async def list(self) -> list[ContainerInfo]:
        result: list[ContainerInfo] = await self._call(P.ListContainers())
        return result

    async def top(self, cid: str) -> builtins.list[ProcessInfo]:
        result: builtins.list[ProcessInfo] = await self._call(P.Top(cid))
        return result

    async def attach(self, cid: str) -> trio.lowlevel.FdStream:
        """A stream to the stdin of a container created with ``stdin_open`` or ``tty``
        (its terminal then). Output is read from the logs (``logs.follow``)."""
        _attached, fds = await self._call_fds(P.Attach(cid))
        return trio.lowlevel.FdStream(fds[0])

    async def close_stdin(self, cid: str) -> None:
        """End a ``stdin_open`` container's stdin: the supervisor drops its end, so the
        program reads EOF once the streams from :meth:`attach` are closed too. For
        piped input (``echo x | pycompose run … cat``); no-op when already closed."""
        await self._call(P.CloseStdin(cid))

    async def resize(self, cid: str, rows: int, columns: int) -> None:
        """Set the terminal size of a ``tty`` container."""
        await self._call(P.Resize(cid, rows, columns))

    async def stats(self, cid: str) -> ContainerStats:
        """CPU time, memory and pids from the container's cgroup."""
        result: ContainerStats = await self._call(P.Stats(cid))
        return result

    async def shutdown(self) -> None:
        """Ask the supervisor to exit (containers keep running; a later
        :func:`open_runtime` starts a new one that re-adopts them). With no
        container left it also removes its cgroup parent and its trash."""
        await self._call(P.Shutdown())

    async def gc(self) -> GcReport:
        """Remove leftovers of containers that no longer exist (dirs, cgroups, mounts)."""
        result: GcReport = await self._call(P.Gc())
        return result

    def log_path(self, cid: str) -> Path:
        return log_path(self.root, cid)

    # -- exec -------------------------------------------------------------------------

    async def exec(self, cid: str, spec: ExecSpec) -> ExecProcess:
        """Start a process in the running container; its pipes come back as streams."""
        started, fds = await self._call_fds(P.Exec(cid, spec))
        return ExecProcess(self, started, fds)

    async def exec_run(self, cid: str, spec: ExecSpec, input: bytes = b"") -> ExecResult:
        """Run to completion, collecting output (what a health probe needs).
        Cancelling kills the process."""
        proc = await self.exec(cid, spec)
        out: list[bytes] = []
        err: list[bytes] = []

        async def pump(stream: trio.abc.ReceiveStream, into: list[bytes]) -> None:
            while chunk := await stream.receive_some(65536):
                into.append(bytes(chunk))

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump, proc.stdout, out)
                if proc.stderr is not None:
                    nursery.start_soon(pump, proc.stderr, err)
                if proc.stdin is not None:
                    if input:
                        await proc.stdin.send_all(input)
                    await proc.stdin.aclose()
            code = await proc.wait()
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                if proc.status is None:
                    with contextlib.suppress(errors.ContainerError):
                        await proc.kill()
            raise
        finally:
            await proc.aclose()
        return ExecResult(code, b"".join(out), b"".join(err))

    # -- events -----------------------------------------------------------------------

    @asynccontextmanager
    async def events(self, since: int = 0
                     ) -> AsyncIterator[trio.MemoryReceiveChannel[ContainerEvent]]:
        """A channel of :class:`ContainerEvent`; ``since`` replays retained events
        with a larger ``seq`` (pass the last one seen before a reconnect)."""
        send, recv = trio.open_memory_channel[ContainerEvent](1000)
        self._subscribers.add(send)
        try:
            await self._call(P.Subscribe(since))
            yield recv
        finally:
            self._subscribers.discard(send)
            send.close()

    # -- plumbing ---------------------------------------------------------------------

    async def _call(self, req: P.Request) -> Any:
        result, fds = await self._call_fds(req)
        for fd in fds:
            os.close(fd)
        return result

    async def _call_fds(self, req: P.Request) -> tuple[Any, builtins.list[int]]:
        if self._closed is not None:
            raise errors.SupervisorError(f"connection to the supervisor lost: {self._closed}")
        self._seq += 1
        seq = self._seq
        done = trio.Event()
        slot: list[Any] = []
        self._pending[seq] = (done, slot)
        try:
            async with self._send_lock:
                try:
                    await self._sock.send(P.encode_request(seq, req))
                except OSError as exc:
                    raise errors.SupervisorError(f"send to the supervisor: {exc}") from None
            await done.wait()
        finally:
            self._pending.pop(seq, None)
        msg, fds = slot
        if "error" in msg:
            for fd in fds:
                os.close(fd)
            raise _error_from(msg["error"])
        return from_json(req.result, msg["ok"]), fds

    async def _reader(self) -> None:
        buf = b""
        fd_queue: list[int] = []
        try:
            while True:
                data, anc, _flags, _addr = await self._sock.recvmsg(
                    1 << 16, _stdsocket.CMSG_SPACE(_MAX_FDS * 4))
                for level, kind, payload in anc:
                    if level == _stdsocket.SOL_SOCKET and kind == _stdsocket.SCM_RIGHTS:
                        n = len(payload) // 4
                        fd_queue.extend(int.from_bytes(payload[i * 4:i * 4 + 4], sys.byteorder)
                                        for i in range(n))
                if not data:
                    raise errors.SupervisorError("the supervisor closed the connection")
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._dispatch(json.loads(line), fd_queue)
        except (errors.SupervisorError, OSError) as exc:
            self._fail_pending(exc)
        finally:
            # Ended otherwise (the connection is being closed): no call waits forever.
            if self._closed is None:
                self._fail_pending(errors.SupervisorError("the connection was closed"))

    def _fail_pending(self, exc: BaseException) -> None:
        self._closed = exc
        for done, slot in list(self._pending.values()):
            slot[:] = [{"error": {"type": "SupervisorError", "message": str(exc)}}, []]
            done.set()
        for send in list(self._subscribers):
            send.close()

    def _dispatch(self, msg: dict[str, Any], fd_queue: builtins.list[int]) -> None:
        if "event" in msg:
            event = P.decode_event(msg["event"])
            for send in list(self._subscribers):
                try:
                    send.send_nowait(event)
                except (trio.WouldBlock, trio.ClosedResourceError):
                    self._subscribers.discard(send)
                    send.close()
            return
        nfds = int(msg.get("nfds", 0))
        fds, fd_queue[:] = fd_queue[:nfds], fd_queue[nfds:]
        pending = self._pending.get(int(msg["seq"]))
        if pending is None:
            for fd in fds:
                os.close(fd)
            return
        done, slot = pending
        slot[:] = [msg, fds]
        done.set()


_ERRORS: dict[str, type[errors.ContainerRuntimeError]] = {
    cls.__name__: cls for cls in (
        errors.ContainerError, errors.ContainerNotFoundError, errors.ContainerStateError,
        errors.SupervisorError, errors.CgroupError, errors.MountError, errors.ImageError,
        errors.SecurityError,
        errors.ContainerRuntimeError)
}


def _error_from(err: dict[str, Any]) -> errors.ContainerRuntimeError:
    if err.get("type") == "SpawnError":
        return errors.SpawnError(err.get("message", ""), step=err.get("step", ""),
                                 path=err.get("path", ""))
    cls = _ERRORS.get(err.get("type", ""), errors.ContainerRuntimeError)
    return cls(err.get("message", ""))


async def _connect(dirfd: int) -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    try:
        # Through /proc/self/fd: a state root may be deeper than sun_path's 108 bytes.
        await sock.connect(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
    except BaseException:
        sock.close()
        raise
    return sock


async def _start_supervisor(root: Path, instance: str) -> None:
    cmd = [sys.executable, "-m", "pycompose.runtime.supervisor", "--root", str(root),
           "--instance", instance, "--daemon"]
    result = await trio.run_process(cmd, check=False, capture_stdout=True,
                                    capture_stderr=True, stdin=b"")
    if result.returncode != 0:
        msg = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise errors.SupervisorError(f"cannot start the supervisor for {root}: {msg}")


@asynccontextmanager
async def open_runtime(root: str | os.PathLike[str], instance: str = "", *,
                       autostart: bool = True) -> AsyncIterator[Runtime]:
    """Connect to the supervisor of ``root``, starting it when none answers.

    ``instance`` tags host-wide names (the cgroup parent ``pycompose_<instance>``);
    it must match the running supervisor's.
    """
    root_path = Path(root).absolute()  # noqa: ASYNC240 - once per connection, local
    root_path.mkdir(parents=True, exist_ok=True)
    dirfd = os.open(root_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            sock = await _connect(dirfd)
        except OSError as exc:
            if not autostart or exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                raise errors.SupervisorError(f"connect to the supervisor of {root_path}: "
                                             f"{exc.strerror}") from None
            await _start_supervisor(root_path, instance)
            sock = await _connect_retry(dirfd, root_path)
        rt = Runtime(root_path, sock)
        try:
            hello = await _hello(sock)
            if hello.get("instance", "") != instance:
                raise errors.SupervisorError(
                    f"the supervisor of {root_path} runs for instance "
                    f"{hello.get('instance')!r}, not {instance!r}")
            # The reader never raises, so a group here only ever holds the
            # caller's own exception: hand that back unwrapped. It is shielded: a
            # caller that is cancelled still gets the answers to its shielded clean-up
            # calls (remove the container it was running); it ends with the block.
            reader_scope = trio.CancelScope(shield=True)

            async def read() -> None:
                with reader_scope:
                    await rt._reader()

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(read)
                    try:
                        yield rt
                    finally:
                        reader_scope.cancel()
            except BaseExceptionGroup as group:
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
        finally:
            sock.close()
    finally:
        os.close(dirfd)


async def _hello(sock: trio.socket.SocketType) -> dict[str, Any]:
    """The first exchange, before the reader task runs."""
    await sock.send(P.encode_request(0, P.Hello()))
    buf = b""
    while b"\n" not in buf:
        chunk = await sock.recv(4096)
        if not chunk:
            raise errors.SupervisorError("the supervisor closed the connection")
        buf += chunk
    msg = json.loads(buf.split(b"\n", 1)[0])
    if "error" in msg:
        raise _error_from(msg["error"])
    result: dict[str, Any] = msg["ok"]
    return result


async def _connect_retry(dirfd: int, root: Path) -> trio.socket.SocketType:
    # Only when two clients raced to start the supervisor: the loser's launcher
    # returns before the winner listens. Bounded, and normally never loops.
    for _ in range(100):
        try:
            return await _connect(dirfd)
        except OSError:
            await trio.sleep(0.05)
    raise errors.SupervisorError(f"the supervisor of {root} does not answer")
