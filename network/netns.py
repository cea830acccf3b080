"""Network namespaces as files under the state root: ``<root>/netns/<name>``.

A namespace is made by ``unshare(CLONE_NEWNET)`` on a worker thread (only
that thread moves), bind-mounting ``/proc/thread-self/ns/net`` onto the file,
bringing ``lo`` up, and ``setns`` back. No fork, no helper process. The file
keeps the namespace alive with no process in it; the container runtime opens
the path and ``setns``-es its container into it. ``network_mode: none`` is
exactly such a namespace (only ``lo``, up).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from pathlib import Path

from ._netlink import (
    bind_mount,
    ensure_host_ns,
    run_netlink,
    setns,
    umount_detach,
    unshare_net,
)
from .errors import LinkError

__all__ = ["create_netns", "is_netns", "list_netns", "netns_dir", "remove_netns"]


def netns_dir(root: Path) -> Path:
    return Path(root) / "netns"


def is_netns(path: Path | str) -> bool:
    """True if ``path`` is a bind-mounted network namespace file."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _lo_up() -> None:
    """``ip link set lo up`` in this thread's namespace: one ioctl, no netlink socket
    (opening an IPRoute costs ~1 ms, most of a namespace's creation)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = bytearray(struct.pack("16sH14x", b"lo", 0))
        fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req)
        flags = struct.unpack_from("H", req, 16)[0] | IFF_UP
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))


def _create(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_netns(path):
        return path  # already there: idempotent
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    except OSError as e:
        raise LinkError(f"cannot create netns file {path}: {e.strerror}") from None
    ensure_host_ns()
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            unshare_net()
            try:
                bind_mount("/proc/thread-self/ns/net", str(path))
                _lo_up()
            finally:
                setns(home)
        except OSError as e:
            _remove(path)
            raise LinkError(f"cannot create network namespace {path}: {e.strerror}") from None
        except BaseException:
            _remove(path)
            raise
    finally:
        os.close(home)
    return path


def _remove(path: Path) -> None:
    try:
        umount_detach(str(path))
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise LinkError(f"cannot unmount network namespace {path}: {e.strerror}") from None
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise LinkError(f"cannot remove network namespace file {path}: {e.strerror}") from None


def check_name(name: str) -> str:
    if "/" in name or name in ("", ".", "..") or name.startswith("."):
        raise LinkError(f"invalid netns name {name!r}")
    return name


async def create_netns(root: Path, name: str) -> Path:
    """Create (or find) the namespace ``<root>/netns/<name>`` with ``lo`` up; return its path."""
    path = netns_dir(root) / check_name(name)
    return await run_netlink(lambda: _create(path))


async def remove_netns(path: Path) -> None:
    """Unmount and delete a namespace file; a missing one is fine (idempotent)."""
    await run_netlink(lambda: _remove(Path(path)))


def list_netns(root: Path) -> list[Path]:
    """Namespace files under ``<root>/netns`` (for garbage collection)."""
    d = netns_dir(root)
    try:
        return sorted(p for p in d.iterdir() if not p.name.startswith("."))
    except FileNotFoundError:
        return []
