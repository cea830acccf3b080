"""Pull an image from a registry into the image store.

::

    result = await pull_image(store, "redis:7", config=RegistryConfig.load(root, os.environ),
                              work_dir=root / "downloads", progress=on_event)
    result.image, result.digest, result.downloaded, result.existed

Steps: resolve the reference (mirrors first for Docker Hub), pick the host's
platform from an index; then, while the image config is on its way, fetch the
layers the store does not have yet, several at once
(``config.max_concurrent_downloads``, at most one per CPU: ``layers_at_once``).
Which layers those are is known before the config (whose ``diff_ids`` name
them) from what the store recorded of each blob it unpacked
(``ImageStore.blob_diff_id``, as Docker's diffid-by-digest): a layer the store
has under an unrecorded blob is downloaded, verified and then found to be there.

Each layer goes straight from its connection to a worker thread of its own that
unpacks it as it arrives (``ImageStore.staging``: the blob digest and size are
verified and the diff-id computed as the bytes go through, hostile tar entries
are refused); the blob itself is never written to disk. Layers unpack side by
side; every layer's diff-id is checked against the config, then the image is
committed atomically, under the store lock only for the final renames.

An interrupted pull (error, cancellation, a registry that goes away) leaves
nothing in the store and no partial file. When the registry became
unavailable, the layers that were completely unpacked and verified are kept in
``work_dir`` (``<diff-id>.layer``), so a retry downloads only the rest; a later
pull takes them over.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import trio

from pycompose.runtime.errors import ImageDigestError, ImageError
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
from pycompose.runtime.registry.http import DetachedBody, HttpClient, HttpError
from pycompose.runtime.registry.manifest import (
    Descriptor,
    Manifest,
    choose_platform,
    parse_manifest,
)

__all__ = ["PullResult", "ResolvedImage", "fetch_config", "prune_kept_layers", "pull_image",
           "resolve_image"]

_PIPE_LIMIT = 1 << 20     # bytes of a blob between its connection and its unpacking thread
_REPORT_INTERVAL = 0.1    # seconds between progress events of a layer
_BODY_READ = 1 << 18      # socket reads of a handed-over body
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
    """What a reference points at on a registry: the manifest for this platform."""

    client: RegistryClient
    reference: Reference
    repository: str         # path on the registry (``library/redis``)
    digest: str             # manifest digest
    manifest: Manifest


def _endpoints(http: HttpClient, ref: Reference, config: RegistryConfig) -> list[RegistryClient]:
    out = []
    if ref.domain == DEFAULT_DOMAIN:
        out += [RegistryClient(http, ref.domain, config, endpoint=m) for m in config.mirrors]
    out.append(RegistryClient(http, ref.domain, config))
    return out


async def resolve_image(http: HttpClient, ref: Reference, config: RegistryConfig, *,
                        platform: dict[str, str] | None = None,
                        progress: Progress = ignore) -> ResolvedImage:
    """Find the manifest for ``ref`` (mirrors first for Docker Hub)."""
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
    progress(ProgressEvent("", f"Resolving {ref.familiar} on {client.name}"))
    media_type, data, digest = await client.get_manifest(repo, ref.digest or ref.tag or "latest")
    if media_type in INDEX_TYPES:
        entry = choose_platform(media_type, data, f"{client.name}/{repo}@{digest}", platform)
        media_type, data, digest = await client.get_manifest(repo, entry.digest)
    manifest = parse_manifest(media_type, data, f"{client.name}/{repo}@{digest}")
    return ResolvedImage(client, ref, repo, digest, manifest)


async def fetch_config(res: ResolvedImage) -> tuple[bytes, ImageConfig]:
    """The image config of ``res``: its bytes (digest verified) and parsed."""
    digest = res.manifest.config.digest
    what = res.reference.familiar
    config_bytes = await res.client.get_blob_bytes(res.repository, digest)
    config = ImageConfig.from_json(config_bytes, source=f"{what} (config {digest})")
    if len(config.diff_ids) != len(res.manifest.layers):
        raise RegistryError(f"{what}: the manifest has {len(res.manifest.layers)} layers but "
                            f"the config lists {len(config.diff_ids)}")
    return config_bytes, config


@dataclass
class _Handover:
    """A response body the unpacking thread reads from the socket itself."""

    body: DetachedBody
    done: trio.Event                 # set (through the trio token) when it is read or broke
    report: Callable[[int], None]    # bytes of this body read so far (called in trio)


class _BlobPipe:
    """A blob on its way from its download task (trio) to its unpacking thread.

    On a plain-TCP connection the task hands the whole response body over
    (``hand_over``): the thread reads the socket itself, with no hop through the event
    loop per chunk. Otherwise (TLS, chunked bodies) the task ``put``s what it receives
    and the thread ``read``s it, blocking on a ``threading.Condition`` for more. At
    most ``limit`` bytes wait in between: a full pipe makes the task wait on a trio
    ``Event`` that the thread sets through the trio token, so what the unpacker has not
    taken yet stays in the socket, not in memory.
    """

    def __init__(self, name: str, limit: int = _PIPE_LIMIT) -> None:
        self.name = name
        self._token = trio.lowlevel.current_trio_token()
        self._cond = threading.Condition()
        self._items: collections.deque[bytes | _Handover] = collections.deque()
        self._buffered = 0
        self._limit = limit
        self._space: trio.Event | None = None
        self._done = False
        self._failed = False
        self._current = b""  # the reader's chunk being read in pieces, and where
        self._pos = 0
        self._handover: _Handover | None = None  # the body the reader is reading
        self._bodies: list[DetachedBody] = []
        self._reported_at = time.monotonic()  # the last progress report of a body read here

    # -- the download task (trio) ------------------------------------------------------

    async def put(self, chunk: bytes) -> None:
        with self._cond:
            self._items.append(chunk)
            self._buffered += len(chunk)
            self._cond.notify()
            if self._buffered < self._limit:
                return
            space = self._space = trio.Event()
        await space.wait()

    async def hand_over(self, body: DetachedBody, report: Callable[[int], None]) -> None:
        """Let the reader read ``body`` from its socket; returns when it has read all of it
        or the connection broke (``body.error``). Cancelled, it aborts the body, so a read
        blocked on the socket returns at once."""
        handover = _Handover(body, trio.Event(), report)
        with self._cond:
            self._items.append(handover)
            self._bodies.append(body)
            self._cond.notify()
        try:
            await handover.done.wait()
        except BaseException:
            body.abort()
            raise

    def finish(self, *, failed: bool = False) -> None:
        """No more data: the blob is complete, or (``failed``) it never will be."""
        with self._cond:
            self._done = True
            self._failed = self._failed or failed
            self._cond.notify_all()

    def close(self) -> None:
        """Close the bodies' sockets (once the reader has returned)."""
        for body in self._bodies:
            body.close()

    # -- the unpacking thread ----------------------------------------------------------

    def read(self, n: int = -1) -> bytes:
        current, pos = self._current, self._pos
        if pos < len(current):  # the rest of a chunk taken before: no lock needed
            if n < 0 or pos + n >= len(current):
                self._current, self._pos = b"", 0
                return current[pos:]
            self._pos = pos + n
            return current[pos:pos + n]
        while True:
            if self._handover is not None:
                data = self._read_body(self._handover, n)
                if data:
                    return data
                continue
            with self._cond:
                while not self._items and not self._done:
                    self._cond.wait()
                if self._failed:
                    raise RegistryError(f"layer {self.name} could not be downloaded")
                if not self._items:
                    return b""
                item = self._items.popleft()
                if isinstance(item, _Handover):
                    self._handover = item
                    continue
                chunk = item
                self._buffered -= len(chunk)
                space = self._space
                if space is not None and self._buffered <= self._limit // 2:
                    self._space = None
                else:
                    space = None
            if space is not None:
                self._token.run_sync_soon(space.set)
            if 0 <= n < len(chunk):  # a small read: keep the rest here, copy only what is read
                self._current, self._pos = chunk, n
                return chunk[:n]
            return chunk

    def _read_body(self, handover: _Handover, n: int) -> bytes:
        """The next piece of a handed-over body; b"" when it has ended (read or broken)."""
        body = handover.body
        try:
            data = body.read(n if n > 0 else _BODY_READ)
        except HttpError:
            data = b""
        after = body.length - body.remaining
        if not data:  # its download task takes over: next body, or finish
            self._handover = None
            self._token.run_sync_soon(handover.report, after)
            self._token.run_sync_soon(handover.done.set)
        else:
            # The event loop is woken for progress only as often as it is shown.
            now = time.monotonic()
            if now - self._reported_at >= _REPORT_INTERVAL:
                self._reported_at = now
                self._token.run_sync_soon(handover.report, after)
        return data

    def readable(self) -> bool:
        return True

    def __enter__(self) -> _BlobPipe:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@dataclass
