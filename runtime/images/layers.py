"""Layer tars to directories and back, safely, with OCI ↔ overlayfs whiteouts.

Unpacking (``unpack_layer``) writes one layer into its own empty directory,
which later serves as an overlayfs lower dir. A layer tar is untrusted input:

* Every path is resolved component by component from a directory fd of the
  layer root with ``O_NOFOLLOW``; nothing is ever opened by a full path. A
  symlink met in a *parent* position is followed *inside* the layer (absolute
  targets and ``..`` are clamped to the layer root, as Docker's chrooted
  unpack does), so ``link -> /etc`` followed by ``link/passwd`` writes
  ``<layer>/etc/passwd``, never the host's. The final component is never
  followed: an existing entry there is replaced.
* A name whose ``..`` climbs above the layer root is refused; a leading ``/``
  is dropped (the name is layer-relative, as GNU tar does).
* Hard links must point at a file or symlink already unpacked in this layer.
* Device nodes are skipped (recorded in ``UnpackResult.skipped``): containers
  get their ``/dev`` from the runtime, and a device node in an image would be
  a way around the device cgroup. The only device made is the overlay
  whiteout, a character device 0/0. FIFOs are kept.
* Owners are numeric uid/gid (names in the tar are ignored) and applied only
  when running as root; modes keep setuid/setgid/sticky bits (applied after
  chown, which clears them). Extended attributes from PAX records are kept
  for ``user.*`` and ``security.capability``; ``trusted.*`` (overlay's own
  ``trusted.overlay.*`` could redirect lookups) and other namespaces are
  skipped.

Whiteouts: ``.wh.NAME`` becomes a character device 0/0 named ``NAME`` and
``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory; other
``.wh..wh.*`` names (aufs bookkeeping) are ignored. ``write_layer_tar`` does
the reverse for an overlay upper directory (the diff of a container or a
build step).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import io
import os
import shutil
import stat
import tarfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

from pycompose.runtime import syscalls
from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.compression import DECODE_ERRORS
from pycompose.runtime.images.tarsplit import TarRecorder

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# xattrs of an upper dir that a plain layer cannot express (mount with redirect_dir=off,
# metacopy=off to avoid them).
UNSUPPORTED_OVERLAY_XATTRS = (
    "trusted.overlay.redirect", "trusted.overlay.metacopy",
    "user.overlay.redirect", "user.overlay.metacopy",
)
MAX_SYMLINK_HOPS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20
# Writeback of a file's data starts as it is written (every _WRITEBACK_STEP bytes, and at
# the end of a file of at least _WRITEBACK_MIN): the flush before the layer is named then
# waits for little, and the disk works while the rest downloads. Smaller files are left
# to that flush, which writes them in one batch.
_WRITEBACK_STEP = 8 << 20
_WRITEBACK_MIN = 256 << 10
_T = TypeVar("_T")


@dataclass
class UnpackResult:
    """What one layer unpack did: bytes of file content, entries made, entries skipped.

    ``reproducible`` is False when the tar overwrote a file it had written, so
    its bytes cannot be rebuilt from the directory (see ``tarsplit``).
    """

    size: int = 0
    entries: int = 0
    skipped: list[str] = field(default_factory=list)
    reproducible: bool = True


def keep_xattr(name: str) -> bool:
    """Extended attributes carried from a layer tar to disk (and back)."""
    if name.startswith("user."):
        return not name.startswith("user.overlay.")
    return name == "security.capability"


def unpack_layer(
    stream: BinaryIO, dest: Path, *, source: str, recorder: TarRecorder | None = None
) -> UnpackResult:
    """Unpack the (decompressed) tar ``stream`` into the empty directory ``dest``.

    Raises ``ImageError`` naming ``source`` and the entry on hostile or corrupt
    input; the caller discards ``dest`` then. ``recorder`` (the ``TarRecorder``
    that ``stream`` reads through) is told where each file's contents are.
    """
    root_fd = os.open(dest, _DIR_FLAGS)
    forward = _ForwardReader(stream)
    unpacker = _Unpacker(root_fd, source, recorder, forward)
    try:
        # Random-access mode on a forward-only stream: tarfile reads headers and file
        # data directly (stream mode, ``r|``, copies everything through a 10 KiB buffer).
        with tarfile.TarFile(
            fileobj=cast(BinaryIO, forward), mode="r", encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            for member in tar:
                unpacker.entry(tar, member)
        unpacker.finish()
    except tarfile.TarError as exc:
        raise ImageError(f"{source}: corrupt or truncated layer tar: {exc}") from None
    except DECODE_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise ImageError(
                f"{source}: {unpacker.current}: {exc.strerror or exc}"
            ) from None
        raise ImageError(f"{source}: corrupt or truncated layer: {exc}") from None
    finally:
        unpacker.close()
        os.close(root_fd)
    return unpacker.result


class _ForwardReader:
    """A stream that ``tarfile`` may treat as seekable: ``seek`` only goes forward (it
    reads and drops the bytes skipped) and ``read`` returns exactly what is asked for,
    short only at the end. A layer tar never needs to go back: tarfile's own seeks
    skip unread file data and block padding.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pos = 0

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or pos < self._pos:
            raise io.UnsupportedOperation("a layer stream cannot seek backwards")
        while self._pos < pos:
            chunk = self._raw.read(min(pos - self._pos, _COPY_CHUNK))
            if not chunk:
                break  # the next read comes back short: tarfile reports the truncation
            self._pos += len(chunk)
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            out = []
            while chunk := self._raw.read(_COPY_CHUNK):
                out.append(chunk)
            data = b"".join(out)
            self._pos += len(data)
            return data
        data = self._raw.read(size)
        if 0 < len(data) < size:
            parts = [data]
            got = len(data)
            while got < size and (chunk := self._raw.read(size - got)):
                parts.append(chunk)
                got += len(chunk)
            data = b"".join(parts)
        self._pos += len(data)
        return data

    def read_some(self, size: int) -> bytes:
        """At most ``size`` bytes, whatever one read of the source gives (b"" at the end)."""
        data = self._raw.read(size)
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


