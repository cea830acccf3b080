"""Thin ctypes wrappers for the Linux syscalls the standard library lacks (on 3.11).

Each wrapper raises ``OSError`` with errno and the arguments in the message,
so the caller (which knows what it was trying to do) can wrap it once into a
runtime error. They are safe to call in a forked child: no allocation beyond
argument encoding, no threads, no locks.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import struct

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# clone / unshare / setns flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# umount2 flags
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# prctl options (linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# pivot_root has no libc wrapper; its number depends on the architecture.
_SYS_pivot_root = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203,
                   "s390x": 217}.get(os.uname().machine, 155)

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

SYNC_FILE_RANGE_WRITE = 2

# inode flags (linux/fs.h): the ioctls read and write an int
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def syncfs(fd: int) -> None:
    """syncfs(2): flush the filesystem that holds ``fd``."""
    _check(_libc.syncfs(fd), "syncfs")


def start_writeback(fd: int) -> None:
    """Start writing the dirty pages of file ``fd`` to disk and return without waiting
    (sync_file_range(2), SYNC_FILE_RANGE_WRITE). Advisory: a flush that follows waits
    for less, and it reports any I/O error, so errors here are ignored."""
    _libc.sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)


def spread_subdirectories(fd: int) -> bool:
    """Mark directory ``fd`` as a top of directory hierarchies (``chattr +T``): ext4's
    block allocator then places each subdirectory made in it, with the files made in
    that, in a block group of its own choosing instead of this directory's. Advisory:
    False where the filesystem has no such flag (tmpfs, overlayfs, ...)."""
    with contextlib.suppress(OSError):
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 4))[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_TOPDIR_FL))
        return True
    return False


def _b(value: str | bytes | os.PathLike[str] | None) -> bytes | None:
    if value is None:
        return None
    return os.fsencode(value)


def mount(source: str | os.PathLike[str] | None, target: str | os.PathLike[str],
          fstype: str | None = None, flags: int = 0, data: str | None = None) -> None:
    """mount(2). ``data`` is the filesystem's option string (e.g. overlay's lowerdir=…)."""
    buf = ctypes.c_char_p(_b(data)) if data is not None else None
    res = _libc.mount(_b(source), _b(target), _b(fstype), flags,
                      ctypes.cast(buf, ctypes.c_void_p) if buf is not None else None)
    _check(res, f"mount {source!s} on {target!s} (type {fstype}, flags {flags:#x}, data {data!r})")


def umount(target: str | os.PathLike[str], flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), flags), f"umount {target!s}")


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    """pivot_root(2): make ``new_root`` the root; the old root moves to ``put_old``."""
    res = _libc.syscall(_SYS_pivot_root, _b(new_root), _b(put_old))
    _check(res, f"pivot_root {new_root!s} {put_old!s}")


def unshare(flags: int) -> None:
    """unshare(2) with CLONE_NEW* flags."""
    _check(_libc.unshare(flags), f"unshare {flags:#x}")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace behind ``fd`` (a /proc/PID/ns/* or pidfd)."""
    _check(_libc.setns(fd, nstype), f"setns fd {fd} type {nstype:#x}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname {name!r}")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), f"setdomainname {name!r}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's result (some options return a value)."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl {option}")


def set_process_name(name: str) -> None:
    """Name this process (visible in ``ps -o comm``) so a stuck stage shows which one."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(PR_SET_NAME, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0),
           f"prctl PR_SET_NAME {name!r}")