class _Layer:
    desc: Descriptor
    diff_id: str | None  # recorded by the store for this blob, else known once unpacked
    unpacked: bool = False

    @property
    def short(self) -> str:
        return str(hex_of(self.desc.digest)[:12])


def _offset_report(report: Callable[[int], None], start: int, count: int) -> None:
    report(start + count)


def _sweep_partials(work_dir: Path) -> None:
    """Remove ``*.partial`` files of pulls that died (their flock is gone), and kept layers
    that a pull was throwing away when it died (``*.dead``)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(work_dir):
            if entry.endswith(".dead"):
                shutil.rmtree(work_dir / entry, ignore_errors=True)
                continue
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


def layers_at_once(max_downloads: int) -> int:
    """How many layers a pull fetches at a time: ``max_downloads`` (Docker's
    ``max-concurrent-downloads``), but not more than the CPUs this process may run on,
    and at least 2. Each layer in flight is unpacked by a thread of its own as its bytes
    arrive, so on a fast link the layers compete for the CPUs: more of them than CPUs
    only add context switches and GIL hand-offs (a 4-layer pull on 2 CPUs, 3 at once vs
    2: 12.8 ms slower of 180; with 20 ms of round trip, no faster either)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(max_downloads, max(2, cpus or 2)))


async def _fetch_blob(client: RegistryClient, repo: str, layer: _Layer, pipe: _BlobPipe,
                      progress: Progress) -> None:
    """Download ``layer``'s blob into ``pipe``, resuming with a Range request when the
    connection breaks; its size is checked here, its digest by the store's unpack."""
    desc = layer.desc
    short = layer.short
    received = 0
    reported_at: float | None = None

    def report(count: int) -> None:
        # Progress at most every _REPORT_INTERVAL per layer: a display needs no more,
        # and every event may be a line sent to a client.
        nonlocal reported_at
        now = trio.current_time()
        if reported_at is None or now - reported_at >= _REPORT_INTERVAL:
            reported_at = now
            progress(ProgressEvent(short, "Downloading", count, desc.size))

    def too_large() -> BlobVerificationError:
        return BlobVerificationError(
            f"registry {client.name}: blob {repo}@{desc.digest} is larger than the "
            f"{desc.size} bytes its manifest says")

    for attempt, delay in enumerate((*_RETRIES, None)):
        try:
            async with client.blob(repo, desc.digest, offset=received) as resp:
                body = resp.detach_body()
                if body is not None:
                    if received + body.length > desc.size:
                        raise too_large()
                    start = received
                    try:
                        await pipe.hand_over(body, functools.partial(_offset_report, report, start))
                    finally:
                        received = start + body.length - body.remaining
                        with trio.CancelScope(shield=True):
                            await resp.reattach(body)
                    if body.error is not None:
                        raise body.error
                else:
                    async with contextlib.aclosing(resp.iter_bytes()) as chunks:
                        async for chunk in chunks:
                            received += len(chunk)
                            if received > desc.size:
                                raise too_large()
                            await pipe.put(chunk)
                            report(received)
            break
        except (RegistryUnavailableError, HttpError) as exc:
            if delay is None:
                raise RegistryUnavailableError(
                    f"{exc} (while downloading {repo}@{desc.digest}, {received} of "
                    f"{desc.size} bytes, after {attempt + 1} attempts)") from None
            progress(ProgressEvent(short, f"Retrying in {delay:g}s", received, desc.size))
            await trio.sleep(delay)
    if received != desc.size:
        raise BlobVerificationError(
            f"registry {client.name}: blob {repo}@{desc.digest}: got {received} bytes, "
            f"expected {desc.size}")
    progress(ProgressEvent(short, "Download complete", received, desc.size))


