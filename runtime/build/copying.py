"""COPY/ADD helpers: image lookups through overlay-form layers, ``--chown`` names,
parent directories with the image's metadata, read-only views of other stages and
images, and archive extraction for ``ADD``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path

from pycompose.runtime.build.context import Ignore, expand
from pycompose.runtime.build.errors import DockerfileError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

def lookup(lowers: Sequence[Path], rel: str) -> Path | None:
    """The topmost entry for ``rel`` in overlay-form layers (whiteouts and opaque dirs)."""
    parts = [p for p in rel.split("/") if p]
    for layer in reversed(lowers):
        path = layer.joinpath(*parts) if parts else layer
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is not None:
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None
            return path
        # An opaque parent in this layer hides the layers below.
        for n in range(len(parts) - 1, 0, -1):
            parent = layer.joinpath(*parts[:n])
            with contextlib.suppress(OSError):
                if os.getxattr(parent, "trusted.overlay.opaque") == b"y":
                    return None
    return None


def read_file(lowers: Sequence[Path], rel: str) -> str:
    path = lookup(lowers, rel)
    if path is None or not path.is_file():
        return ""
    return path.read_text(errors="replace")


def chown_ids(value: str | None, lowers: Sequence[Path], where: str) -> tuple[int | None,
                                                                          int | None]:
    if not value:
        return None, None
    user, _, group = value.partition(":")

    def resolve(name: str, file: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        for line in read_file(lowers, file).splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise DockerfileError(f"{where}: --chown: unknown {what} {name!r} in the image")

    uid = resolve(user, "etc/passwd", "user")
    if group:
        gid = resolve(group, "etc/group", "group")
    elif user.isdigit():
        gid = uid
    else:
        gid = next((int(f[3]) for f in (line.split(":") for line in
                                        read_file(lowers, "etc/passwd").splitlines())
                    if len(f) > 3 and f[0] == user and f[3].isdigit()), uid)
    return uid, gid


def make_parents(diff: Path, lowers: Sequence[Path], rel_dir: str) -> None:
    """Create ``rel_dir`` in ``diff`` with each directory's metadata from the image."""
    parts = [p for p in rel_dir.split("/") if p]
    for n in range(1, len(parts) + 1):
        rel = "/".join(parts[:n])
        out = diff / rel
        if out.exists():
            continue
        out.mkdir()
        lower = lookup(lowers, rel)
        if lower is not None and lower.is_dir():
            st = os.lstat(lower)
            os.chmod(out, stat.S_IMODE(st.st_mode))
            os.lchown(out, st.st_uid, st.st_gid)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            os.chmod(out, 0o755)


def mount_view(dest: Path, layers: Sequence[Path], *, upper: Path | None = None) -> None:
    """Mount the merged view of overlay-form ``layers`` at the existing directory ``dest``:
    read-only, or writable over ``upper`` (``upper/diff``, ``upper/work``: what is written
    stays there, the layers are never changed). No layers: ``dest`` stays as it is."""
    from pycompose.runtime import syscalls
    from pycompose.runtime.mounts import remount_readonly

    if upper is not None:
        (upper / "diff").mkdir()
        (upper / "work").mkdir()
        lowers = ":".join(str(p) for p in reversed(layers)) if layers else str(upper / "empty")
        if not layers:
            (upper / "empty").mkdir()
        syscalls.mount("overlay", str(dest), "overlay", 0,
                       f"lowerdir={lowers},upperdir={upper / 'diff'},workdir={upper / 'work'}")
    elif len(layers) == 1:
        # A bind of the store's own layer directory: read-only, so that nothing done
        # through it (a copy, a cleanup) can change the image.
        syscalls.mount(str(layers[0]), str(dest), None, syscalls.MS_BIND | syscalls.MS_REC)
        try:
            remount_readonly(str(dest))
        except BaseException:
            unmount(dest)
            raise
    elif layers:
        lowers = ":".join(str(p) for p in reversed(layers))
        syscalls.mount("overlay", str(dest), "overlay", syscalls.MS_RDONLY,
                       f"lowerdir={lowers}")


def mount_sources(work: Path, layers: list[Path], sources: list[str],
                  where: str) -> list[tuple[Path, str]]:
    """A read-only merged view of a stage's or image's layers at ``work/src``; the sources
    in it. Unmounted again if the sources cannot be found."""
    src = work / "src"
    src.mkdir()
    mount_view(src, layers)
    try:
        return [e for s in sources for e in expand(src, s, Ignore(), where)]
    except BaseException:
        unmount(src)
        raise


def unmount(path: Path) -> None:
    """Detach the mount at ``path``, if there is one (``os.path.ismount`` cannot tell a
    bind mount from the same filesystem; umount2 can)."""
    from pycompose.runtime import syscalls

    try:
        syscalls.umount(str(path), syscalls.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):  # not a mount point, no such path
            raise


def extract_archive(archive: Path, dest: Path, where: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="tar")
    except (tarfile.TarError, OSError) as exc:
        raise DockerfileError(f"{where}: ADD {archive.name}: cannot extract: {exc}") from None
