"""Holds the read ends of the containers' log pipes, so a supervisor can die.

A container's stdout and stderr are pipes whose read ends the supervisor
reads. If the supervisor died holding the only read ends, the next write of
the container would get SIGPIPE. So every read end is also parked here: a tiny
process per state root (forked from the supervisor before it imports
anything heavy) that does nothing but keep file descriptors open and hand
them back. A restarted supervisor asks for them (``GET``) and resumes the
capture where the pipe stands; nothing written meanwhile is lost, up to the
pipe's 64 KiB buffer, after which the container blocks until then.

Protocol on ``<root>/fdkeeper.sock`` (``SOCK_SEQPACKET``, one message each,
fds by ``SCM_RIGHTS``): ``PUT <key>`` with fds, ``DROP <key>``, ``GET`` →
one ``KEY <key>`` message with its fds per entry, then ``END``. The keeper
exits when its last client leaves while it holds nothing.
"""

from __future__ import annotations

import array
import contextlib
import os
import selectors
import signal
import socket

SOCKET_NAME = "fdkeeper.sock"
_MAX_FDS = 8


def _recv(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    msg, anc, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
    return msg, list(fds)


def _send(sock: socket.socket, msg: bytes, fds: list[int] | None = None) -> None:
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
    sock.sendmsg([msg], anc)


def serve(listener: socket.socket) -> None:
    """The keeper's loop (in its own process)."""
    held: dict[str, list[int]] = {}
    clients: set[socket.socket] = set()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                conn, _ = listener.accept()
                clients.add(conn)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                msg, fds = _recv(sock)
            except OSError:
                msg, fds = b"", []
            if not msg:
                sel.unregister(sock)
                clients.discard(sock)
                sock.close()
                if not clients and not held:
                    return
                continue
            verb, _, arg = msg.decode().partition(" ")
            if verb == "PUT":
                for fd in held.pop(arg, []):
                    os.close(fd)
                held[arg] = fds
            elif verb == "DROP":
                for fd in held.pop(arg, []) + fds:
                    os.close(fd)
            elif verb == "GET":
                with contextlib.suppress(OSError):
                    for name, kept in held.items():
                        _send(sock, f"KEY {name}".encode(), kept)
                    _send(sock, b"END")


def start(root: str) -> None:
    """Start a keeper for ``root`` unless one answers; returns once it listens."""
    if connect(root) is not None:
        return
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    path = f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
        os.close(dirfd)
    listener.listen(8)
    pid = os.fork()
    if pid:
        listener.close()
        os.waitpid(pid, 0)  # the intermediate exits at once
        return
    # The keeper: own session, survives the supervisor, ignores terminal signals.
    try:
        # Keep nothing of the supervisor's but the listener (a launcher waits
        # for EOF on a pipe the supervisor holds; the keeper must not hold it).
        keep = listener.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 65536)
        os.setsid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            from pycompose.runtime import syscalls

            syscalls.set_process_name("pc:fdkeeper")
        # Double fork: the supervisor need not reap it, and it is nobody's
        # subreaper business when the supervisor goes.
        if os.fork():
            os._exit(0)
        serve(listener)
    finally:
        os._exit(0)


def connect(root: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.connect(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
    except OSError:
        sock.close()
        return None
    finally:
        os.close(dirfd)
    return sock


class Keeper:
    """The supervisor's side: park, drop and take back fds."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def put(self, key: str, fds: list[int]) -> None:
        _send(self.sock, f"PUT {key}".encode(), fds)

    def drop(self, key: str) -> None:
        _send(self.sock, f"DROP {key}".encode())

    def take_all(self) -> dict[str, list[int]]:
        """Every parked entry (the keeper keeps its copies)."""
        _send(self.sock, b"GET")
        out: dict[str, list[int]] = {}
        while True:
            msg, fds = _recv(self.sock)
            if msg == b"END" or not msg:
                return out
            out[msg.decode().split(" ", 1)[1]] = fds
