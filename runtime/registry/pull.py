"""Pull an image from a registry into the image store.

::

    result = await pull_image(store, "redis:7", config=RegistryConfig.load(root, os.environ),
                              work_dir=root / "downloads", progress=on_event)
    result.image, result.digest, result.downloaded, result.existed

Steps: resolve the reference (mirrors first for Docker Hub), pick the host's
platform from an index, fetch and verify the config, then download the
layers the store does not have yet in parallel (a ``CapacityLimiter`` of
``config.max_concurrent_downloads``), each streamed to a temporary file in
``work_dir`` while its sha256 and size are checked, and renamed only when
they match. The store unpacks each layer as soon as it and the layers below
it are complete (``ImageStore.add_pulled_image`` runs in a worker thread
while the downloads go on), verifying digest and diff-id again while it
unpacks, and commits the image atomically at the end.

An interrupted pull (error, cancellation, a registry that goes away) leaves
no partial file and nothing in the store; complete, verified blobs are kept
in ``work_dir`` when the registry became unavailable, so a retry downloads
only the rest; they are removed after a successful import.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import trio
from pycompose.runtime.images.archive import LayerSource
from pycompose.runtime.images.config import ImageConfig
from pycompose.runtime.images.digest import hex_of
from pycompose.runtime.images.reference import DEFAULT_DOMAIN, Reference, parse_reference
from pycompose.runtime.images.store import Image, ImageStore
from pycompose.runtime.registry._groups import leaves, root_cause
from pycompose.runtime.registry.client import INDEX_TYPES, RegistryClient
from pycompose.runtime.registry.config import RegistryConfig
from pycompose.runtime.registry.errors import (
    BlobVerificationError,
    ManifestNotFoundError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
)
from pycompose.runtime.registry.events import Progress, ProgressEvent, ignore
from pycompose.runtime.registry.http import HttpClient, HttpError
from pycompose.runtime.registry.manifest import (
    Descriptor,
    Manifest,
    choose_platform,
    parse_manifest,
)

__all__ = ["PullResult", "pull_image", "resolve_image", "ResolvedImage"]

_WRITE_BATCH = 1 << 20
_RETRIES = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class PullResult:
    image: Image
    reference: str          # the familiar name (``redis:7``)
    digest: str             # the manifest digest (of the platform's manifest)
    downloaded: int         # layers fetched
    existed: int            # layers already in the store
    updated: bool           # False: the name already pointed at this image


@dataclass(frozen=True)
class ResolvedImage:
    """What a reference points at on a registry, without downloading layers."""

    client: RegistryClient
    reference: Reference
    repository: str         # path on the registry (``library/redis``)
    digest: str             # manifest digest
    manifest: Manifest
    config_bytes: bytes
    config: ImageConfig


def _endpoints(http: HttpClient, ref: Reference, config: RegistryConfig) -> list[RegistryClient]:
    out = []
    if ref.domain == DEFAULT_DOMAIN:
        out += [RegistryClient(http, ref.domain, config, endpoint=m) for m in config.mirrors]
    out.append(RegistryClient(http, ref.domain, config))
    return out


async def resolve_image(http: HttpClient, ref: Reference, config: RegistryConfig, *,
                        platform: dict[str, str] | None = None,
                        progress: Progress = ignore) -> ResolvedImage:
    """Find the manifest and config for ``ref`` (mirrors first for Docker Hub)."""
    errors: list[RegistryError] = []
    clients = _endpoints(http, ref, config)
    for index, client in enumerate(clients):
        try:
            return await _resolve_at(client, ref, platform, progress)
        except (RegistryUnavailableError, ManifestNotFoundError, RegistryAuthError) as exc:
            if index < len(clients) - 1:
                errors.append(exc)  # a mirror that fails: try the next, then the registry
                continue
            if errors and isinstance(exc, RegistryUnavailableError):
                raise RegistryUnavailableError(
                    f"{exc} (mirrors failed too: {'; '.join(map(str, errors))})") from None
            raise
    raise AssertionError("unreachable")


async def _resolve_at(client: RegistryClient, ref: Reference,
                      platform: dict[str, str] | None, progress: Progress) -> ResolvedImage:
    repo = ref.path
    what = ref.familiar
    progress(ProgressEvent("", f"Resolving {what} on {client.name}"))
    media_type, data, digest = await client.get_manifest(repo, ref.digest or ref.tag or "latest")
    if media_type in INDEX_TYPES:
        entry = choose_platform(media_type, data, f"{client.name}/{repo}@{digest}", platform)
        media_type, data, digest = await client.get_manifest(repo, entry.digest)
    manifest = parse_manifest(media_type, data, f"{client.name}/{repo}@{digest}")
    config_bytes = await client.get_blob_bytes(repo, manifest.config.digest)
    config = ImageConfig.from_json(config_bytes, source=f"{what} (config {manifest.config.digest})")
    if len(config.diff_ids) != len(manifest.layers):
        raise RegistryError(f"{what}: the manifest has {len(manifest.layers)} layers but the "
                            f"config lists {len(config.diff_ids)}")
    return ResolvedImage(client, ref, repo, digest, manifest, config_bytes, config)


class _Download:
    """One layer being fetched, shared by its download task (trio) and the store's
    worker thread, which unpacks the blob while it is still arriving.

    The download task reports how many bytes are on disk (``grow``) and the end
    (``finish``); :class:`_FollowReader` reads the file behind it, blocking on a
    ``threading.Condition`` for more. The store verifies the digest as it reads,
    and the download task verifies it too before the blob is renamed into place.
    """

    def __init__(self, desc: Descriptor, diff_id: str, path: Path) -> None:
        self.desc = desc
        self.diff_id = diff_id
        self.path = path                   # where the verified blob ends up
        # A read-only fd on the blob's inode, taken before the file can be renamed or
        # removed (by this pull, or by another pull of the same layer): readers dup it.
        self.fd: int | None = None
        self.size = 0
        self.complete = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def started(self, fd: int, size: int = 0) -> None:
        with self.cond:
            self.fd = fd
            self.size = size
            self.cond.notify_all()

    def grow(self, n: int) -> None:
        with self.cond:
            self.size += n
            self.cond.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        with self.cond:
            self.complete = True
            self.error = error
            self.cond.notify_all()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _FollowReader:
    """Reads a blob while it is downloaded (in the store's worker thread)."""

    def __init__(self, item: _Download) -> None:
        self.item = item
        self.pos = 0
        with item.cond:
            while item.fd is None and not item.complete:
                item.cond.wait()
            self._raise_if_failed()
            if item.fd is None:
                raise RegistryError(f"layer {item.desc.digest}: no downloaded blob")
            self.file: BinaryIO = os.fdopen(os.dup(item.fd), "rb")

    def _raise_if_failed(self) -> None:
        if self.item.error is not None:
            raise RegistryError(f"layer {self.item.desc.digest} could not be downloaded")

    def read(self, n: int = -1) -> bytes:
        item = self.item
        with item.cond:
            while self.pos >= item.size and not item.complete:
                item.cond.wait()
            self._raise_if_failed()
            available = item.size - self.pos
        if available <= 0:
            return b""
        data = self.file.read(available if n < 0 else min(n, available))
        self.pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> _FollowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_complete(path: Path, size: int) -> int | None:
    """An fd on a complete blob kept by an earlier pull, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if os.fstat(fd).st_size != size:
        os.close(fd)
        return None
    return fd


def _sweep_partials(work_dir: Path) -> None:
    """Remove ``*.partial`` files of pulls that died (their flock is gone)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(work_dir):
            if not entry.endswith(".partial"):
                continue
            path = work_dir / entry
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            finally:
                os.close(fd)
            path.unlink(missing_ok=True)


async def _fetch_blob(client: RegistryClient, repo: str, item: _Download,
                      progress: Progress) -> None:
    """Download ``item`` to its path (renamed into place only when digest and size match)."""
    desc, dest = item.desc, item.path
    short = hex_of(desc.digest)[:12]
    partial = dest.with_name(f"{dest.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    item.started(os.open(partial, os.O_RDONLY | os.O_CLOEXEC))
    out = os.fdopen(fd, "wb")
    hasher = hashlib.sha256()
    written = 0

    def write(data: bytes) -> None:
        hasher.update(data)
        out.write(data)
        out.flush()  # the store's reader follows the file

    try:
        for attempt, delay in enumerate((*_RETRIES, None)):
            try:
                async with client.blob(repo, desc.digest, offset=written) as resp:
                    buf = bytearray()
                    async for chunk in resp.iter_bytes():
                        buf += chunk
                        if written + len(buf) > desc.size:
                            raise BlobVerificationError(
                                f"registry {client.name}: blob {repo}@{desc.digest} is larger "
                                f"than the {desc.size} bytes its manifest says")
                        if len(buf) >= _WRITE_BATCH:
                            data, buf = bytes(buf), bytearray()
                            await trio.to_thread.run_sync(write, data)
                            written += len(data)
                            item.grow(len(data))
                            progress(ProgressEvent(short, "Downloading", written, desc.size))
                    if buf:
                        await trio.to_thread.run_sync(write, bytes(buf))
                        written += len(buf)
                        item.grow(len(buf))
                break
            except (RegistryUnavailableError, HttpError) as exc:
                if delay is None:
                    raise RegistryUnavailableError(
                        f"{exc} (while downloading {repo}@{desc.digest}, {written} of "
                        f"{desc.size} bytes, after {attempt + 1} attempts)") from None
                progress(ProgressEvent(short, f"Retrying in {delay:g}s", written, desc.size))
                await trio.sleep(delay)
        progress(ProgressEvent(short, "Verifying Checksum", written, desc.size))
        if written != desc.size:
            raise BlobVerificationError(
                f"registry {client.name}: blob {repo}@{desc.digest}: got {written} bytes, "
                f"expected {desc.size}")
        got = "sha256:" + hasher.hexdigest()
        if got != desc.digest:
            raise BlobVerificationError(
                f"registry {client.name}: blob {repo}@{desc.digest} does not match its digest "
                f"(got {got}): corrupt content, rejected")
        await trio.to_thread.run_sync(_flush_close, out)
        os.rename(partial, dest)
        progress(ProgressEvent(short, "Download complete", written, desc.size))
    finally:
        with contextlib.suppress(OSError):
            out.close()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _flush_close(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


async def pull_image(store: ImageStore, reference: str, *,
                     config: RegistryConfig | None = None, work_dir: Path | None = None,
                     progress: Progress = ignore, platform: dict[str, str] | None = None,
                     http: HttpClient | None = None) -> PullResult:
    """Pull ``reference`` into ``store``; see the module docstring."""
    ref = parse_reference(reference)
    config = config or RegistryConfig()
    work_dir = Path(work_dir) if work_dir is not None else store.root.parent / "downloads"
    await trio.to_thread.run_sync(lambda: work_dir.mkdir(parents=True, exist_ok=True))
    await trio.to_thread.run_sync(_sweep_partials, work_dir)
    own_http = http is None
    client_http = http or HttpClient()
    try:
        resolved = await resolve_image(client_http, ref, config, platform=platform,
                                       progress=progress)
        return await _pull_resolved(store, resolved, work_dir, progress, config)
    finally:
        if own_http:
            await client_http.aclose()


async def _pull_resolved(store: ImageStore, res: ResolvedImage, work_dir: Path,
                         progress: Progress, config: RegistryConfig) -> PullResult:
    ref = res.reference
    names = [f"{ref.repository}:{ref.tag}"] if ref.tag is not None else []
    image_id = res.manifest.config.digest
    previous: Image | None = None
    if names:
        with contextlib.suppress(Exception):
            previous = await trio.to_thread.run_sync(store.get, names[0])
    downloads: list[_Download | None] = []
    existed = 0
    for desc, diff_id in zip(res.manifest.layers, res.config.diff_ids, strict=True):
        short = hex_of(desc.digest)[:12]
        if await trio.to_thread.run_sync(store.has_layer, diff_id):
            progress(ProgressEvent(short, "Already exists"))
            downloads.append(None)
            existed += 1
        else:
            progress(ProgressEvent(short, "Waiting", 0, desc.size))
            downloads.append(_Download(desc, diff_id, work_dir / hex_of(desc.digest)))
    pending = [d for d in downloads if d is not None]
    limiter = trio.CapacityLimiter(config.max_concurrent_downloads)
    success = False
    keep_blobs = False

    async def download(item: _Download) -> None:
        error: BaseException | None = None
        try:
            fd = await trio.to_thread.run_sync(_open_complete, item.path, item.desc.size)
            if fd is not None:  # verified by an earlier pull that was interrupted
                item.started(fd, item.desc.size)
                progress(ProgressEvent(hex_of(item.desc.digest)[:12], "Download complete",
                                       item.desc.size, item.desc.size))
            else:
                async with limiter:
                    await _fetch_blob(res.client, res.repository, item, progress)
        except BaseException as exc:
            error = exc
            raise
        finally:
            item.finish(error)

    def opener(item: _Download) -> Callable[[], BinaryIO]:
        def open_blob() -> BinaryIO:
            # Runs in the store's worker thread, possibly before the download is done.
            reader = _FollowReader(item)
            trio.from_thread.run_sync(progress, ProgressEvent(
                hex_of(item.desc.digest)[:12], "Extracting", item.desc.size, item.desc.size))
            return cast(BinaryIO, reader)
        return open_blob

    sources = [
        None if d is None else LayerSource(
            diff_id=d.diff_id, digest=d.desc.digest, size=d.desc.size,
            name=f"{ref.familiar} layer {d.desc.digest}", open=opener(d))
        for d in downloads
    ]
    image: Image | None = None

    async def import_all() -> None:
        nonlocal image
        image = await trio.to_thread.run_sync(
            store.add_pulled_image, res.config_bytes, sources, names)

    try:
        async with trio.open_nursery() as nursery:
            for item in pending:
                nursery.start_soon(download, item)
            nursery.start_soon(import_all)
        success = True
    except BaseException as exc:
        keep_blobs = any(isinstance(e, RegistryUnavailableError) for e in leaves(exc))
        cause = root_cause(exc, knock_on=("could not be downloaded",))
        if cause is not None and cause is not exc:
            raise cause from None
        raise
    finally:
        for item in pending:
            item.close()
        if success or not keep_blobs:
            with trio.CancelScope(shield=True):
                for item in pending:
                    await trio.to_thread.run_sync(item.path.unlink, True)
    assert image is not None
    keys = {f"{ref.repository}@{res.digest}"}
    if ref.digest is not None:
        keys.add(f"{ref.repository}@{ref.digest}")
    await trio.to_thread.run_sync(record_digests, work_dir, keys, image.id)
    for d in pending:
        progress(ProgressEvent(hex_of(d.desc.digest)[:12], "Pull complete"))
    progress(ProgressEvent("", f"Digest: {res.digest}"))
    updated = previous is None or previous.id != image_id
    status = (f"Downloaded newer image for {ref.familiar}" if updated
              else f"Image is up to date for {ref.familiar}")
    progress(ProgressEvent("", f"Status: {status}"))
    return PullResult(image, ref.familiar, res.digest, len(pending), existed, updated)


_DIGESTS = "digests.json"


def record_digests(work_dir: Path, keys: set[str], image_id: str) -> None:
    """Remember which image ``repo@sha256:…`` references pulled (the store names only tags)."""
    lock_fd = os.open(work_dir / f"{_DIGESTS}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                      0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        known = _read_digests(work_dir)
        known.update({k: image_id for k in keys})
        tmp = work_dir / f"{_DIGESTS}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(json.dumps(dict(sorted(known.items())), indent=1))
        os.rename(tmp, work_dir / _DIGESTS)
    finally:
        os.close(lock_fd)


def _read_digests(work_dir: Path) -> dict[str, str]:
    try:
        doc = json.loads((work_dir / _DIGESTS).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def pulled_image_id(work_dir: Path, reference: str) -> str | None:
    """The image id a digest reference (``repo@sha256:…``) was pulled as, if it was."""
    ref = parse_reference(reference)
    if ref.digest is None:
        return None
    return _read_digests(work_dir).get(f"{ref.repository}@{ref.digest}")