async def pull_image(store: ImageStore, reference: str, *,
                     config: RegistryConfig | None = None, work_dir: Path | None = None,
                     progress: Progress = ignore, platform: dict[str, str] | None = None,
                     http: HttpClient | None = None) -> PullResult:
    """Pull ``reference`` into ``store``; see the module docstring."""
    ref = parse_reference(reference)
    config = config or RegistryConfig()
    work_dir = Path(work_dir) if work_dir is not None else store.root.parent / "downloads"

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
    descs = res.manifest.layers

    staging_cm = contextlib.ExitStack()
    staging: LayerStaging | None = None

    def inventory() -> tuple[Image | None, list[str | None], list[bool], set[str],
                             LayerStaging]:
        """What the store has (by the blobs it recorded), which layers an earlier pull kept,
        and a staging area: one trip to a thread, while the config is fetched."""
        work_dir.mkdir(parents=True, exist_ok=True)
        _sweep_partials(work_dir)
        previous = None
        if names:
            with contextlib.suppress(Exception):
                previous = store.get(names[0])
        known = [store.blob_diff_id(desc.digest) for desc in descs]
        have = [diff_id is not None and store.has_layer(diff_id) for diff_id in known]
        kept = set()
        for diff_id, ok in zip(known, have, strict=True):
            if diff_id is None or not _kept_path(work_dir, diff_id).exists():
                continue
            if ok:  # the store got the layer since: what was kept is not needed
                _discard_kept(_kept_path(work_dir, diff_id))
            else:
                kept.add(diff_id)
        return previous, known, have, kept, staging_cm.enter_context(store.staging())

    config_ready = trio.Event()
    config_bytes = b""
    image_config: ImageConfig | None = None

    async def get_config() -> None:
        nonlocal config_bytes, image_config
        config_bytes, image_config = await fetch_config(res)
        config_ready.set()

    async def check(layer: _Layer) -> None:
        """Once the config is here: the layer's diff-id must be the one it names."""
        await config_ready.wait()
        assert image_config is not None
        assert layer.diff_id is not None
        for desc, expected in zip(descs, image_config.diff_ids, strict=True):
            if desc.digest == layer.desc.digest and expected != layer.diff_id:
                raise _diff_id_error(res, layer, expected)

    # Downloads hold a slot while they transfer; the unpacking thread of a layer starts
    # once its download has a slot. A plain-HTTP body is read by that thread itself, so
    # its slot is held until the layer is read whole (about its unpacking); through the
    # pipe (TLS) the thread may go on after the slot passes to the next layer. (No
    # deadlock: a thread waiting for a token has a download that waits at most for its
    # pipe or its reader, and every token holder's download and unpack go on.)
    at_once = layers_at_once(config.max_concurrent_downloads)
    downloads = trio.CapacityLimiter(at_once)
    threads = trio.CapacityLimiter(at_once + 1)
    token = trio.lowlevel.current_trio_token()

    async def download(layer: _Layer, pipe: _BlobPipe, *,
                       task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        failed = True
        try:
            async with downloads:
                task_status.started()
                await _fetch_blob(res.client, res.repository, layer, pipe, progress)
            failed = False
        finally:
            pipe.finish(failed=failed)

    def open_blob(pipe: _BlobPipe, layer: _Layer) -> BinaryIO:
        # Reported without waiting for the event loop: the layer's bytes are waiting.
        token.run_sync_soon(progress, ProgressEvent(
            layer.short, "Extracting", layer.desc.size, layer.desc.size))
        return cast(BinaryIO, pipe)  # _BlobPipe reads like a binary file

    async def fetch_and_unpack(area: LayerStaging, layer: _Layer, kept: set[str], *,
                               task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                               ) -> None:
        """Started once the layer's download holds a slot (so slots go in manifest order)."""
        if layer.diff_id in kept and await trio.to_thread.run_sync(
                area.adopt, layer.diff_id, _kept_path(work_dir, layer.diff_id)):
            layer.unpacked = True  # kept by an earlier pull that failed
            progress(ProgressEvent(layer.short, "Download complete"))
            task_status.started()
            await check(layer)
            return
        pipe = _BlobPipe(layer.desc.digest)
        unpack = functools.partial(area.unpack_blob, f"{ref.familiar} layer {layer.desc.digest}",
                                   functools.partial(open_blob, pipe, layer),
                                   digest=layer.desc.digest, size=layer.desc.size)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(download, layer, pipe)
                task_status.started()
                try:
                    layer.diff_id = await trio.to_thread.run_sync(unpack, limiter=threads)
                except ImageDigestError as exc:
                    raise _blob_error(res, layer, exc) from None
        finally:
            # The thread cannot be cancelled: a pull torn down makes its reads fail.
            pipe.finish(failed=True)
            pipe.close()
        layer.unpacked = True
        await check(layer)

    keys = {f"{ref.repository}@{res.digest}"}
    if ref.digest is not None:
        keys.add(f"{ref.repository}@{ref.digest}")

    def commit(area: LayerStaging) -> Image:
        committed = area.commit(config_bytes, names)
        record_digests(work_dir, keys, committed.id)
        return committed

    pending: list[_Layer] = []
    existed = 0
    keep = False
    image: Image | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(get_config)  # alongside the inventory and the downloads
            previous, known, present, kept, staging = await trio.to_thread.run_sync(inventory)
            seen: set[str] = set()
            for desc, diff_id, have in zip(descs, known, present, strict=True):
                if desc.digest in seen:  # a blob listed twice is counted and fetched once
                    continue
                seen.add(desc.digest)
                if have:
                    layer = _Layer(desc, diff_id, unpacked=True)
                    progress(ProgressEvent(layer.short, "Already exists"))
                    existed += 1
                    nursery.start_soon(check, layer)
                else:
                    pending.append(_Layer(desc, diff_id))
                    progress(ProgressEvent(pending[-1].short, "Waiting", 0, desc.size))
            # One after another, each once the previous holds its download slot: layers
            # start in the manifest's order (base first, as Docker), not in the order the
            # scheduler happens to run their tasks, so the same pull takes the same path.
            for layer in pending:
                await nursery.start(fetch_and_unpack, staging, layer, kept)
        assert staging is not None
        image = await trio.to_thread.run_sync(commit, staging)
    except BaseException as exc:
        keep = any(isinstance(e, RegistryUnavailableError) for e in leaves(exc))
        cause = root_cause(exc, knock_on=("could not be downloaded",))
        if cause is not None and cause is not exc:
            raise cause from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_finish_staging, staging_cm, staging, work_dir,
                                          pending, keep and image is None)
    assert image is not None
    for layer in pending:
        progress(ProgressEvent(layer.short, "Pull complete"))
    progress(ProgressEvent("", f"Digest: {res.digest}"))
    updated = previous is None or previous.id != image_id
    status = (f"Downloaded newer image for {ref.familiar}" if updated
              else f"Image is up to date for {ref.familiar}")
    progress(ProgressEvent("", f"Status: {status}"))
    return PullResult(image, ref.familiar, res.digest, len(pending), existed, updated)


