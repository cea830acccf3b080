"""Push an image of the store to a registry.

::

    result = await push_image(store, "localhost:5000/app:1", source="app:1",
                              config=cfg, work_dir=root / "downloads", progress=on_event)

The store keeps layers unpacked, not their blobs, so each layer's tar is
produced again: byte for byte by ``ImageStore.export_layer`` (from the tar
record kept when the layer was unpacked), or, for a layer the store cannot
reproduce, as a tar of its directory (sorted, numeric owners). It is
gzip-compressed with a zero timestamp, hashed, and uploaded when the registry
does not have it (``HEAD``; a cross-repository mount from ``mount_from``). The
diff-id and blob digest of each layer are cached in ``work_dir/push-cache.json``
so a second push of the same layer costs one ``HEAD``. When a re-made tar
differs from the original, the pushed config lists the new diff-ids (a new
image id, the same content).
Uploads run in parallel (``config.max_concurrent_uploads``), monolithic by
default or in PATCH chunks of ``chunk_size`` bytes.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import trio

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.digest import hex_of, sha256_digest
from pycompose.runtime.images.layers import write_layer_tar
from pycompose.runtime.images.reference import parse_reference
from pycompose.runtime.images.store import Image, ImageStore, Layer
from pycompose.runtime.registry._groups import single_error
from pycompose.runtime.registry.client import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    RegistryClient,
)
from pycompose.runtime.registry.config import RegistryConfig
from pycompose.runtime.registry.errors import RegistryError
from pycompose.runtime.registry.events import Progress, ProgressEvent, ignore
from pycompose.runtime.registry.http import HttpClient

__all__ = ["PushResult", "push_image", "push_index", "PushedManifest"]

MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
_CACHE = "push-cache.json"


@dataclass(frozen=True)
class PushedManifest:
    digest: str
    size: int
    media_type: str
    config_digest: str
    architecture: str
    os: str


@dataclass(frozen=True)
class PushResult:
    reference: str
    manifest: PushedManifest
    uploaded: int
    skipped: int


@dataclass
class _Blob:
    diff_id: str     # of the regenerated tar
    digest: str      # of the gzip blob
    size: int
    path: Path | None = None  # the gzip blob on disk while pushing




def _load_cache(work_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads((work_dir / _CACHE).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _save_cache(work_dir: Path, entries: dict[str, dict[str, Any]]) -> None:
    lock_fd = os.open(work_dir / f"{_CACHE}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        merged = _load_cache(work_dir)
        merged.update(entries)
        tmp = work_dir / f"{_CACHE}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(json.dumps(merged, indent=1, sort_keys=True))
        os.rename(tmp, work_dir / _CACHE)
    finally:
        os.close(lock_fd)


def _make_blob(store: ImageStore, layer: Layer, work_dir: Path) -> _Blob:
    """The gzip blob of ``layer`` in ``work_dir``: its exact tar from the store when the store
    can reproduce it (so diff-ids, and the image id, stay the same), else a tar of its
    directory. Both forms are hashed on the way."""
    try:
        return _write_blob(layer, work_dir, lambda out: store.export_layer(layer.diff_id, out))
    except ImageError:
        return _write_blob(layer, work_dir, lambda out: write_layer_tar(layer.path, out))


def _write_blob(layer: Layer, work_dir: Path, produce: Callable[[Any], object]) -> _Blob:
    path = work_dir / f"push-{hex_of(layer.diff_id)[:16]}-{secrets.token_hex(4)}.tar.gz"
    tar_hash = hashlib.sha256()
    blob_hash = hashlib.sha256()
    size = 0

    class _HashOut:
        def __init__(self, raw: BinaryIO) -> None:
            self.raw = raw

        def write(self, data: bytes) -> int:
            nonlocal size
            blob_hash.update(data)
            size += len(data)
            return self.raw.write(data)

        def flush(self) -> None:
            self.raw.flush()

    class _TarOut:
        def __init__(self, gz: gzip.GzipFile) -> None:
            self.gz = gz

        def write(self, data: bytes) -> int:
            tar_hash.update(data)
            return self.gz.write(data)

    try:
        with path.open("wb") as raw:
            out = _HashOut(raw)
            with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0,
                               filename="") as gz:
                produce(_TarOut(gz))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return _Blob("sha256:" + tar_hash.hexdigest(), "sha256:" + blob_hash.hexdigest(), size, path)


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    f = await trio.open_file(path, "rb")
    async with f:
        while chunk := await f.read(1 << 20):
            yield chunk


def _config_bytes(store: ImageStore, image: Image) -> bytes:
    """The image config exactly as stored (``blobs/sha256/<id>``, see the store's layout)."""
    return (store.root / "blobs" / "sha256" / hex_of(image.id)).read_bytes()


async def push_image(store: ImageStore, reference: str, *, source: str | None = None,
                     config: RegistryConfig | None = None, work_dir: Path | None = None,
                     progress: Progress = ignore, http: HttpClient | None = None,
                     chunk_size: int | None = None, oci: bool = False,
                     mount_from: tuple[str, ...] = ()) -> PushResult:
    """Push the store's image ``source`` (default: ``reference``) as ``reference``."""
    ref = parse_reference(reference)
    if ref.tag is None:
        raise RegistryError(f"{reference!r}: push needs a tag, not only a digest")
    config = config or RegistryConfig()
    work_dir = Path(work_dir) if work_dir is not None else store.root.parent / "downloads"
    await trio.to_thread.run_sync(lambda: work_dir.mkdir(parents=True, exist_ok=True))
    image = await trio.to_thread.run_sync(store.get, source or reference)
    own_http = http is None
    client_http = http or HttpClient()
    try:
        client = RegistryClient(client_http, ref.domain, config)
        return await _push(store, client, ref.path, ref.tag, image, work_dir, progress,
                           config, chunk_size, oci, mount_from)
    finally:
        if own_http:
            await client_http.aclose()


async def _push(store: ImageStore, client: RegistryClient, repo: str, tag: str, image: Image,
                work_dir: Path, progress: Progress, config: RegistryConfig,
                chunk_size: int | None, oci: bool, mount_from: tuple[str, ...]) -> PushResult:
    cache = await trio.to_thread.run_sync(_load_cache, work_dir)
    blobs: list[_Blob | None] = [None] * len(image.layers)
    new_cache: dict[str, dict[str, Any]] = {}
    counts = {"uploaded": 0, "skipped": 0}
    limiter = trio.CapacityLimiter(config.max_concurrent_uploads)
    layer_type = MEDIA_OCI_LAYER_GZIP if oci else MEDIA_DOCKER_LAYER_GZIP

    async def one(index: int, layer: Layer) -> None:
        short = hex_of(layer.diff_id)[:12]
        progress(ProgressEvent(short, "Preparing"))
        async with limiter:
            hit = cache.get(layer.diff_id)
            if hit and await client.blob_exists(repo, hit["digest"], push=True):
                blobs[index] = _Blob(hit["diff_id"], hit["digest"], int(hit["size"]))
                counts["skipped"] += 1
                progress(ProgressEvent(short, "Layer already exists"))
                return
            blob = await trio.to_thread.run_sync(_make_blob, store, layer, work_dir)
            assert blob.path is not None
            path = blob.path
            try:
                progress(ProgressEvent(short, "Pushing", 0, blob.size))
                outcome = await client.upload_blob(
                    repo, blob.digest, blob.size, lambda: _file_chunks(path),
                    mount_from=mount_from, chunk_size=chunk_size)
            finally:
                await trio.to_thread.run_sync(path.unlink, True)
            blob.path = None
            blobs[index] = blob
            new_cache[layer.diff_id] = {"diff_id": blob.diff_id, "digest": blob.digest,
                                        "size": blob.size}
            if outcome == "exists":
                counts["skipped"] += 1
                progress(ProgressEvent(short, "Layer already exists"))
            else:
                counts["uploaded"] += 1
                progress(ProgressEvent(short, "Pushed" if outcome == "uploaded"
                                       else "Mounted", blob.size, blob.size))

    with single_error():
        async with trio.open_nursery() as nursery:
            for index, layer in enumerate(image.layers):
                nursery.start_soon(one, index, layer)
    if new_cache:
        await trio.to_thread.run_sync(_save_cache, work_dir, new_cache)
    done = [b for b in blobs if b is not None]
    assert len(done) == len(image.layers)
    new_ids = tuple(b.diff_id for b in done)
    if new_ids == image.config.diff_ids:
        config_bytes = await trio.to_thread.run_sync(_config_bytes, store, image)
    else:
        config_bytes = replace(image.config, diff_ids=new_ids).to_json()
    config_digest = sha256_digest(config_bytes)

    async def config_chunks() -> AsyncIterator[bytes]:
        yield config_bytes

    await client.upload_blob(repo, config_digest, len(config_bytes), config_chunks)
    manifest_type = MEDIA_OCI_MANIFEST if oci else MEDIA_DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": MEDIA_OCI_CONFIG if oci else MEDIA_DOCKER_CONFIG,
                   "size": len(config_bytes), "digest": config_digest},
        "layers": [{"mediaType": layer_type, "size": b.size, "digest": b.digest} for b in done],
    }
    body = json.dumps(manifest, indent=3).encode()
    digest = await client.put_manifest(repo, tag, manifest_type, body)
    progress(ProgressEvent("", f"{tag}: digest: {digest} size: {len(body)}"))
    pushed = PushedManifest(digest, len(body), manifest_type, config_digest,
                            image.config.architecture, image.config.os)
    return PushResult(f"{client.domain}/{repo}:{tag}", pushed, counts["uploaded"],
                      counts["skipped"])


async def push_index(http: HttpClient, reference: str, manifests: list[PushedManifest], *,
                     config: RegistryConfig | None = None, oci: bool = True,
                     variants: dict[str, str] | None = None) -> str:
    """Push an index (manifest list) naming ``manifests`` (already in the repository) under
    ``reference``'s tag; each entry's platform comes from its image's os/architecture
    (``variants`` adds a variant per architecture). Returns the index digest."""
    ref = parse_reference(reference)
    if ref.tag is None:
        raise RegistryError(f"{reference!r}: an index needs a tag")
    client = RegistryClient(http, ref.domain, config or RegistryConfig())
    entries = []
    for m in manifests:
        plat = {"architecture": m.architecture, "os": m.os}
        if variants and m.architecture in variants:
            plat["variant"] = variants[m.architecture]
        entries.append({"mediaType": m.media_type, "digest": m.digest, "size": m.size,
                        "platform": plat})
    media_type = MEDIA_OCI_INDEX if oci else MEDIA_DOCKER_LIST
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries},
                      indent=3).encode()
    return await client.put_manifest(ref.path, ref.tag, media_type, body)


