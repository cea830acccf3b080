"""The container's root filesystem: overlayfs of the image layers + an upper dir.

Per container, under ``<root>/containers/<id>/``: ``upper/`` and ``work/``
(overlay's writable layer and scratch), ``rootfs/`` (the mount point of the
merged view; only ever mounted inside the container's own mount namespace,
so the host never sees it mounted). Removing a container renames its
directory into ``<root>/trash/`` (cheap) and the supervisor deletes it when
idle: rmtree stays off the spawn/remove hot path.

:func:`secure_join` resolves a path inside a root directory the way the
container will see it: symlinks are followed relative to the root, never out
of it (``../../etc`` and ``/etc`` both stay inside).
"""

from __future__ import annotations

import os
import stat

from pycompose.runtime import syscalls
from pycompose.runtime.errors import MountError

_MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    """``root`` + ``unsafe`` with every symlink resolved inside ``root``.

    Missing components are kept as they are (the caller may create them).
    """
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise OSError(40, f"too many levels of symbolic links in {unsafe}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def container_dir(state_root: str, cid: str) -> str:
    return os.path.join(state_root, "containers", cid)


def prepare_dirs(cdir: str) -> None:
    """Create the container's upper, work and mount-point directories."""
    for name in ("upper", "work", "rootfs"):
        os.makedirs(os.path.join(cdir, name), mode=0o700 if name == "work" else 0o755,
                    exist_ok=True)


def mount_overlay(layers: tuple[str, ...], cdir: str) -> str:
    """Mount the merged view at ``cdir/rootfs``; returns that path.

    overlayfs lists lower dirs top first; the spec gives them bottom first.
    Long lists go through relative paths from the layers' common parent, as
    mount options are limited to one page.
    """
    target = os.path.join(cdir, "rootfs")
    lowers = list(reversed(layers))
    upper, work = os.path.join(cdir, "upper"), os.path.join(cdir, "work")
    data = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"
    cwd = None
    if len(data) > 3800:
        common = os.path.commonpath(lowers)
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        os.chdir(common)
        rel = [os.path.relpath(p, common) for p in lowers]
        data = f"lowerdir={':'.join(rel)},upperdir={upper},workdir={work}"
    try:
        syscalls.mount("overlay", target, "overlay", 0, data)
    except OSError as exc:
        raise MountError(f"mount overlay on {target}: {exc.strerror} ({data})") from None
    finally:
        if cwd is not None:
            os.fchdir(cwd)
            os.close(cwd)
    return target


def pivot_into(new_root: str) -> None:
    """pivot_root into ``new_root`` and detach the old root (runc's "." "." trick)."""
    os.chdir(new_root)
    syscalls.pivot_root(".", ".")
    # The old root now sits on top of the new one at "/"; make it private so the
    # detach does not propagate, then lazily unmount it.
    syscalls.mount(None, ".", None, syscalls.MS_SLAVE | syscalls.MS_REC)
    syscalls.umount(".", syscalls.MNT_DETACH)
    os.chdir("/")


def remount_readonly_root() -> None:
    """Make the (already pivoted) root read-only, keeping the mounts below it as they are."""
    syscalls.mount(None, "/", None,
                   syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY)