def _blob_error(res: ResolvedImage, layer: _Layer, exc: ImageDigestError) -> RegistryError:
    """The store found a layer's blob wrong: say so in the registry's terms."""
    where = f"registry {res.client.name}: blob {res.repository}@{layer.desc.digest}"
    return BlobVerificationError(
        f"{where} does not match its digest ({exc}): corrupt content, rejected")


def _diff_id_error(res: ResolvedImage, layer: _Layer, expected: str) -> RegistryError:
    where = f"registry {res.client.name}: blob {res.repository}@{layer.desc.digest}"
    return BlobVerificationError(
        f"{where}: its uncompressed content does not match the image config's diff_id "
        f"{expected} (it is {layer.diff_id}): rejected")


def _finish_staging(cm: contextlib.ExitStack, staging: LayerStaging | None, work_dir: Path,
                    layers: list[_Layer], keep: bool) -> None:
    """Keep the complete layers of a pull the registry broke off, drop the rest, and remove
    what an earlier pull kept of layers this one unpacked anew (a thread)."""
    try:
        for layer in layers:
            if layer.diff_id is None:
                continue
            kept = _kept_path(work_dir, layer.diff_id)
            _discard_kept(kept)  # if not adopted: unusable, or found only once unpacked
            if keep and layer.unpacked and staging is not None:
                with contextlib.suppress(ImageError):
                    staging.keep(layer.diff_id, kept)
    finally:
        cm.close()


