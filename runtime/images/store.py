"""The content-addressed image store.

Layout under the store root (the CLI and the engine use ``<PYCOMPOSE_ROOT>/images``)::

    lock                       fcntl lock: shared for reads, exclusive for changes
    repositories.json          {"names": {"docker.io/library/busybox:latest": "sha256:…"}}
    blobs/sha256/<hex>         image config JSON, byte for byte (its sha256 is the image id)
    images/<hex>.json          one record per image: {"id", "added"}; present = image exists
    layers/<hex>/diff/         a layer unpacked once, keyed by its diff-id; an overlay lowerdir
    layers/<hex>/layer.json    {"diff_id", "size", "entries", "tar_record"}
    layers/<hex>/tar-split.zst the layer tar minus file contents, to rebuild it exactly
    refs/<image hex>/<holder>  holds: containers using the image (``hold``/``release``)
    digests/<blob hex>         the diff-id a layer blob was verified to unpack to here, so a
                               pull can skip a layer before it has the image's config (as
                               Docker's diffid-by-digest); one whose layer is gone is ignored,
                               and removed by ``prune``
    tmp/<token>/ + <token>.lock  staging and trash; each held by a flock of its owner

Writes are atomic: layers are unpacked and verified in ``tmp/`` without the
store lock (a pull unpacks its layers side by side, one worker thread each,
through ``staging()``), then moved into place with ``rename`` under the
exclusive lock, followed by the config blob, the image record and the names
(each written to a temp file, flushed, renamed). So another process, or the same one after a
crash, sees an image completely or not at all; a crash can at worst leave an
unreferenced layer (reused by the next import, removed by ``prune``) or a
staging directory whose flock is gone (removed at the next write).

Layer blobs are not kept after unpacking (as Docker's classic store): the
unpacked directory is the layer, and a small tar record (``tarsplit``) lets
``save``/``export_layer`` rebuild each layer's tar byte for byte, so image ids
survive an export. Only ``sha256`` content is accepted.

All methods block; the engine calls them with ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import functools
import io
import itertools
import json
import os
import shutil
import sys
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar, cast

from pycompose.runtime import syscalls
from pycompose.runtime.errors import (
    ImageConflictError,
    ImageDigestError,
    ImageError,
    ImageNotFoundError,
)
from pycompose.runtime.images.archive import ImageSource, LayerSource, open_archive
from pycompose.runtime.images.changes import apply_changes
from pycompose.runtime.images.compression import (
    DECODE_ERRORS,
    Compression,
    open_decompressed,
)
from pycompose.runtime.images.config import (
    ImageConfig,
    empty_config,
    format_time,
    parse_time,
)
from pycompose.runtime.images.digest import (
    HashingReader,
    hex_of,
    is_digest,
    is_hex_id,
    sha256_digest,
)
from pycompose.runtime.images.layers import unpack_layer, write_layer_tar
from pycompose.runtime.images.reference import familiar_name, normalize_name
from pycompose.runtime.images.tarsplit import TarRecorder, write_reproduced

InUse = Callable[[str], bool]
TAR_RECORD = "tar-split.zst"

# What a layer that fails to decode or unpack raises (a bad blob, not a bug).
_UNPACK_ERRORS: tuple[type[Exception], ...] = (*DECODE_ERRORS, tarfile.TarError, ImageError)


@dataclass(frozen=True)
class Layer:
    """One unpacked layer: ``path`` is the directory to stack (an overlay lowerdir)."""

    diff_id: str
    path: Path
    size: int


@dataclass(frozen=True)
class Image:
    """An image in the store. ``names`` are stored (fully qualified) names, sorted."""

    id: str
    config: ImageConfig
    layers: tuple[Layer, ...]
    names: tuple[str, ...]
    added: datetime

    @property
    def short_id(self) -> str:
        """The 12 hex digits Docker shows."""
        return hex_of(self.id)[:12]

    @property
    def layer_dirs(self) -> tuple[Path, ...]:
        """Layer directories bottom → top (overlayfs wants them top first in ``lowerdir``)."""
        return tuple(layer.path for layer in self.layers)

    @property
    def size(self) -> int:
        """Bytes of file content over all layers (what ``image ls`` shows)."""
        return sum(layer.size for layer in self.layers)

    @property
    def created(self) -> datetime | None:
        return self.config.created_at

    @property
    def repo_tags(self) -> tuple[str, ...]:
        """Names in the short form Docker shows (``busybox:latest``)."""
        return tuple(familiar_name(n) for n in self.names)


@dataclass(frozen=True)
class PruneResult:
    deleted: tuple[str, ...]
    untagged: tuple[str, ...]
    reclaimed: int


class _MissingLayerError(Exception):
    """A layer we saw in the store went away before our commit (a concurrent removal)."""


@dataclass
class _Staged:
    diff_id: str
    directory: Path  # tmp/<token>/<n>, holding diff/ and layer.json


def _content_error(exc: BaseException) -> bool:
    """True when ``exc`` says the layer's bytes are bad (not, say, a full disk)."""
    if isinstance(exc, ImageDigestError):
        return False
    if isinstance(exc, OSError):
        return exc.errno is None  # with an errno it is the system's (disk full, I/O error)
    return True


def _explain_by_digest(blob: HashingReader, digest: str, name: str, size: int | None) -> None:
    """A layer failed to decode or unpack: when its blob does not match its digest either,
    that is the cause (corrupt or altered content), so raise that instead."""
    try:
        blob.drain()
    except Exception:  # the source itself failed: the original error stands
        return
    blob.verify(digest, name, size)


class _SameBytes(HashingReader):
    """The tar stream of an uncompressed blob: the same bytes, so the blob's digest is the
    diff-id and each byte is hashed once, by ``blob``."""

    def __init__(self, raw: BinaryIO, blob: HashingReader) -> None:
        super().__init__(raw)
        self._blob = blob

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        return data

    @property
    def digest(self) -> str:
        return self._blob.digest


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path``: unpacked files are on disk before they are named."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syscalls.syncfs(fd)
    except OSError as exc:
        exc.filename = str(path)
        raise
    finally:
        os.close(fd)


def _spread_layers(staging: Path) -> None:
    """Let each layer unpacked under ``staging`` take a block group of its own. ext4
    puts a directory's new files in that directory's group and, without a journal, skips
    every inode freed there in the last minute by reading its on-disk record: a layer
    of a few hundred files unpacked where an image was just removed (``rmi`` then
    ``pull``) spent most of its time in that scan."""
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syscalls.spread_subdirectories(fd)
    finally:
        os.close(fd)


