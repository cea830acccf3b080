"""Shared netlink plumbing: error mapping, the thread limiter, per-thread setns.

Why per-thread ``setns`` and not pyroute2's ``NetNS``: ``NetNS(path)`` forks a
child for every socket it opens (it must: it cannot move the caller), which
costs ~7 ms here and forks the engine. Network namespaces are per *thread*
in Linux, so a worker thread can ``setns`` into the container's namespace,
open a plain ``IPRoute()`` there (the netlink socket stays bound to the
namespace it was created in), and ``setns`` back at once: ~0.7 ms, no fork.
The thread is out of the host namespace only while the socket is created,
and every step first checks it is back (trio reuses worker threads).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import trio

from .errors import LinkError, LinkExistsError, LinkNotFoundError

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MNT_DETACH = 2

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)

#: netlink and namespace steps run in worker threads; this bounds how many at once.
NETLINK_LIMITER = trio.CapacityLimiter(8)


async def run_netlink(fn: Callable[[], T]) -> T:
    """Run one self-contained blocking netlink step in a worker thread."""
    return await trio.to_thread.run_sync(fn, limiter=NETLINK_LIMITER)


def _errcheck(rc: int, what: str, path: str | None = None) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def setns(fd: int) -> None:
    _errcheck(_libc.setns(fd, CLONE_NEWNET), "setns")


def unshare_net() -> None:
    _errcheck(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def bind_mount(src: str, dst: str) -> None:
    _errcheck(_libc.mount(src.encode(), dst.encode(), None, MS_BIND, None), "mount", dst)


def umount_detach(path: str) -> None:
    _errcheck(_libc.umount2(path.encode(), MNT_DETACH), "umount", path)


def _same_ns(a: str, b: str) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def ensure_host_ns() -> None:
    """Put this thread back into the process's namespace if a failed step left it out."""
    if not _same_ns("/proc/thread-self/ns/net", "/proc/self/ns/net"):
        fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the body with this thread inside the namespace at ``path``; always come back.

    Keep the body short (open sockets there, nothing else): the thread is a
    shared worker.
    """
    ensure_host_ns()
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise LinkNotFoundError(f"network namespace {path} does not exist") from None
        try:
            setns(fd)
        except OSError as e:
            raise LinkError(f"cannot enter network namespace {path}: {e.strerror}") from None
        finally:
            os.close(fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


@contextlib.contextmanager
def map_netlink_errors(what: str) -> Iterator[None]:
    """Turn ``NetlinkError``/``OSError`` into :mod:`network.errors`, naming ``what``."""
    from pyroute2 import NetlinkError

    try:
        yield
    except NetlinkError as e:
        code = e.code
        msg = f"{what}: {os.strerror(code) if code > 0 else e}"
        if code in (errno.ENODEV, errno.ENOENT):
            raise LinkNotFoundError(msg) from None
        if code in (errno.EEXIST, errno.EADDRINUSE, errno.ENOTUNIQ):
            raise LinkExistsError(msg) from None
        raise LinkError(msg) from None
    except FileNotFoundError as e:
        raise LinkNotFoundError(f"{what}: {e.filename or ''} does not exist") from None
    except OSError as e:
        raise LinkError(f"{what}: {e.strerror or e}") from None


def ignoring_missing() -> contextlib.AbstractContextManager[None]:
    """For idempotent deletes: a missing object is success."""
    return contextlib.suppress(LinkNotFoundError)
