"""A minimal /dev, as Docker gives one: a small tmpfs with the usual nodes.

null, zero, full, random, urandom, tty (and console when the container has a
terminal) as real character devices; ``pts`` is a fresh devpts instance (its
own pty numbering, ``ptmx`` a symlink into it); ``shm`` a tmpfs of
``shm_size``; ``mqueue`` the IPC namespace's message queues; the usual
symlinks to /proc. Runs in the spawn child, before pivot_root.
"""

from __future__ import annotations

import os
import stat

from pycompose.runtime import syscalls

#: name → (major, minor, mode)
DEVICES: dict[str, tuple[int, int, int]] = {
    "null": (1, 3, 0o666),
    "zero": (1, 5, 0o666),
    "full": (1, 7, 0o666),
    "random": (1, 8, 0o666),
    "urandom": (1, 9, 0o666),
    "tty": (5, 0, 0o666),
}
SYMLINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "core": "/proc/kcore",
    "ptmx": "pts/ptmx",
}
_NOSUID_NOEXEC_NODEV = syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_NODEV


def setup_dev(rootfs: str, shm_size: int) -> None:
    """Mount and fill ``rootfs/dev``."""
    dev = os.path.join(rootfs, "dev")
    os.makedirs(dev, exist_ok=True)
    syscalls.mount("tmpfs", dev, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_STRICTATIME,
                   "mode=755,size=65536k")
    old = os.umask(0)
    try:
        for name, (major, minor, mode) in DEVICES.items():
            os.mknod(os.path.join(dev, name), stat.S_IFCHR | mode, os.makedev(major, minor))
        for name, target in SYMLINKS.items():
            os.symlink(target, os.path.join(dev, name))
        for sub in ("pts", "shm", "mqueue"):
            os.mkdir(os.path.join(dev, sub), 0o755)
    finally:
        os.umask(old)
    syscalls.mount("devpts", os.path.join(dev, "pts"), "devpts",
                   syscalls.MS_NOSUID | syscalls.MS_NOEXEC,
                   "newinstance,ptmxmode=0666,mode=0620,gid=5")
    syscalls.mount("shm", os.path.join(dev, "shm"), "tmpfs", _NOSUID_NOEXEC_NODEV,
                   f"mode=1777,size={shm_size}")
    syscalls.mount("mqueue", os.path.join(dev, "mqueue"), "mqueue", _NOSUID_NOEXEC_NODEV)
