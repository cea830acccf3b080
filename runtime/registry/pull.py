"""Pull an image from a registry into the image store.

::

    result = await pull_image(store, "redis:7", config=RegistryConfig.load(root, os.environ),
                              work_dir=root / "downloads", progress=on_event)
    result.image, result.digest, result.downloaded, result.existed

Steps: resolve the reference (mirrors first for Docker Hub), pick the host's
platform from an index, fetch and verify the config, then fetch the layers the
store does not have yet, several at once (``config.max_concurrent_downloads``).
Each layer is streamed to a temporary file in ``work_dir`` and, while it is still
arriving, unpacked by the store in a worker thread of its own
(``ImageStore.staging``: the blob digest, its size and the diff-id are verified
as the bytes go through, hostile tar entries are refused). Layers unpack side
by side, not one after another; the image is committed atomically when all of
them are in, under the store lock only for the final renames.

An interrupted pull (error, cancellation, a registry that goes away) leaves
no partial file and nothing in the store; complete blobs are kept in
``work_dir`` (checked against their digest, flushed, renamed into place) when
the registry became unavailable, so a retry downloads only the rest; they are
removed after a successful import.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import trio
from pycompose.runtime.errors import ImageDigestError
from pycompose.runtime.images.archive import LayerSource
from pycompose.runtime.images.config import ImageConfig
from pycompose.runtime.images.digest import hex_of
from pycompose.runtime.images.reference import DEFAULT_DOMAIN, Reference, parse_reference
from pycompose.runtime.images.store import Image, ImageStore, LayerStaging
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

    The download task appends to a ``.partial`` file and reports how many bytes are
    on disk (``grow``) and the end (``finish``); :class:`_FollowReader` reads the file
    behind it with ``pread``, blocking on a ``threading.Condition`` for more. The store
    verifies the digest as it reads; the file is only renamed to the blob's name when
    it is kept for a retry (checked again then).
    """

    def __init__(self, desc: Descriptor, diff_id: str, path: Path) -> None:
        self.desc = desc
        self.diff_id = diff_id
        self.path = path                   # where a kept (verified) blob lives
        self.partial: Path | None = None   # the file being written by this pull
        self.write_fd: int | None = None   # holds the partial's flock until the pull ends
        # A read-only fd on the blob's inode, taken before the file can be renamed or
        # removed (by this pull, or by another pull of the same layer).
        self.fd: int | None = None
        self.size = 0
        self.complete = False
        self.error: BaseException | None = None
        self.aborted = False
        self.cond = threading.Condition()

    @property
    def short(self) -> str:
        return hex_of(self.desc.digest)[:12]

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

    def abort(self) -> None:
        """Make the reader fail at its next read (the pull is being torn down)."""
        with self.cond:
            self.aborted = True
            self.cond.notify_all()

    def close(self) -> None:
        for name in ("fd", "write_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


class _FollowReader:
    """Reads a blob while it is downloaded (in the store's worker thread)."""

    def __init__(self, item: _Download) -> None:
        self.item = item
        self.pos = 0
        with item.cond:
            while item.fd is None and not item.complete and not item.aborted:
                item.cond.wait()
            self._raise_if_failed()
            if item.fd is None:
                raise RegistryError(f"layer {item.desc.digest}: no downloaded blob")
            self.fd = item.fd  # stays open until every reader is done (the pull's end)

    def _raise_if_failed(self) -> None:
        if self.item.error is not None or self.item.aborted:
            raise RegistryError(f"layer {self.item.desc.digest} could not be downloaded")

    def read(self, n: int = -1) -> bytes:
        item = self.item
        with item.cond:
            while self.pos >= item.size and not item.complete and not item.aborted:
                item.cond.wait()
            self._raise_if_failed()
            available = item.size - self.pos
        if available <= 0:
            return b""
        data = os.pread(self.fd, available if n < 0 else min(n, available), self.pos)
        self.pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass  # the fd belongs to the _Download

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


def _write_chunks(fd: int, chunks: list[bytes]) -> None:
    """Append ``chunks`` with as few system calls as possible (no joining copy)."""
    while chunks:
        written = os.writev(fd, chunks)
        while chunks and written >= len(chunks[0]):
            written -= len(chunks[0])
            chunks = chunks[1:]
        if written:
            chunks = [chunks[0][written:], *chunks[1:]]


async def _fetch_blob(client: RegistryClient, repo: str, item: _Download,
                      progress: Progress) -> None:
    """Download ``item`` into its ``.partial`` file (whose size must come out right; the
    digest is checked by the store's unpack, which reads the file as it grows)."""
    desc, dest = item.desc, item.path
    short = item.short
    partial = dest.with_name(f"{dest.name}.{secrets.token_hex(4)}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    item.partial, item.write_fd = partial, fd
    fcntl.flock(fd, fcntl.LOCK_EX)
    item.started(os.open(partial, os.O_RDONLY | os.O_CLOEXEC))
    written = 0
    for attempt, delay in enumerate((*_RETRIES, None)):
        try:
            async with client.blob(repo, desc.digest, offset=written) as resp:
                pending: list[bytes] = []
                size = 0
                async for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if written + size > desc.size:
                        raise BlobVerificationError(
                            f"registry {client.name}: blob {repo}@{desc.digest} is larger "
                            f"than the {desc.size} bytes its manifest says")
                    pending.append(chunk)
                    if size >= _WRITE_BATCH:
                        await trio.to_thread.run_sync(_write_chunks, fd, pending)
                        written += size
                        item.grow(size)
                        pending, size = [], 0
                        progress(ProgressEvent(short, "Downloading", written, desc.size))
                if pending:
                    await trio.to_thread.run_sync(_write_chunks, fd, pending)
                    written += size
                    item.grow(size)
            break
        except (RegistryUnavailableError, HttpError) as exc:
            if delay is None:
                raise RegistryUnavailableError(
                    f"{exc} (while downloading {repo}@{desc.digest}, {written} of "
                    f"{desc.size} bytes, after {attempt + 1} attempts)") from None
            progress(ProgressEvent(short, f"Retrying in {delay:g}s", written, desc.size))
            await trio.sleep(delay)
    if written != desc.size:
        raise BlobVerificationError(
            f"registry {client.name}: blob {repo}@{desc.digest}: got {written} bytes, "
            f"expected {desc.size}")
    progress(ProgressEvent(short, "Verifying Checksum", written, desc.size))
    progress(ProgressEvent(short, "Download complete", written, desc.size))


def _keep_blob(item: _Download) -> None:
    """Keep a complete download for the next pull: renamed into place only when its
    digest matches, after it is flushed to disk."""
    partial = item.partial
    if partial is None or item.write_fd is None or not item.complete or item.error:
        return
    hasher = hashlib.sha256()
    size = 0
    fd = item.write_fd
    while chunk := os.pread(fd, 1 << 20, size):
        hasher.update(chunk)
        size += len(chunk)
    if size != item.desc.size or "sha256:" + hasher.hexdigest() != item.desc.digest:
        return
    os.fsync(fd)
    os.rename(partial, item.path)
    item.partial = None


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
    layers = list(zip(res.manifest.layers, res.config.diff_ids, strict=True))

    def inventory() -> tuple[Image | None, list[bool]]:
        previous = None
        if names:
            with contextlib.suppress(Exception):
                previous = store.get(names[0])
        return previous, [store.has_layer(diff_id) for _, diff_id in layers]

    previous, present = await trio.to_thread.run_sync(inventory)
    pending: list[_Download] = []
    seen: set[str] = set()
    existed = 0
    for (desc, diff_id), have in zip(layers, present, strict=True):
        if have:
            progress(ProgressEvent(hex_of(desc.digest)[:12], "Already exists"))
            existed += 1
        elif diff_id not in seen:  # a layer listed twice is fetched once
            seen.add(diff_id)
            progress(ProgressEvent(hex_of(desc.digest)[:12], "Waiting", 0, desc.size))
            pending.append(_Download(desc, diff_id, work_dir / hex_of(desc.digest)))
    downloads = trio.CapacityLimiter(config.max_concurrent_downloads)
    # One unpacking thread per layer being downloaded: each follows its own blob.
    unpackers = trio.CapacityLimiter(max(1, config.max_concurrent_downloads))
    keep_blobs = False
    image: Image | None = None
    staging_cm = contextlib.ExitStack()

    async def download(item: _Download) -> None:
        error: BaseException | None = None
        try:
            fd = await trio.to_thread.run_sync(_open_complete, item.path, item.desc.size)
            if fd is not None:  # verified by an earlier pull that was interrupted
                item.started(fd, item.desc.size)
                progress(ProgressEvent(item.short, "Download complete",
                                       item.desc.size, item.desc.size))
            else:
                async with downloads:
                    await _fetch_blob(res.client, res.repository, item, progress)
        except BaseException as exc:
            error = exc
            raise
        finally:
            item.finish(error)

    def open_blob(item: _Download) -> _FollowReader:
        # Runs in the unpacking thread, possibly before the download has begun.
        reader = _FollowReader(item)
        trio.from_thread.run_sync(progress, ProgressEvent(
            item.short, "Extracting", item.desc.size, item.desc.size))
        return reader

    async def abort_when_cancelled(item: _Download) -> None:
        try:
            await trio.sleep_forever()
        finally:
            item.abort()

    async def fetch_and_unpack(staging: LayerStaging, item: _Download) -> None:
        source = LayerSource(diff_id=item.diff_id, digest=item.desc.digest,
                             size=item.desc.size,
                             name=f"{ref.familiar} layer {item.desc.digest}",
                             open=functools.partial(open_blob, item))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(download, item)
            # The thread cannot be cancelled; when the pull is, this makes its reads fail.
            nursery.start_soon(abort_when_cancelled, item)
            try:
                await trio.to_thread.run_sync(staging.unpack, source, limiter=unpackers)
            except ImageDigestError as exc:
                raise _blob_error(res, item, exc) from None
            nursery.cancel_scope.cancel()

    try:
        staging = await trio.to_thread.run_sync(staging_cm.enter_context, store.staging())
        async with trio.open_nursery() as nursery:
            for item in pending:
                nursery.start_soon(fetch_and_unpack, staging, item)
        image = await trio.to_thread.run_sync(staging.commit, res.config_bytes, names)
    except BaseException as exc:
        keep_blobs = any(isinstance(e, RegistryUnavailableError) for e in leaves(exc))
        cause = root_cause(exc, knock_on=("could not be downloaded",))
        if cause is not None and cause is not exc:
            raise cause from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_clean_up, staging_cm, pending, keep_blobs,
                                          image is not None)
    assert image is not None
    keys = {f"{ref.repository}@{res.digest}"}
    if ref.digest is not None:
        keys.add(f"{ref.repository}@{ref.digest}")
    await trio.to_thread.run_sync(record_digests, work_dir, keys, image.id)
    for d in pending:
        progress(ProgressEvent(d.short, "Pull complete"))
    progress(ProgressEvent("", f"Digest: {res.digest}"))
    updated = previous is None or previous.id != image_id
    status = (f"Downloaded newer image for {ref.familiar}" if updated
              else f"Image is up to date for {ref.familiar}")
    progress(ProgressEvent("", f"Status: {status}"))
    return PullResult(image, ref.familiar, res.digest, len(pending), existed, updated)


def _blob_error(res: ResolvedImage, item: _Download, exc: ImageDigestError) -> RegistryError:
    """The store found a layer's content wrong: say so in the registry's terms."""
    where = f"registry {res.client.name}: blob {res.repository}@{item.desc.digest}"
    if exc.expected == item.desc.digest:
        return BlobVerificationError(
            f"{where} does not match its digest ({exc}): corrupt content, rejected")
    return BlobVerificationError(
        f"{where}: its uncompressed content does not match the image config's diff_id "
        f"{item.diff_id} ({exc}): rejected")


def _clean_up(staging: contextlib.ExitStack, items: list[_Download], keep: bool,
              success: bool) -> None:
    """Drop staged layers, keep or remove the blobs, close every file (a worker thread)."""
    try:
        staging.close()
    finally:
        for item in items:
            try:
                if keep and not success:
                    with contextlib.suppress(OSError):
                        _keep_blob(item)
                if item.partial is not None:
                    item.partial.unlink(missing_ok=True)
                if success or not keep:
                    item.path.unlink(missing_ok=True)
            finally:
                item.close()


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