def _layer_stage(staging: Path, index: int) -> Path:
    """Where layer ``index`` unpacks under ``staging``. The name carries the staging
    directory's random one: ext4 picks a top directory's subdirectory's block group from
    a hash of its name, so fixed names (``0``, ``1``, ...) put every pull's layers in the
    same few groups, each one's files among the inodes the last ``rmi`` freed there."""
    return staging / f"{index}.{staging.name}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rmtree(path: Path) -> None:
    """Remove a tree even when some of its directories are read-only (non-root)."""

    def retry(func: Callable[[str], object], failed: str, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        os.chmod(os.path.dirname(failed), 0o700)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, 0o700)
        func(failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=lambda func, failed, info: retry(func, failed, info[1]))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _map_os_errors(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Public methods raise ``ImageError`` with the path, never a raw ``OSError``."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise ImageError(f"image store: {where}{exc.strerror or exc}") from exc

    return wrapper


class ImageStore:
    """Images on disk under ``root``; safe to use from several processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._images = self.root / "images"
        self._layers = self.root / "layers"
        self._tmp = self.root / "tmp"
        self._repositories = self.root / "repositories.json"
        self._refs = self.root / "refs"
        self._digests = self.root / "digests"

    # --- locking and staging -------------------------------------------------------------

    def _ensure_layout(self) -> None:
        for d in (self._blobs, self._images, self._layers, self._tmp):
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        if not exclusive and not self.root.is_dir():
            yield  # nothing stored yet: nothing to read, nothing to protect
            return
        self._ensure_layout()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if exclusive:
                self._clean_tmp()
            yield
        finally:
            os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def _staging(self) -> Iterator[Path]:
        """A private directory under ``tmp/``, removed afterwards (or by the next writer)."""
        token = os.urandom(8).hex()
        self._ensure_layout()
        with self._locked(exclusive=False):  # a cleaner holds the lock exclusively
            lock_fd = os.open(self._tmp / f"{token}.lock",
                              os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            directory = self._tmp / token
            directory.mkdir()
            _spread_layers(directory)
        try:
            yield directory
        finally:
            with contextlib.suppress(FileNotFoundError):
                _rmtree(directory)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp / f"{token}.lock")
            os.close(lock_fd)

    def _clean_tmp(self) -> None:
        """Remove staging left by dead processes (caller holds the exclusive lock)."""
        try:
            entries = sorted(os.listdir(self._tmp))
        except FileNotFoundError:
            return
        locks = {e for e in entries if e.endswith(".lock")}
        for entry in entries:
            if entry in locks:
                continue
            lock = f"{entry}.lock"
            if lock in locks and self._lock_is_held(self._tmp / lock):
                continue
            path = self._tmp / entry
            if path.is_dir() and not path.is_symlink():
                _rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for lock in locks:
            if not (self._tmp / lock[: -len(".lock")]).exists() and not self._lock_is_held(
                self._tmp / lock
            ):
                (self._tmp / lock).unlink(missing_ok=True)

    @staticmethod
    def _lock_is_held(path: Path) -> bool:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = self._tmp / f"{path.name}.{os.urandom(6).hex()}.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        _fsync_dir(path.parent)

    # --- reading ---------------------------------------------------------------------------

    def _read_names(self) -> dict[str, str]:
        try:
            doc = json.loads(self._repositories.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ImageError(f"{self._repositories}: unreadable: {exc}") from None
        names = doc.get("names", {}) if isinstance(doc, dict) else {}
        return {str(k): str(v) for k, v in names.items()}

    def _write_many_atomic(self, files: Sequence[tuple[Path, bytes]],
                           renamed_in: Sequence[Path] = ()) -> None:
        """``_write_atomic`` for several files with one flush per stage instead of two per
        file: every temp file written, one ``syncfs`` (which also makes durable what was
        renamed before, e.g. layers into ``renamed_in`` directories), the renames, then
        each directory flushed (after the first, the journal has nothing left to commit)."""
        temps = []
        try:
            for path, data in files:
                tmp = self._tmp / f"{path.name}.{os.urandom(6).hex()}.new"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                temps.append((tmp, path))
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
            _syncfs(self._tmp)
            for tmp, path in temps:
                os.rename(tmp, path)
            temps = []
        finally:
            for tmp, _ in temps:
                tmp.unlink(missing_ok=True)
        for directory in dict.fromkeys([*renamed_in, *(path.parent for path, _ in files)]):
            _fsync_dir(directory)

    def _names_bytes(self, names: dict[str, str]) -> bytes:
        return json.dumps({"names": dict(sorted(names.items()))}, indent=1).encode() + b"\n"

    def _write_names(self, names: dict[str, str]) -> None:
        self._write_atomic(self._repositories, self._names_bytes(names))

    def _image_ids(self) -> list[str]:
        try:
            entries = os.listdir(self._images)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + e[:-5] for e in entries if e.endswith(".json")
                      and is_hex_id(e[:-5]))

    def _layer_dir(self, diff_id: str) -> Path:
        return self._layers / hex_of(diff_id)

    def _has_layer(self, diff_id: str) -> bool:
        return (self._layer_dir(diff_id) / "layer.json").is_file()

    def _forget_blobs_of_removed_layers(self) -> None:
        """Drop the blob records (``digests/``) whose layer is no longer in the store
        (caller holds the exclusive lock). A pull writing one meanwhile for a layer it has
        not committed yet only loses that record: the next pull downloads the layer."""
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(self._digests):
                diff_id = self._blob_record(entry)
                if diff_id is None or not self._has_layer(diff_id):
                    with contextlib.suppress(FileNotFoundError):
                        (self._digests / entry).unlink()

    def _blob_record(self, blob_hex: str) -> str | None:
        """The diff-id ``digests/<blob_hex>`` holds; None when there is none or it is not a
        digest (a torn write)."""
        try:
            diff_id = (self._digests / blob_hex).read_text()
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            return None
        return diff_id if is_digest(diff_id) else None

    def _remember_blob(self, digest: str, diff_id: str, scratch: Path) -> None:
        """Record that the blob ``digest`` unpacked to ``diff_id`` (verified both). Written
        through ``scratch`` (a staging directory) and renamed, not flushed: a mapping lost
        in a crash only costs a download, and one that can be read is complete."""
        self._digests.mkdir(exist_ok=True)
        tmp = scratch / f"digest-{os.urandom(6).hex()}"
        tmp.write_text(diff_id)
        os.rename(tmp, self._digests / hex_of(digest))

    def _read_layer(self, diff_id: str, image_id: str) -> Layer:
        directory = self._layer_dir(diff_id)
        try:
            meta = json.loads((directory / "layer.json").read_bytes())
        except FileNotFoundError:
            raise ImageError(
                f"image {image_id}: layer {diff_id} is missing from {self._layers}"
            ) from None
        except (OSError, ValueError) as exc:
            raise ImageError(f"{directory / 'layer.json'}: unreadable: {exc}") from None
        return Layer(diff_id=diff_id, path=directory / "diff", size=int(meta.get("size", 0)))

    def _read_image(self, image_id: str, names: dict[str, str]) -> Image:
        record_path = self._images / f"{hex_of(image_id)}.json"
        try:
            record = json.loads(record_path.read_bytes())
            config_bytes = (self._blobs / hex_of(image_id)).read_bytes()
        except FileNotFoundError:
            raise ImageNotFoundError(f"No such image: {image_id}") from None
        except (OSError, ValueError) as exc:
            raise ImageError(f"{record_path}: unreadable: {exc}") from None
        config = ImageConfig.from_json(config_bytes, source=f"image {image_id}")
        added = parse_time(str(record.get("added", ""))) or datetime.fromtimestamp(0, UTC)
        return Image(
            id=image_id,
            config=config,
            layers=tuple(self._read_layer(d, image_id) for d in config.diff_ids),
            names=tuple(sorted(n for n, i in names.items() if i == image_id)),
            added=added,
        )

    def _resolve(self, ref_or_id: str, names: dict[str, str]) -> tuple[str, str | None]:
        """(image id, the stored name when ``ref_or_id`` was a name)."""
        text = ref_or_id.strip()
        ids = self._image_ids()
        if text.startswith("sha256:"):
            return self._by_prefix(text[len("sha256:"):], ids, ref_or_id), None
        if is_hex_id(text):
            if "sha256:" + text in ids:
                return "sha256:" + text, None
            raise ImageNotFoundError(f"No such image: {ref_or_id}")
        with contextlib.suppress(ImageError):
            name = normalize_name(text)
            if name in names:
                return names[name], name
        if text and all(c in "0123456789abcdef" for c in text):
            return self._by_prefix(text, ids, ref_or_id), None
        raise ImageNotFoundError(f"No such image: {ref_or_id}")

    @staticmethod
    def _by_prefix(prefix: str, ids: list[str], asked: str) -> str:
        matches = [i for i in ids if hex_of(i).startswith(prefix)] if prefix else []
        if not matches:
            raise ImageNotFoundError(f"No such image: {asked}")
        if len(matches) > 1:
            raise ImageConflictError(f"{asked}: ambiguous id prefix ({len(matches)} images match)")
        return matches[0]

    @_map_os_errors
    def get(self, ref_or_id: str) -> Image:
        """The image named ``ref_or_id`` (``busybox``, ``busybox:1.36``), or with that id/prefix."""
        with self._locked(exclusive=False):
            names = self._read_names()
            image_id, _ = self._resolve(ref_or_id, names)
            return self._read_image(image_id, names)

    @_map_os_errors
    def list(self) -> list[Image]:
        """All images, newest first."""
        with self._locked(exclusive=False):
            names = self._read_names()
            images = [self._read_image(i, names) for i in self._image_ids()]
        return sorted(images, key=lambda im: (im.created or im.added, im.id), reverse=True)

    @_map_os_errors
    def layer_dirs(self, image: Image | str) -> tuple[Path, ...]:
        """The layer directories of ``image`` (an ``Image`` or a name/id), bottom → top."""
        return (self.get(image) if isinstance(image, str) else image).layer_dirs

    # --- staging layers ----------------------------------------------------------------------

    def _stage_layer(
        self, staging: Path, index: int, name: str,
        opener: Callable[[], AbstractContextManager[BinaryIO]],
        *, diff_id: str | None, digest: str | None, size: int | None, unpack: bool,
    ) -> str:
        """Stream one layer: verify blob digest and diff-id; unpack into ``staging/<index>``.

        With ``unpack=False`` the layer is only verified (it is already in the store).
        Returns the diff-id (computed when not known beforehand). Safe to run in several
        threads at once for different ``index``es.
        """
        directory = _layer_stage(staging, index)
        diff = directory / "diff"
        if unpack:
            diff.mkdir(parents=True)
        if not unpack and digest is not None and diff_id is not None:
            # Already in the store (verified when it was unpacked): the archive's blob
            # only has to match its own digest.
            try:
                with opener() as raw:
                    blob = HashingReader(raw)
                    blob.drain()
            except (OSError, EOFError, tarfile.TarError) as exc:
                raise ImageError(f"{name}: corrupt or truncated layer: {exc}") from None
            blob.verify(digest, name, size)
            return diff_id
        with opener() as raw:
            blob = HashingReader(raw)
            try:
                kind, decompressed = open_decompressed(cast(BinaryIO, blob),
                                                       verified=digest is not None)
                tar: HashingReader = HashingReader(decompressed) \
                    if kind is not Compression.NONE else _SameBytes(decompressed, blob)
                if unpack:
                    with (directory / TAR_RECORD).open("wb") as record:
                        recorder = TarRecorder(cast(BinaryIO, tar), record)
                        result = unpack_layer(cast(BinaryIO, recorder), diff, source=name,
                                              recorder=recorder)
                        recorder.drain()
                        recorder.close()
                tar.drain()
                blob.drain()
            except _UNPACK_ERRORS as exc:
                if digest is not None and _content_error(exc):
                    _explain_by_digest(blob, digest, name, size)
                if isinstance(exc, ImageError):
                    raise
                raise ImageError(f"{name}: corrupt or truncated layer: {exc}") from None
        if digest is not None:
            blob.verify(digest, name, size)
        if diff_id is not None:
            tar.verify(diff_id, f"{name} (uncompressed content vs diff_id)")
        if unpack:
            meta: dict[str, object] = {
                "diff_id": tar.digest, "size": result.size, "entries": result.entries,
                "tar_record": result.reproducible,
            }
            if not result.reproducible:
                (directory / TAR_RECORD).unlink()
            if result.skipped:
                meta["skipped"] = result.skipped[:100]
            (directory / "layer.json").write_text(json.dumps(meta, indent=1) + "\n")
        return tar.digest

    def _stage_sources(self, staging: Path, sources: Sequence[ImageSource],
                       force: frozenset[str] = frozenset()) -> dict[str, _Staged]:
        staged: dict[str, _Staged] = {}
        verified: set[str] = set()
        for source in sources:
            for layer in source.layers:
                if layer.diff_id in staged or layer.diff_id in verified:
                    continue
                unpack = layer.diff_id in force or not self._has_layer(layer.diff_id)
                index = len(staged) + len(verified)
                self._stage_one(staging, index, layer, unpack)
                if unpack:
                    staged[layer.diff_id] = _Staged(layer.diff_id, _layer_stage(staging, index))
                else:
                    verified.add(layer.diff_id)
        return staged

    def _stage_one(self, staging: Path, index: int, layer: LayerSource, unpack: bool) -> None:
        self._stage_layer(
            staging, index, layer.name, layer.open,
            diff_id=layer.diff_id, digest=layer.digest, size=layer.size, unpack=unpack,
        )

    # --- committing --------------------------------------------------------------------------

    def _commit_layers(self, staged: dict[str, _Staged], needed: Sequence[str], *,
                       sync: bool = True) -> None:
        """Move staged layers into place (caller holds the exclusive lock); ``sync=False``
        leaves flushing the layers directory to the caller."""
        for diff_id in needed:
            if self._has_layer(diff_id):
                continue
            stage = staged.get(diff_id)
            if stage is None:
                raise _MissingLayerError(diff_id)
            target = self._layer_dir(diff_id)
            if target.exists():  # an interrupted earlier commit: no layer.json, not a layer
                _rmtree(target)
            os.rename(stage.directory, target)
        if staged and sync:
            _fsync_dir(self._layers)

    def _commit_image(self, config_bytes: bytes, names: Sequence[str],
                      all_names: dict[str, str]) -> str:
        """Write blob, record and names (caller holds the exclusive lock)."""
        image_id, writes = self._image_files(config_bytes, names, all_names)
        for path, data in writes:
            self._write_atomic(path, data)
        return image_id

    def _image_files(self, config_bytes: bytes, names: Sequence[str],
                     all_names: dict[str, str]) -> tuple[str, builtins.list[tuple[Path, bytes]]]:
        """The image id, and the config blob and image record to write unless present;
        ``all_names`` gets ``names`` (caller holds the exclusive lock)."""
        image_id = sha256_digest(config_bytes)
        writes = []
        blob = self._blobs / hex_of(image_id)
        if not blob.exists():
            writes.append((blob, config_bytes))
        record = self._images / f"{hex_of(image_id)}.json"
        if not record.exists():
            data = {"id": image_id, "added": format_time(datetime.now(UTC))}
            writes.append((record, json.dumps(data).encode() + b"\n"))
        for name in names:
            all_names[name] = image_id
        return image_id, writes

    @_map_os_errors
    def add_images(self, sources: Sequence[ImageSource]) -> builtins.list[Image]:
        """Add images whose config and layer streams come from anywhere (an archive, a
        registry): every layer is verified against its digest and diff-id while it is
        unpacked, and nothing is added unless all of them verify.
        """
        for source in sources:
            if tuple(layer.diff_id for layer in source.layers) != source.config.diff_ids:
                raise ImageError(
                    f"image {source.id}: the layers given do not match the config's diff_ids"
                )
        if not sources:
            return []
        force: frozenset[str] = frozenset()
        for _attempt in range(3):
            with self._staging() as staging:
                staged = self._stage_sources(staging, sources, force)
                if staged:
                    _syncfs(staging)
                try:
                    with self._locked(exclusive=True):
                        for source in sources:
                            self._commit_layers(staged, source.config.diff_ids)
                        names = self._read_names()
                        ids = [self._commit_image(s.config_bytes, s.names, names)
                               for s in sources]
                        if any(s.names for s in sources):
                            self._write_names(names)
                        return [self._read_image(i, names) for i in ids]
                except _MissingLayerError as missing:
                    force = force | {str(missing.args[0])}
        raise ImageError("the store keeps changing under this import; try again")

    # --- public write API ----------------------------------------------------------------------

    @_map_os_errors
    def load(self, archive: Path) -> builtins.list[Image]:
        """Load every image of a ``docker save`` archive, OCI layout or OCI archive.

        Nothing is added unless every image's config and layers verify.
        """
        archive = Path(archive)
        with open_archive(archive) as sources:
            return self.add_images(sources)

    @_map_os_errors
    def import_rootfs(
        self, tar: Path | BinaryIO, ref: str | None, *, changes: Sequence[str] = (),
        message: str = "", architecture: str | None = None,
    ) -> Image:
        """Make a one-layer image from a root filesystem tarball (plain, gzip, zstd, bz2, xz).

        ``tar`` is a path or an open binary stream (``docker import -`` reads stdin).
        ``changes`` are Dockerfile instructions (``CMD ["sh"]``, ``ENV A=b``…) applied to
        the config, as ``docker import --change``.
        """
        name = normalize_name(ref) if ref else None
        base = empty_config(architecture=architecture)
        container_config = apply_changes(base.config, changes)  # fail before any work
        opener: Callable[[], AbstractContextManager[BinaryIO]]
        if isinstance(tar, Path | str):
            path = Path(tar)
            if not path.is_file():
                raise ImageError(f"{path}: no such file")
            label, source = str(path), path.name
            opener = lambda: path.open("rb")  # noqa: E731
        else:
            stream = tar
            label, source = "(stream)", "-"
            opener = lambda: contextlib.nullcontext(stream)  # noqa: E731 - the caller closes it
        with self._staging() as staging:
            diff_id = self._stage_layer(
                staging, 0, label, opener, diff_id=None, digest=None, size=None, unpack=True,
            )
            config = base.derive(
                diff_ids=[diff_id], config=container_config,
                comment=message or f"Imported from {source}",
            )
            _syncfs(staging)
            with self._locked(exclusive=True):
                staged = {diff_id: _Staged(diff_id, _layer_stage(staging, 0))}
                self._commit_layers(staged, [diff_id])
                names = self._read_names()
                image_id = self._commit_image(config.to_json(), [name] if name else [], names)
                if name:
                    self._write_names(names)
                return self._read_image(image_id, names)

    @_map_os_errors
    def add_layer_from_dir(self, diff_dir: Path) -> Layer:
        """Turn a directory diff (an overlay upper dir, with overlay whiteouts) into a layer.

        The directory is written as an OCI layer tar (whiteouts as ``.wh.`` entries) to
        get its diff-id, and that tar is unpacked into the store as any other layer.
        The layer is unreferenced until an image uses it (``create_image``): ``prune``
        removes unreferenced layers.
        """
        diff_dir = Path(diff_dir)
        if not diff_dir.is_dir():
            raise ImageError(f"{diff_dir}: not a directory")
        with self._staging() as staging:
            tar_path = staging / "layer.tar"
            with tar_path.open("wb") as out:
                write_layer_tar(diff_dir, out)
            diff_id = self._stage_layer(
                staging, 0, f"diff of {diff_dir}", lambda: tar_path.open("rb"),
                diff_id=None, digest=None, size=None, unpack=True,
            )
            _syncfs(staging)
            with self._locked(exclusive=True):
                staged = {diff_id: _Staged(diff_id, _layer_stage(staging, 0))}
                self._commit_layers(staged, [diff_id])
                return self._read_layer(diff_id, "(new layer)")

    @_map_os_errors
    def create_image(self, config: ImageConfig, ref: str | None = None) -> Image:
        """Store ``config`` as an image (its layers must be in the store) and name it ``ref``."""
        name = normalize_name(ref) if ref else None
        config_bytes = config.to_json()
        with self._locked(exclusive=True):
            for diff_id in config.diff_ids:
                if not self._has_layer(diff_id):
                    raise ImageError(f"cannot create image: layer {diff_id} is not in the store")
            names = self._read_names()
            image_id = self._commit_image(config_bytes, [name] if name else [], names)
            if name:
                self._write_names(names)
            return self._read_image(image_id, names)

    @_map_os_errors
    def commit(
        self, diff_dir: Path, *, parent: Image | None, ref: str | None = None,
        changes: Sequence[str] = (), comment: str = "", author: str = "", created_by: str = "",
    ) -> Image:
        """A new image: ``parent`` (None: from scratch) plus the layer made from ``diff_dir``."""
        base = parent.config if parent is not None else empty_config()
        container_config = apply_changes(base.config, changes)
        layer = self.add_layer_from_dir(diff_dir)
        config = base.derive(
            diff_ids=[layer.diff_id], config=container_config,
            comment=comment, author=author, created_by=created_by,
        )
        return self.create_image(config, ref)

    @_map_os_errors
    def tag(self, source: str, target: str) -> Image:
        """Give the image ``source`` (name or id) the name ``target`` (moved if taken)."""
        name = normalize_name(target)
        if not self.root.is_dir():
            raise ImageNotFoundError(f"No such image: {source}")
        with self._locked(exclusive=True):
            names = self._read_names()
            image_id, _ = self._resolve(source, names)
            names[name] = image_id
            self._write_names(names)
            return self._read_image(image_id, names)

    @_map_os_errors
    def remove(
        self, ref: str, *, force: bool = False, in_use: InUse | None = None
    ) -> builtins.list[str]:
        """``docker rmi``: untag ``ref``; when no name is left, delete the image and its layers.

        Removing by name when the image has other names only untags. Removing by id an
        image with several names needs ``force``. An image a container uses
        (``in_use(image_id)``) is refused; with ``force`` its names are removed but the
        data stays until it is no longer used (``prune``), so running containers keep
        their lower dirs. Returns Docker-style lines: ``Untagged: …``, ``Deleted: …``.
        """
        if not self.root.is_dir():
            raise ImageNotFoundError(f"No such image: {ref}")
        with self._staging() as trash, self._locked(exclusive=True):
            names = self._read_names()
            image_id, by_name = self._resolve(ref, names)
            own = sorted(n for n, i in names.items() if i == image_id)
            if by_name is not None and len(own) > 1:
                del names[by_name]
                self._write_names(names)
                return [f"Untagged: {familiar_name(by_name)}"]
            if by_name is None and len(own) > 1 and not force:
                raise ImageConflictError(
                    f"unable to delete {hex_of(image_id)[:12]} (must be forced): image is "
                    f"referenced in multiple repositories ({', '.join(map(familiar_name, own))})"
                )
            holders = self._holders(image_id)
            used = bool(holders) or (in_use is not None and in_use(image_id))
            if used and not force:
                by = f"container {holders[0][:12]}" if holders else "a container"
                raise ImageConflictError(
                    f"unable to remove {ref!r} (must force): image {hex_of(image_id)[:12]} "
                    f"is being used by {by}"
                )
            out = [f"Untagged: {familiar_name(n)}" for n in own]
            for n in own:
                del names[n]
            if own:
                self._write_names(names)
            if not used:
                out += self._delete_images([image_id], trash)
            return out

    def _delete_images(self, ids: Sequence[str], trash: Path) -> builtins.list[str]:
        """Delete image records and configs, and those of their layers no image uses any
        more (exclusive lock held). Other unused layers (a build's, its cache's) are not
        this image's to take: ``prune`` removes them."""
        out = []
        layers: set[str] = set()
        for image_id in ids:
            blob = self._blobs / hex_of(image_id)
            with contextlib.suppress(OSError, ImageError):  # unreadable: prune decides
                config = ImageConfig.from_json(blob.read_bytes(), source=f"image {image_id}")
                layers.update(hex_of(d) for d in config.diff_ids)
            (self._images / f"{hex_of(image_id)}.json").unlink(missing_ok=True)
            out.append(f"Deleted: {image_id}")
        _fsync_dir(self._images)
        self._collect(trash, only=layers)
        for image_id in ids:  # its config (the image id is the config's digest)
            with contextlib.suppress(FileNotFoundError):
                os.rename(self._blobs / hex_of(image_id), trash / f"blob-{hex_of(image_id)}")
        return out

    def _collect(self, trash: Path, only: Set[str] | None = None) -> dict[str, int]:
        """Move unreferenced layers and blobs to ``trash``; return {layer hex: bytes held}.
        With ``only`` (layer hexes), just those of them no image uses, and no blobs."""
        remaining = self._image_ids()
        used_layers: set[str] = set()
        for image_id in remaining:
            # An unreadable config raises: guessing would delete layers an image needs.
            config = ImageConfig.from_json(
                (self._blobs / hex_of(image_id)).read_bytes(), source=f"image {image_id}"
            )
            used_layers.update(hex_of(d) for d in config.diff_ids)
        removed: dict[str, int] = {}
        entries = sorted(os.listdir(self._layers))
        for entry in entries if only is None else [e for e in entries if e in only]:
            if entry in used_layers:
                continue
            removed[entry] = 0
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads((self._layers / entry / "layer.json").read_bytes())
                removed[entry] = int(meta.get("size", 0))
            os.rename(self._layers / entry, trash / f"layer-{entry}")
        if only is None:
            used_blobs = {hex_of(i) for i in remaining}
            for entry in sorted(os.listdir(self._blobs)):
                if entry not in used_blobs:
                    os.rename(self._blobs / entry, trash / f"blob-{entry}")
        if removed or only is None:
            _fsync_dir(self._layers)
        return removed

    @_map_os_errors
    def remove_unused_layers(self, candidates: Iterable[str]) -> dict[str, int]:
        """Remove those of the layers ``candidates`` (diff-ids) that no image uses, as the
        build cache's prune does for layers only its entries kept; other layers, configs
        and images are untouched. Returns {diff-id: bytes of file content} removed."""
        wanted = {hex_of(d): d for d in candidates if is_hex_id(hex_of(d))}
        if not wanted or not self.root.is_dir():
            return {}
        with self._staging() as trash, self._locked(exclusive=True):
            removed = self._collect(trash, only=set(wanted))
        return {wanted[entry]: size for entry, size in removed.items()}

    # --- export ----------------------------------------------------------------------------

    def _export_layer(self, diff_id: str, out: BinaryIO) -> int:
        directory = self._layer_dir(diff_id)
        record = directory / TAR_RECORD
        if not record.is_file():
            raise ImageError(
                f"layer {diff_id} cannot be exported: its tar overwrote files it had written "
                "(or it was stored without a tar record), so its exact bytes are unknown"
            )
        return write_reproduced(record, directory / "diff", out, diff_id)

    @_map_os_errors
    def export_layer(self, diff_id: str, out: BinaryIO) -> int:
        """Write the layer's uncompressed tar, byte for byte the one whose sha256 is
        ``diff_id`` (checked), to ``out``; returns its size. For ``save`` and pushes."""
        with self._locked(exclusive=False):
            if not self._has_layer(diff_id):
                raise ImageNotFoundError(f"No such layer: {diff_id}")
            return self._export_layer(diff_id, out)

    @_map_os_errors
    def save(self, refs: Sequence[str], out: Path | BinaryIO) -> builtins.list[Image]:
        """Write images to one tar that ``load``, ``docker load`` and OCI tools all read.

        The layout is Docker 25's: an OCI image layout (``oci-layout``, ``index.json``,
        ``blobs/sha256/…`` with uncompressed layer tars) plus ``manifest.json`` with
        ``RepoTags``. An image named by a name is saved with that name; by id, untagged.
        Image ids do not change: layers are rebuilt byte for byte. A path ``out`` is
        written atomically.
        """
        with self._staging() as staging:
            with self._locked(exclusive=False):
                names = self._read_names()
                chosen: dict[str, tuple[Image, builtins.list[str]]] = {}
                for ref in refs:
                    image_id, by_name = self._resolve(ref, names)
                    image, tags = chosen.get(image_id) or (self._read_image(image_id, names), [])
                    if by_name is not None and by_name not in tags:
                        tags.append(by_name)
                    chosen[image_id] = (image, tags)
                sizes: dict[str, int] = {}
                for image, _ in chosen.values():
                    for diff_id in image.config.diff_ids:
                        if diff_id not in sizes:
                            with (staging / hex_of(diff_id)).open("wb") as f:
                                sizes[diff_id] = self._export_layer(diff_id, f)
                configs = {i: (self._blobs / hex_of(i)).read_bytes() for i in chosen}
            archive = _save_archive(chosen, configs, sizes, staging)
            if isinstance(out, Path | str):
                target = Path(out)
                tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
                try:
                    _write_tar(archive, tmp)
                    os.rename(tmp, target)
                finally:
                    tmp.unlink(missing_ok=True)
            else:
                _write_tar_stream(archive, out)
        return [image for image, _ in chosen.values()]

    # --- holds: which containers use an image ------------------------------------------

    def _holders(self, image_id: str) -> builtins.list[str]:
        try:
            return sorted(os.listdir(self._refs / hex_of(image_id)))
        except FileNotFoundError:
            return []

    @staticmethod
    def _check_holder(holder: str) -> None:
        if not holder or holder.startswith(".") or not all(
            c.isalnum() or c in "._-" for c in holder
        ):
            raise ImageError(f"invalid holder name {holder!r} (letters, digits, . _ -)")

    @_map_os_errors
    def hold(self, image: Image | str, holder: str) -> Image:
        """Record that ``holder`` (a container id) uses ``image``, which ``rm`` and ``prune``
        then refuse to delete (``rm -f`` only untags it). Returns the image held.

        Holds live in the store, so any process sees them, with or without an engine.
        Taking the hold and checking the image exists happen under one lock: an image
        removed just before is reported as not found, never half held.
        """
        self._check_holder(holder)
        ref = image.id if isinstance(image, Image) else image
        with self._locked(exclusive=True):
            names = self._read_names()
            image_id, _ = self._resolve(ref, names)
            directory = self._refs / hex_of(image_id)
            directory.mkdir(parents=True, exist_ok=True)
            os.close(os.open(directory / holder, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            _fsync_dir(directory)
            return self._read_image(image_id, names)

    @_map_os_errors
    def release(self, holder: str, image_id: str | None = None) -> None:
        """Drop ``holder``'s hold on ``image_id`` (on every image when None)."""
        self._check_holder(holder)
        if not self._refs.is_dir():
            return
        with self._locked(exclusive=True):
            dirs = [self._refs / hex_of(image_id)] if image_id else sorted(self._refs.iterdir())
            for directory in dirs:
                (directory / holder).unlink(missing_ok=True)
                with contextlib.suppress(FileNotFoundError, OSError):
                    directory.rmdir()  # only when empty

    @_map_os_errors
    def holders(self, image_id: str) -> builtins.list[str]:
        """The holders (container ids) that use ``image_id``."""
        with self._locked(exclusive=False):
            return self._holders(image_id)

    @_map_os_errors
    def release_all_but(self, live: Set[str]) -> builtins.list[str]:
        """Drop holds of holders not in ``live`` (containers that no longer exist), as a
        garbage collection at engine start; returns the holders dropped."""
        if not self._refs.is_dir():
            return []
        dropped = set()
        with self._locked(exclusive=True):
            for directory in sorted(self._refs.iterdir()):
                for entry in sorted(os.listdir(directory)):
                    if entry not in live:
                        (directory / entry).unlink(missing_ok=True)
                        dropped.add(entry)
                with contextlib.suppress(OSError):
                    directory.rmdir()
        return sorted(dropped)

    @_map_os_errors
    def clean_staging(self) -> None:
        """Remove staging and trash left by processes that died mid-write (safe any time;
        every write does it too). Images and layers are untouched."""
        if self.root.is_dir():
            with self._locked(exclusive=True):
                pass  # taking the lock sweeps tmp/

    @_map_os_errors
    def prune(self, *, all: bool = False, in_use: InUse | None = None) -> PruneResult:
        """Remove untagged images (``all``: every image no container uses), unused layers and
        blobs, and staging left by dead processes."""
        if not self.root.is_dir():
            return PruneResult(deleted=(), untagged=(), reclaimed=0)
        with self._staging() as trash, self._locked(exclusive=True):
            names = self._read_names()
            tagged = set(names.values())
            doomed = [
                i for i in self._image_ids()
                if (all or i not in tagged) and not self._holders(i)
                and not (in_use is not None and in_use(i))
            ]
            untagged = sorted(n for n, i in names.items() if i in doomed)
            for n in untagged:
                del names[n]
            if untagged:
                self._write_names(names)
            for image_id in doomed:
                (self._images / f"{hex_of(image_id)}.json").unlink(missing_ok=True)
            reclaimed = sum(self._collect(trash).values())
            self._forget_blobs_of_removed_layers()
            return PruneResult(
                deleted=tuple(doomed),
                untagged=tuple(familiar_name(n) for n in untagged),
                reclaimed=reclaimed,
            )

    # --- registry pulls (hook for pycompose.runtime.registry) ----------------------------------

    def has_layer(self, diff_id: str) -> bool:
        """True when the layer with this diff-id is unpacked in the store."""
        return self._has_layer(diff_id)

    def blob_diff_id(self, digest: str) -> str | None:
        """The diff-id the layer blob ``digest`` was verified to unpack to in this store
        (None when no blob with that digest was unpacked here). The layer itself may have
        been removed since: ask :meth:`has_layer`."""
        return self._blob_record(hex_of(digest)) if is_digest(digest) else None

    @contextlib.contextmanager
    def staging(self) -> Iterator[LayerStaging]:
        """A :class:`LayerStaging` for one image: layers unpacked concurrently, committed
        together; whatever is not committed is removed when the block ends."""
        with self._staging() as directory:
            yield LayerStaging(self, directory)

    @_map_os_errors
    def add_pulled_image(self, config_bytes: bytes, layers: Sequence[LayerSource | None],
                         names: Sequence[str]) -> Image:
        """``add_images`` for a registry pull: ``layers[i]`` is None for a layer already in
        the store (so it was not downloaded). The config bytes are kept exactly, so the
        image id is the registry's config digest. Layers are unpacked one after another;
        a pull that unpacks them side by side uses :meth:`staging` itself.
        """
        config = ImageConfig.from_json(config_bytes, source="pulled image config")
        if len(layers) != len(config.diff_ids) or any(
            layer is not None and layer.diff_id != diff_id
            for layer, diff_id in zip(layers, config.diff_ids, strict=True)
        ):
            raise ImageError("pulled image: the layers do not match the config's diff_ids")
        with self.staging() as staging:
            for layer in layers:
                if layer is not None:
                    staging.unpack(layer)
            return staging.commit(config_bytes, names)


class LayerStaging:
    """Layers of one image being unpacked side by side, then committed together.

    ::

        with store.staging() as staging:
            # from worker threads, several at once (trio.to_thread.run_sync):
            staging.unpack(layer_source)
            image = staging.commit(config_bytes, names)

    Each :meth:`unpack` streams one layer into its own directory under the store's
    ``tmp/`` without any store lock: blob digest, size and diff-id are verified
    while it streams, hostile tar entries are refused, and its files' data starts
    going to disk as it is written. :meth:`commit` takes the exclusive lock only to
    rename the staged layers into place and write the config, the image record and
    the names, after one flush of the filesystem, so the image appears at once or not
    at all, and only with its layers on disk. Layers not committed
    (an error, a cancelled pull) are removed when the ``staging()`` block ends.
    """

    def __init__(self, store: ImageStore, directory: Path) -> None:
        self._store = store
        self._directory = directory
        self._lock = threading.Lock()  # guards the two dicts: unpack runs in many threads
        self._claimed: dict[str, int] = {}        # diff-id -> index being unpacked
        self._indexes = itertools.count()         # staging/<index> for each layer
        self._staged: dict[str, _Staged] = {}     # diff-id -> unpacked and verified
        self._committed = False

    @_map_os_errors
    def unpack(self, layer: LayerSource) -> bool:
        """Stream ``layer`` into the staging area (blocks; thread-safe). Returns False when
        there was nothing to do: the store or this staging already has that diff-id (the
        source is then not read)."""
        with self._lock:
            if self._committed:
                raise ImageError("layer staging already committed")
            if layer.diff_id in self._claimed or self._store._has_layer(layer.diff_id):
                return False
            index = next(self._indexes)  # never reused: a failed layer's dir stays
            self._claimed[layer.diff_id] = index
        store = self._store
        try:
            # Not flushed here: its data is already on the way to disk (the unpacker starts
            # writeback per file), and commit flushes the filesystem once before it names
            # the image. (A flush per layer writes out all that is dirty at that moment,
            # the other layers' half-written files too, while they still unpack.)
            store._stage_one(self._directory, index, layer, True)
            layer_dir = _layer_stage(self._directory, index)
        except BaseException:
            with self._lock:
                del self._claimed[layer.diff_id]
            raise
        with self._lock:
            self._staged[layer.diff_id] = _Staged(layer.diff_id, layer_dir)
        return True

    @_map_os_errors
    def unpack_blob(self, name: str, opener: Callable[[], BinaryIO], *, digest: str,
                    size: int | None) -> str:
        """Stream the layer blob ``digest`` into the staging area before its diff-id is known
        (blocks; thread-safe): a pull starts its layers while the image config is still on
        its way. Blob digest and size are verified, the diff-id is computed; the caller
        checks it against the config before :meth:`commit`. Returns the diff-id. A layer
        this staging has already is dropped; one the store has stays staged until the
        commit, which uses it should the store's copy be removed meanwhile."""
        with self._lock:
            if self._committed:
                raise ImageError("layer staging already committed")
            index = next(self._indexes)  # never reused: a failed layer's dir stays
        store = self._store
        diff_id = store._stage_layer(self._directory, index, name, opener, diff_id=None,
                                     digest=digest, size=size, unpack=True)
        store._remember_blob(digest, diff_id, self._directory)
        layer_dir = _layer_stage(self._directory, index)
        with self._lock:
            duplicate = diff_id in self._claimed or diff_id in self._staged
            if not duplicate:
                self._claimed[diff_id] = index
                self._staged[diff_id] = _Staged(diff_id, layer_dir)
        if duplicate:
            _rmtree(layer_dir)
        return diff_id

    @_map_os_errors
    def keep(self, diff_id: str, dest: Path) -> bool:
        """Move the staged layer ``diff_id`` out to ``dest`` instead of discarding it (a pull
        the registry broke off keeps what it had verified); ``adopt`` takes it back. False
        when there is no such staged layer or ``dest`` is on another filesystem."""
        with self._lock:
            stage = self._staged.pop(diff_id, None)
        if stage is None:
            return False
        _syncfs(stage.directory)  # a kept layer is complete on disk, as adopt() expects
        try:
            os.rename(stage.directory, dest)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOTEMPTY, errno.EEXIST):
                raise
            return False
        return True

    @_map_os_errors
    def adopt(self, diff_id: str, path: Path) -> bool:
        """Stage the layer ``diff_id`` that :meth:`keep` left at ``path`` (complete, verified
        and flushed when it was kept). False when there is none, or it is not that layer."""
        try:
            meta = json.loads((path / "layer.json").read_bytes())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            _rmtree(path)  # not something keep() wrote
            return False
        if not isinstance(meta, dict) or meta.get("diff_id") != diff_id or not (
                path / "diff").is_dir():
            _rmtree(path)
            return False
        with self._lock:
            if self._committed or diff_id in self._claimed:
                return False
            index = next(self._indexes)  # never reused: a failed layer's dir stays
            self._claimed[diff_id] = index
        directory = _layer_stage(self._directory, index)
        try:
            os.rename(path, directory)
        except BaseException as exc:
            with self._lock:
                del self._claimed[diff_id]
            if isinstance(exc, FileNotFoundError):
                return False  # another pull took it (or threw it away) first
            raise
        with self._lock:
            self._staged[diff_id] = _Staged(diff_id, directory)
        return True

    @_map_os_errors
    def commit(self, config_bytes: bytes, names: Sequence[str]) -> Image:
        """Add the image whose config is ``config_bytes`` (kept byte for byte: its sha256 is
        the image id) and name it ``names``. Every layer of the config must be in the store
        or staged here."""
        config = ImageConfig.from_json(config_bytes, source="image config")
        stored = [normalize_name(n) for n in names]
        store = self._store
        with self._lock:
            staged = dict(self._staged)
            self._committed = True
        if staged:  # layers on disk before they are renamed into the store (outside the lock)
            _syncfs(self._directory)
        with store._locked(exclusive=True):
            try:
                store._commit_layers(staged, config.diff_ids, sync=False)
            except _MissingLayerError as missing:
                raise ImageError(f"layer {missing.args[0]} is neither in the store nor "
                                 "staged (removed from the store during the pull?); pull "
                                 "again") from None
            all_names = store._read_names()
            image_id, writes = store._image_files(config_bytes, stored, all_names)
            if stored:
                writes.append((store._repositories, store._names_bytes(all_names)))
            # The layers' renames become durable with the image files' flush, before the
            # image files are renamed into place.
            store._write_many_atomic(writes, renamed_in=[store._layers] if staged else [])
            return store._read_image(image_id, all_names)


# --- save archives --------------------------------------------------------------------------

_ArchiveEntry = tuple[str, bytes | Path]


def _save_archive(
    chosen: dict[str, tuple[Image, list[str]]], configs: dict[str, bytes],
    sizes: dict[str, int], staging: Path,
) -> list[_ArchiveEntry]:
    """The members of a save archive, in order: (name, bytes or a file to copy)."""
    entries: list[_ArchiveEntry] = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    docker_manifest = []
    descriptors = []
    for image_id, (image, tags) in chosen.items():
        config = configs[image_id]
        entries.append((f"blobs/sha256/{hex_of(image_id)}", config))
        layer_paths = []
        for diff_id in image.config.diff_ids:
            name = f"blobs/sha256/{hex_of(diff_id)}"
            if (name, staging / hex_of(diff_id)) not in entries:
                entries.append((name, staging / hex_of(diff_id)))
            layer_paths.append(name)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": image_id, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": d, "size": sizes[d]} for d in image.config.diff_ids],
        }, separators=(",", ":")).encode()
        manifest_digest = sha256_digest(manifest)
        entries.append((f"blobs/sha256/{hex_of(manifest_digest)}", manifest))
        base = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": len(manifest)}
        tag_list: list[str | None] = list(tags) or [None]
        for tag in tag_list:
            desc: dict[str, object] = dict(base)
            if tag is not None:
                desc["annotations"] = {
                    "io.containerd.image.name": tag,
                    "org.opencontainers.image.ref.name": tag.rpartition(":")[2],
                }
            descriptors.append(desc)
        docker_manifest.append({
            "Config": f"blobs/sha256/{hex_of(image_id)}",
            "RepoTags": [familiar_name(t) for t in tags] or None,
            "Layers": layer_paths,
        })
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": descriptors}
    entries.append(("index.json", json.dumps(index, separators=(",", ":")).encode()))
    entries.append(("manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode()))
    return entries


def _write_tar_stream(entries: list[_ArchiveEntry], out: BinaryIO) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name, content in entries:
            parent = name.rpartition("/")[0]
            parts = parent.split("/") if parent else []
            for i in range(len(parts)):
                d = "/".join(parts[: i + 1])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if isinstance(content, bytes):
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                info.size = content.stat().st_size
                with content.open("rb") as f:
                    tar.addfile(info, f)


def _write_tar(entries: list[_ArchiveEntry], path: Path) -> None:
    with path.open("wb") as f:
        _write_tar_stream(entries, f)
        f.flush()
        os.fsync(f.fileno())
