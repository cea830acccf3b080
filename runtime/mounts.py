"""Mounts inside the container's mount namespace (spawn child, before pivot_root).

Targets are resolved with :func:`rootfs.secure_join`, so an image symlink can
never redirect a mount onto the host. Mount points are created as needed: a
directory, or an empty file when the source is a file (Docker's behaviour).
User mounts are applied shallowest first, so ``/data`` is mounted before
``/data/cache``.
"""

from __future__ import annotations

import os
import shutil

from pycompose.runtime import syscalls
from pycompose.runtime.rootfs import secure_join

_NOSUID_NOEXEC_NODEV = syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_NODEV


def make_mountpoint(target: str, *, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.lexists(target):
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def mount_proc(rootfs: str) -> None:
    target = secure_join(rootfs, "/proc")
    make_mountpoint(target, is_dir=True)
    syscalls.mount("proc", target, "proc", _NOSUID_NOEXEC_NODEV)


def mount_sys(rootfs: str) -> None:
    target = secure_join(rootfs, "/sys")
    make_mountpoint(target, is_dir=True)
    syscalls.mount("sysfs", target, "sysfs", _NOSUID_NOEXEC_NODEV | syscalls.MS_RDONLY)


def bind(source: str, rootfs: str, target: str, *, read_only: bool,
         recursive: bool = True) -> str:
    """Bind ``source`` at ``target`` inside ``rootfs``; returns the resolved target."""
    dest = secure_join(rootfs, target)
    make_mountpoint(dest, is_dir=os.path.isdir(source))
    flags = syscalls.MS_BIND | (syscalls.MS_REC if recursive else 0)
    # No propagation change needed: the spawn child made its whole mount tree
    # private first, and binds inside it are born private.
    syscalls.mount(source, dest, None, flags)
    if read_only:
        remount_readonly(dest)
    return str(dest)


def remount_readonly(path: str) -> None:
    """Make one mount read-only, keeping the flags the kernel insists on (nosuid, …)."""
    st = os.statvfs(path)
    keep = 0
    for vfs_flag, ms_flag in ((os.ST_NOSUID, syscalls.MS_NOSUID), (os.ST_NODEV, syscalls.MS_NODEV),
                              (os.ST_NOEXEC, syscalls.MS_NOEXEC)):
        if st.f_flag & vfs_flag:
            keep |= ms_flag
    syscalls.mount(None, path, None,
                   syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY | keep)


def mount_tmpfs(rootfs: str, target: str, *, size: int | None, mode: int | None,
                read_only: bool = False) -> None:
    dest = secure_join(rootfs, target)
    make_mountpoint(dest, is_dir=True)
    opts = f"mode={mode if mode is not None else 0o1777:o}"
    if size:
        opts += f",size={size}"
    flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | (syscalls.MS_RDONLY if read_only else 0)
    syscalls.mount("tmpfs", dest, "tmpfs", flags, opts)


def populate_volume(rootfs: str, target: str, volume_dir: str) -> None:
    """Copy the image's content at ``target`` into an empty volume (first use).

    Ownership and modes come along, like Docker's copy-up. Does nothing when the
    volume already has content or the image has nothing there.
    """
    src = secure_join(rootfs, target)
    if not os.path.isdir(src) or os.listdir(volume_dir):
        return
    st = os.stat(src)
    os.chown(volume_dir, st.st_uid, st.st_gid)
    os.chmod(volume_dir, st.st_mode & 0o7777)
    for entry in os.listdir(src):
        s, d = os.path.join(src, entry), os.path.join(volume_dir, entry)
        if os.path.isdir(s) and not os.path.islink(s):
            shutil.copytree(s, d, symlinks=True, copy_function=_copy_owned)
            _copy_tree_owners(s, d)
        else:
            _copy_owned(s, d)


def _copy_owned(src: str, dst: str) -> None:
    shutil.copy2(src, dst, follow_symlinks=False)
    st = os.lstat(src)
    os.lchown(dst, st.st_uid, st.st_gid)


def _copy_tree_owners(src: str, dst: str) -> None:
    for dirpath, dirnames, _ in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        st = os.lstat(dirpath)
        os.lchown(os.path.join(dst, rel), st.st_uid, st.st_gid)
        del dirnames[:0]