class _Unpacker:
    def __init__(self, root_fd: int, source: str, recorder: TarRecorder | None,
                 stream: _ForwardReader) -> None:
        self.root_fd = root_fd
        self.source = source
        self.recorder = recorder
        self.stream = stream
        self._payloads: set[str] = set()  # files whose contents the record refers to
        self.as_root = os.geteuid() == 0
        # The owner a new entry has without a chown: ours, unless the layer root is setgid
        # (its group would be inherited). Directories keep the modes they are made with
        # until ``finish``, so no setgid directory appears while entries are made.
        self._own: tuple[int, int] | None = (
            None if os.fstat(root_fd).st_mode & stat.S_ISGID else (os.geteuid(), os.getegid()))
        self.result = UnpackResult()
        self.current = "(start)"
        # The last parent directory resolved: (lexical parts, real parts, fd).
        self._cache: tuple[tuple[str, ...], tuple[str, ...], int] | None = None
        # Directory modes and mtimes, applied at the end (deepest first) so that a
        # read-only directory does not stop its own children from being written.
        self._dirs: list[tuple[tuple[str, ...], int, int]] = []

    # --- paths ----------------------------------------------------------------------

    def _fail(self, why: str) -> ImageError:
        return ImageError(f"{self.source}: {self.current}: {why}")

    def _split(self, name: str) -> tuple[str, ...]:
        parts: list[str] = []
        for comp in name.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not parts:
                    raise self._fail("path escapes the layer directory")
                parts.pop()
            else:
                parts.append(comp)
        return tuple(parts)

    def _invalidate(self) -> None:
        if self._cache is not None:
            os.close(self._cache[2])
            self._cache = None

    def close(self) -> None:
        self._invalidate()

    def _parent(self, parts: tuple[str, ...], *, create: bool) -> tuple[tuple[str, ...], int]:
        """Resolve directory ``parts`` inside the layer; return its real parts and a borrowed fd."""
        if self._cache is not None and self._cache[0] == parts:
            return self._cache[1], self._cache[2]
        self._invalidate()
        real, fd = self._walk(parts, create=create)
        self._cache = (parts, real, fd)
        return real, fd

    def _walk(self, parts: tuple[str, ...], *, create: bool) -> tuple[tuple[str, ...], int]:
        todo = list(reversed(parts))
        fds = [self.root_fd]
        names: list[str] = []
        hops = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(fds) > 1:
                        os.close(fds.pop())
                        names.pop()
                    continue
                cur = fds[-1]
                try:
                    st: os.stat_result | None = os.lstat(comp, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise self._fail(f"{'/'.join([*names, comp])} does not exist") from None
                    os.mkdir(comp, 0o755, dir_fd=cur)  # implicit parent, as Docker makes them
                    st = None
                if st is not None and stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise self._fail("too many levels of symbolic links")
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        while len(fds) > 1:
                            os.close(fds.pop())
                            names.pop()
                    todo.extend(reversed(target.split("/")))
                    continue
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    raise self._fail(f"{'/'.join([*names, comp])} is not a directory")
                fds.append(os.open(comp, _DIR_FLAGS, dir_fd=cur))
                names.append(comp)
            result = fds.pop() if len(fds) > 1 else os.dup(self.root_fd)
            return tuple(names), result
        finally:
            for fd in fds[1:]:
                os.close(fd)

    def _open_real(self, real: tuple[str, ...]) -> int:
        """Open a directory by its real (symlink-free) parts, refusing any symlink on the way."""
        fd = os.dup(self.root_fd)
        for comp in real:
            try:
                nxt = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nxt
        return fd

    def _create(self, pfd: int, name: str, real: tuple[str, ...], make: Callable[[], _T]) -> _T:
        """``make()`` the entry ``name``; if something is there (a tar may replace what it
        wrote), remove it and make it again. Trying first saves a stat per entry."""
        try:
            return make()
        except FileExistsError:
            self._clear(pfd, name, real, keep_dir=False)
            return make()

    def _clear(self, pfd: int, name: str, real: tuple[str, ...], *, keep_dir: bool) -> bool:
        """Remove what is at ``name`` (unless it is a directory and ``keep_dir``); True if kept.

        ``real`` is the parent's real path, to notice a recorded file being replaced.
        """
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode) and keep_dir:
            return True
        if self._payloads:
            path = "/".join((*real, name))
            if path in self._payloads or any(p.startswith(path + "/") for p in self._payloads):
                self.result.reproducible = False
        self._invalidate_except(pfd)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)
        return False

    def _invalidate_except(self, pfd: int) -> None:
        """Forget the cached parent unless it is ``pfd`` (which stays valid and in use).

        Removing or replacing an entry can make a cached resolution stale: the
        cached directory may sit inside a removed tree, or have been reached
        through a symlink that is now replaced.
        """
        if self._cache is not None and self._cache[2] != pfd:
            self._invalidate()

    # --- entries ---------------------------------------------------------------------

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.current = member.name
        parts = self._split(member.name)
        if not parts:  # the layer root itself ("./")
            if member.isdir():
                self._dirs.append(((), member.mode, _mtime_ns(member)))
                self._owner_fd(self.root_fd, member, made=False)  # made by the caller
            return
        *parent_parts, name = parts
        real, pfd = self._parent(tuple(parent_parts), create=True)

        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(pfd, real, name, member)
            return
        if member.isdir():
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
                made = True
            except FileExistsError:
                made = not self._clear(pfd, name, real, keep_dir=True)
                if made:
                    os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            try:
                self._owner_fd(fd, member, made=made)
                self._xattrs_fd(fd, member)
            finally:
                os.close(fd)
            self._dirs.append(((*real, name), member.mode, _mtime_ns(member)))
        elif member.isreg():
            self._regular(tar, pfd, real, name, member)
        elif member.issym():
            self._create(pfd, name, real, lambda: os.symlink(member.linkname, name, dir_fd=pfd))
            self._owner_name(pfd, name, member)
            os.utime(name, ns=(_mtime_ns(member),) * 2, dir_fd=pfd, follow_symlinks=False)
        elif member.islnk():
            self._hardlink(pfd, real, name, member)
        elif member.isfifo():
            self._create(pfd, name, real, lambda: os.mkfifo(name, 0o600, dir_fd=pfd))
            self._finish_special(pfd, name, member)
        elif member.ischr() and member.devmajor == 0 and member.devminor == 0:
            # Already in overlay form (some tools export whiteouts as 0/0 devices).
            self._create(pfd, name, real, lambda: self._mknod_whiteout(pfd, name))
            self._finish_special(pfd, name, member)
        elif member.ischr() or member.isblk():
            self.result.skipped.append(f"{member.name}: device node (not unpacked)")
            return
        else:
            self.result.skipped.append(f"{member.name}: unsupported tar entry type {member.type!r}")
            return
        self.result.entries += 1

    def _regular(self, tar: tarfile.TarFile, pfd: int, real: tuple[str, ...], name: str,
                 member: tarfile.TarInfo) -> None:
        fd = self._create(pfd, name, real, lambda: os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
            dir_fd=pfd))
        if self.recorder is not None and not member.issparse():
            path = "/".join((*real, name))
            self.recorder.payload(member.offset_data, member.size, path)
            self._payloads.add(path)
        try:
            if member.issparse():
                src = tar.extractfile(member)
                if src is None:
                    raise self._fail("cannot read file data")
                while chunk := src.read(_COPY_CHUNK):
                    _write_all(fd, chunk)
            else:
                # The data follows the header(s): copy it as it comes from the stream,
                # without tarfile's file object and its extra copies.
                self.stream.seek(member.offset_data)
                left = member.size
                unflushed = 0
                while left:
                    chunk = self.stream.read_some(min(left, _COPY_CHUNK))
                    if not chunk:
                        raise tarfile.ReadError(f"{member.name}: unexpected end of data")
                    left -= len(chunk)
                    _write_all(fd, chunk)
                    unflushed += len(chunk)
                    if unflushed >= _WRITEBACK_STEP:
                        syscalls.start_writeback(fd)
                        unflushed = 0
            if member.size >= _WRITEBACK_MIN:
                syscalls.start_writeback(fd)
            self._owner_fd(fd, member)
            os.fchmod(fd, stat.S_IMODE(member.mode))
            self._xattrs_fd(fd, member)
            os.utime(fd, ns=(_mtime_ns(member),) * 2)
        finally:
            os.close(fd)
        self.result.size += member.size

    def _hardlink(self, pfd: int, real: tuple[str, ...], name: str,
                  member: tarfile.TarInfo) -> None:
        target = self._split(member.linkname)
        if not target:
            raise self._fail(f"hard link to {member.linkname!r} is not a file of this layer")
        *tparent, tname = target
        # Resolve the target's directory without touching the cached parent fd.
        try:
            _, tfd = self._walk(tuple(tparent), create=False)
        except ImageError:
            raise self._fail(
                f"hard link target {member.linkname!r} is not a file of this layer"
            ) from None
        try:
            try:
                st = os.lstat(tname, dir_fd=tfd)
            except FileNotFoundError:
                raise self._fail(
                    f"hard link target {member.linkname!r} is not a file of this layer"
                ) from None
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                raise self._fail(f"hard link target {member.linkname!r} is not a regular file")
            try:
                here = os.lstat(name, dir_fd=pfd)
                if (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino):
                    return  # links to itself: already there
            except FileNotFoundError:
                pass
            self._clear(pfd, name, real, keep_dir=False)
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _whiteout(self, pfd: int, real: tuple[str, ...], name: str,
                  member: tarfile.TarInfo) -> None:
        if name == OPAQUE_MARKER:
            try:
                os.setxattr(pfd, OPAQUE_XATTRS[0], b"y")
            except PermissionError:
                raise self._fail(
                    "cannot mark an opaque directory (setting trusted.* xattrs needs "
                    "CAP_SYS_ADMIN)"
                ) from None
            return
        if name.startswith(WHITEOUT_META_PREFIX):
            self.result.skipped.append(f"{member.name}: aufs metadata (ignored)")
            return
        hidden = name[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", "..") or "/" in hidden:
            raise self._fail(f"invalid whiteout name {name!r}")
        self._create(pfd, hidden, real, lambda: self._mknod_whiteout(pfd, hidden))
        self._finish_special(pfd, hidden, member)
        self.result.entries += 1

    def _mknod_whiteout(self, pfd: int, name: str) -> None:
        try:
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
        except PermissionError:
            raise self._fail("cannot create an overlay whiteout (mknod needs CAP_MKNOD)") from None

    # --- metadata --------------------------------------------------------------------

    def _owner_fd(self, fd: int, member: tarfile.TarInfo, *, made: bool = True) -> None:
        """Owner of an entry; one just ``made`` by us is ours already (no chown for that)."""
        if self.as_root and not (made and (member.uid, member.gid) == self._own):
            os.fchown(fd, member.uid, member.gid)

    def _owner_name(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        """Owner of an entry just made, by name (symlinks, FIFOs, whiteouts)."""
        if self.as_root and (member.uid, member.gid) != self._own:
            os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)

    def _finish_special(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        """Owner, mode and mtime of a FIFO or whiteout we just made (never a symlink)."""
        self._owner_name(pfd, name, member)
        os.chmod(name, stat.S_IMODE(member.mode), dir_fd=pfd)
        os.utime(name, ns=(_mtime_ns(member),) * 2, dir_fd=pfd, follow_symlinks=False)

    def _xattrs_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        for name, value in _tar_xattrs(member):
            if not keep_xattr(name) or (name.startswith("security.") and not self.as_root):
                self.result.skipped.append(f"{member.name}: xattr {name} (not kept)")
                continue
            try:
                os.setxattr(fd, name, value)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                self.result.skipped.append(f"{member.name}: xattr {name} ({exc.strerror})")

    def finish(self) -> None:
        self.current = "(directory modes)"
        self._invalidate()
        for real, mode, mtime in sorted(self._dirs, key=lambda d: -len(d[0])):
            try:
                fd = self._open_real(real)
            except OSError:
                continue  # replaced later in the tar by something else
            try:
                os.fchmod(fd, stat.S_IMODE(mode))
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written < len(data):
        view = memoryview(data)
        while written < len(view):
            written += os.write(fd, view[written:])


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return max(0, int(member.mtime * 1_000_000_000))


def _tar_xattrs(member: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            yield key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(key[len("LIBARCHIVE.xattr."):])
            with contextlib.suppress(ValueError):
                yield name, base64.b64decode(value + "=" * (-len(value) % 4))


# --- directory → layer tar -------------------------------------------------------------


def write_layer_tar(src: Path, out: BinaryIO) -> None:
    """Write the overlay upper directory ``src`` as an OCI layer tar to ``out``.

    Whiteout devices (char 0/0) become ``.wh.NAME`` entries, opaque directories
    get a ``.wh..wh..opq`` entry, hard links within ``src`` are kept as links.
    Symlinks are stored, never followed. Owners are numeric; mtimes are whole seconds
    (as Docker's), so entries need no PAX records unless they have xattrs or long names.
    """
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                          encoding="utf-8", errors="surrogateescape") as tar:
            _Packer(tar).walk(src, "")
    except OSError as exc:
        raise ImageError(f"{src}: cannot read the directory: {exc}") from None


class _Packer:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.inodes: dict[tuple[int, int], str] = {}

    def walk(self, directory: Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            self.add(Path(entry.path), prefix + entry.name)

    def add(self, path: Path, name: str) -> None:
        st = os.lstat(path)
        xattrs = _disk_xattrs(path, st)
        for bad in UNSUPPORTED_OVERLAY_XATTRS:
            if bad in xattrs:
                raise ImageError(
                    f"{path}: has {bad}; mount overlays with redirect_dir=off,metacopy=off "
                    "to get diffs that fit a layer"
                )
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        # Whole seconds, as Docker writes layers: a fractional mtime would need a PAX
        # record for every entry (a larger layer, slower to read everywhere).
        info.mtime = st.st_mtime_ns // 1_000_000_000
        info.pax_headers = {
            f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
            for k, v in sorted(xattrs.items()) if keep_xattr(k)
        }
        mode = st.st_mode
        if stat.S_ISCHR(mode) and st.st_rdev == 0:
            parent, _, base = name.rpartition("/")
            info.name = f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
            info.type, info.mode, info.pax_headers = tarfile.REGTYPE, 0o600, {}
            self.tar.addfile(info)
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
            if any(xattrs.get(k) == b"y" for k in OPAQUE_XATTRS):
                marker = tarfile.TarInfo(f"{name}/{OPAQUE_MARKER}")
                marker.mode, marker.mtime = 0o600, info.mtime
                self.tar.addfile(marker)
            self.walk(path, name + "/")
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            self.tar.addfile(info)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.inodes:
                info.type, info.linkname = tarfile.LNKTYPE, self.inodes[key]
                self.tar.addfile(info)
                return
            self.inodes[key] = name
            info.size = st.st_size
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                self.tar.addfile(info, f)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            self.tar.addfile(info)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(info)
        # sockets are not content; skipped like Docker does


def _disk_xattrs(path: Path, st: os.stat_result) -> dict[str, bytes]:
    if stat.S_ISLNK(st.st_mode):
        return {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOTSUP:
            return {}
        raise
    out = {}
    for name in names:
        with contextlib.suppress(OSError):
            out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out