def _discard_kept(path: Path) -> bool:
    """Remove a kept layer another pull may be adopting at this moment: renamed away first
    (one of the two renames wins, the loser sees it gone), then deleted. False when it
    was gone already."""
    doomed = path.with_name(f"{path.name}.{os.urandom(4).hex()}.dead")
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def prune_kept_layers(work_dir: Path) -> int:
    """Remove what failed pulls left in ``work_dir`` for a retry: the layers they had
    verified (``<diff-id>.layer``) and the leftovers of pulls that died. Returns the
    bytes of layer content removed. A pull about to take one of those layers over
    downloads it instead."""
    _sweep_partials(work_dir)
    reclaimed = 0
    try:
        entries = os.listdir(work_dir)
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.endswith(".layer"):
            continue
        path = work_dir / entry
        try:
            size = json.loads((path / "layer.json").read_bytes()).get("size", 0)
        except (OSError, ValueError, AttributeError):
            size = 0
        if _discard_kept(path) and isinstance(size, int):
            reclaimed += size
    return reclaimed


def _kept_path(work_dir: Path, diff_id: str) -> Path:
    """Where a failed pull keeps the unpacked layer ``diff_id`` for the next one."""
    return work_dir / f"{hex_of(diff_id)}.layer"


_DIGESTS = "digests.json"


def record_digests(work_dir: Path, keys: set[str], image_id: str) -> None:
    """Remember which image ``repo@sha256:…`` references pulled (the store names only tags)."""
    lock_fd = os.open(work_dir / f"{_DIGESTS}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                      0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        known = _read_digests(work_dir)
        known.update({k: image_id for k in keys})
        tmp = work_dir / f"{_DIGESTS}.{os.urandom(4).hex()}.tmp"
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
