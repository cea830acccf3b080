"""Which namespaces a container gets, and the order to enter them.

A new container unshares mount, uts, ipc, cgroup (after joining its cgroup,
so the cgroup namespace is rooted there) and, for ``netns: none``, net. Its
pid namespace is created by the supervisor just before the fork
(``unshare(CLONE_NEWPID)`` only affects children), so the container's init is
PID 1 *and* the supervisor's direct child: no intermediate process.

``exec`` joins an existing container in :data:`ORDERED_NAMESPACES` order:
pid is joined by the supervisor before it forks (again, for children only);
the child then joins the rest, mount last, because after it ``/proc/<pid>``
paths would be the container's.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from pycompose.runtime import syscalls

#: (name in /proc/PID/ns, clone flag), in the order exec joins them.
ORDERED_NAMESPACES: tuple[tuple[str, int], ...] = (
    ("cgroup", syscalls.CLONE_NEWCGROUP),
    ("ipc", syscalls.CLONE_NEWIPC),
    ("uts", syscalls.CLONE_NEWUTS),
    ("net", syscalls.CLONE_NEWNET),
    ("mnt", syscalls.CLONE_NEWNS),
)


def unshare_flags(netns: str) -> int:
    """Flags for the spawn child's ``unshare`` (pid is done by the supervisor)."""
    flags = (syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS | syscalls.CLONE_NEWIPC
             | syscalls.CLONE_NEWCGROUP)
    if netns == "none":
        flags |= syscalls.CLONE_NEWNET
    return int(flags)


def open_namespaces(pid: int) -> list[tuple[int, int]]:
    """Open the ns files of ``pid`` (before joining any) → ``[(fd, flag)]``."""
    fds = []
    own = {name: os.readlink(f"/proc/self/ns/{name}") for name, _ in ORDERED_NAMESPACES}
    for name, flag in ORDERED_NAMESPACES:
        path = f"/proc/{pid}/ns/{name}"
        if os.readlink(path) == own[name]:
            continue  # shared with the host (e.g. netns: host): nothing to join
        fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag))
    return fds


def join(fds: list[tuple[int, int]]) -> None:
    for fd, flag in fds:
        syscalls.setns(fd, flag)
        os.close(fd)


def bring_loopback_up() -> None:
    """``ip link set lo up`` in a fresh netns, with one ioctl (no netlink library in the child)."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
