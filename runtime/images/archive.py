"""Reading image archives: ``docker save`` tars, OCI image layouts and OCI archives.

``open_archive(path)`` detects the format and yields ``ImageSource``s: the
config bytes (already checked against their digest), and one ``LayerSource``
per layer with the digest and size the archive promises, so the store can
verify each layer while it streams it into place.

* ``docker save`` (a tar, or the directory it unpacks to): ``manifest.json``
  lists ``Config``, ``RepoTags`` and ``Layers``. Old archives name the config
  ``<sha256>.json`` and layers ``<id>/layer.tar`` (often symlinks to one
  another); Docker 25+ writes an OCI layout inside and points there.
* OCI image layout (a directory with ``oci-layout`` and ``index.json``) or an
  OCI archive (the same in a tar). Every blob reached from ``index.json`` is
  checked against its descriptor's digest and size. Nested indexes are
  followed; the manifest for this host's platform is taken, attestation
  manifests are skipped. Names come from ``io.containerd.image.name`` or from
  an ``org.opencontainers.image.ref.name`` that is a full reference (a bare
  tag such as ``latest`` names nothing: the image loads untagged).

A ``docker save`` archive is read through ``manifest.json`` even when it also
carries an ``index.json`` (Docker 25+), because that is where ``RepoTags`` are.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.config import MAX_CONFIG_BYTES, ImageConfig, host_architecture
from pycompose.runtime.images.digest import check_digest, hex_of, is_hex_id, sha256_digest
from pycompose.runtime.images.reference import normalize_name

MAX_JSON_BYTES = MAX_CONFIG_BYTES

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
})
LAYER_MEDIA_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True)
class LayerSource:
    """One layer blob in an archive. ``digest``/``size`` are None when the archive gives none
    (old ``docker save``: the uncompressed tar is then checked against ``diff_id``)."""

    diff_id: str
    digest: str | None
    size: int | None
    name: str
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class ImageSource:
    """One image of an archive: verified config bytes, its layers, its names (stored form)."""

    config_bytes: bytes
    config: ImageConfig
    layers: tuple[LayerSource, ...]
    names: tuple[str, ...]

    @property
    def id(self) -> str:
        return sha256_digest(self.config_bytes)


class _Files(Protocol):
    label: str

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> BinaryIO: ...


def _clean(name: str, label: str) -> str:
    norm = posixpath.normpath("/" + name).lstrip("/")
    if not norm or norm == "." or name.startswith("/") or ".." in name.split("/"):
        raise ImageError(f"{label}: invalid path {name!r} in the archive")
    return norm


class _DirFiles:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.label = str(root)

    def _path(self, name: str) -> Path:
        path = (self.root / _clean(name, self.label)).resolve()
        if not path.is_relative_to(self.root):
            raise ImageError(f"{self.label}: {name!r} points outside the directory")
        return path

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def open(self, name: str) -> BinaryIO:
        try:
            return self._path(name).open("rb")
        except OSError as exc:
            raise ImageError(f"{self.label}: cannot read {name}: {exc.strerror}") from None


class _TarFiles:
    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.tar = tar
        self.label = label
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in tar.getmembers():
            with contextlib.suppress(ImageError):
                self.members[_clean(member.name, label)] = member

    def exists(self, name: str) -> bool:
        member = self.members.get(_clean(name, self.label))
        return member is not None and (member.isreg() or member.issym() or member.islnk())

    def open(self, name: str) -> BinaryIO:
        member = self.members.get(_clean(name, self.label))
        if member is None:
            raise ImageError(f"{self.label}: {name} is missing from the archive")
        try:
            f = self.tar.extractfile(member)
        except (KeyError, RecursionError, tarfile.TarError) as exc:
            raise ImageError(f"{self.label}: cannot read {name}: {exc}") from None
        if f is None:
            raise ImageError(f"{self.label}: {name} is not a file")
        return cast(BinaryIO, f)


@contextlib.contextmanager
def open_archive(path: Path) -> Iterator[list[ImageSource]]:
    """Detect the format of ``path`` and yield its images (the archive stays open meanwhile)."""
    if path.is_dir():
        yield _read(_DirFiles(path))
        return
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by the `with` below
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageError(f"{path}: not a tar archive or OCI layout: {exc}") from None
    with tar:
        try:
            files = _TarFiles(tar, str(path))
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ImageError(f"{path}: corrupt or truncated archive: {exc}") from None
        yield _read(files)


def _read(files: _Files) -> list[ImageSource]:
    if files.exists("manifest.json"):
        images = _read_docker_save(files)
    elif files.exists("index.json"):
        images = _read_oci(files)
    else:
        raise ImageError(
            f"{files.label}: neither a docker save archive (no manifest.json) nor an OCI layout "
            "(no index.json); to import a root filesystem tarball use `image import`"
        )
    if not images:
        raise ImageError(
            f"{files.label}: the archive holds no image for linux/{host_architecture()}"
        )
    return images


def _read_bytes(files: _Files, name: str, limit: int = MAX_JSON_BYTES) -> bytes:
    try:
        with files.open(name) as f:
            data = f.read(limit + 1)
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise ImageError(f"{files.label}: cannot read {name}: {exc}") from None
    if len(data) > limit:
        raise ImageError(f"{files.label}: {name} is larger than {limit} bytes")
    return data


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageError(f"{where}: not valid JSON: {exc}") from None


# --- docker save -------------------------------------------------------------------------


def _digest_from_name(name: str) -> str | None:
    """The digest in an archive path: ``<hex>.json`` or ``blobs/sha256/<hex>``."""
    parts = name.split("/")
    if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] and is_hex_id(parts[2]):
        return "sha256:" + parts[2]
    if len(parts) == 1 and parts[0].endswith(".json") and is_hex_id(parts[0][:-5]):
        return "sha256:" + parts[0][:-5]
    return None


def _read_docker_save(files: _Files) -> list[ImageSource]:
    where = f"{files.label}: manifest.json"
    manifest = _json(_read_bytes(files, "manifest.json"), where)
    if not isinstance(manifest, list):
        raise ImageError(f"{where}: expected a list of images")
    images = []
    for i, entry in enumerate(manifest):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ImageError(f"{at}: expected an object with a Config path")
        config_name = entry["Config"]
        config_bytes = _read_bytes(files, config_name)
        expected = _digest_from_name(config_name)
        if expected is not None and sha256_digest(config_bytes) != expected:
            raise ImageError(
                f"{files.label}: {config_name}: digest mismatch (corrupt archive): "
                f"got {sha256_digest(config_bytes)}"
            )
        config = ImageConfig.from_json(config_bytes, source=f"{files.label}: {config_name}")
        layer_names = entry.get("Layers") or []
        if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
            raise ImageError(f"{at}.Layers: expected a list of paths")
        if len(layer_names) != len(config.diff_ids):
            raise ImageError(
                f"{at}: {len(layer_names)} layers listed but the config has "
                f"{len(config.diff_ids)} diff_ids"
            )
        layers = []
        for name, diff_id in zip(layer_names, config.diff_ids, strict=True):
            if not files.exists(name):
                raise ImageError(f"{files.label}: layer {name} is missing from the archive")
            layers.append(_layer(files, name, diff_id, _digest_from_name(name), None))
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ImageError(f"{at}.RepoTags: expected a list of names")
        images.append(ImageSource(
            config_bytes=config_bytes, config=config, layers=tuple(layers),
            names=tuple(normalize_name(t) for t in tags),
        ))
    return images


def _layer(
    files: _Files, name: str, diff_id: str, digest: str | None, size: int | None
) -> LayerSource:
    return LayerSource(
        diff_id=diff_id, digest=digest, size=size, name=f"{files.label}: {name}",
        open=lambda: files.open(name),
    )


# --- OCI layout --------------------------------------------------------------------------


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


def _descriptor(value: object, where: str) -> tuple[str, str, int, dict[str, Any]]:
    if not isinstance(value, dict):
        raise ImageError(f"{where}: expected a descriptor object")
    media_type = value.get("mediaType", "")
    digest = check_digest(value.get("digest"), f"{where}.digest")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"{where}.size: expected a non-negative integer, got {size!r}")
    if not isinstance(media_type, str):
        raise ImageError(f"{where}.mediaType: expected a string")
    return media_type, digest, size, value


def _read_blob(files: _Files, digest: str, size: int, where: str) -> bytes:
    name = _blob_name(digest)
    if size > MAX_JSON_BYTES:
        raise ImageError(f"{where}: {name} is larger than {MAX_JSON_BYTES} bytes")
    if not files.exists(name):
        raise ImageError(f"{files.label}: blob {digest} ({where}) is missing")
    data = _read_bytes(files, name)
    if len(data) != size or sha256_digest(data) != digest:
        raise ImageError(
            f"{files.label}: blob {digest} ({where}): digest or size mismatch (corrupt archive)"
        )
    return data


def _read_oci(files: _Files) -> list[ImageSource]:
    if files.exists("oci-layout"):
        layout = _json(_read_bytes(files, "oci-layout"), f"{files.label}: oci-layout")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != "1.0.0":
            raise ImageError(
                f"{files.label}: oci-layout: unsupported imageLayoutVersion {version!r}"
            )
    index = _json(_read_bytes(files, "index.json"), f"{files.label}: index.json")
    return _walk_index(files, index, f"{files.label}: index.json", (), depth=0)


def _names_of(annotations: object) -> tuple[str, ...]:
    if not isinstance(annotations, dict):
        return ()
    full = annotations.get(ANNOTATION_CONTAINERD_NAME)
    if isinstance(full, str) and full:
        return (normalize_name(full),)
    ref = annotations.get(ANNOTATION_REF_NAME)
    if isinstance(ref, str) and ("/" in ref or ":" in ref):
        with contextlib.suppress(ImageError):
            return (normalize_name(ref),)
    return ()


def _platform_ok(desc: dict[str, Any]) -> bool:
    annotations = desc.get("annotations")
    if isinstance(annotations, dict) and annotations.get(
        "vnd.docker.reference.type"
    ) == "attestation-manifest":
        return False
    platform = desc.get("platform")
    if not isinstance(platform, dict):
        return True
    return platform.get("os") == "linux" and platform.get("architecture") == host_architecture()


def _walk_index(
    files: _Files, index: object, where: str, names: tuple[str, ...], depth: int
) -> list[ImageSource]:
    """Images of an index: every entry of the top-level one; the first match of a nested one."""
    if depth > 4:
        raise ImageError(f"{where}: indexes nested too deep")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageError(f"{where}: expected an object with a manifests list")
    images: list[ImageSource] = []
    for i, raw in enumerate(index["manifests"]):
        at = f"{where}: manifests[{i}]"
        media_type, digest, size, desc = _descriptor(raw, at)
        if not _platform_ok(desc):
            continue
        own_names = _names_of(desc.get("annotations")) or names
        blob_where = f"{files.label}: {_blob_name(digest)}"
        doc = _json(_read_blob(files, digest, size, at), blob_where)
        if not media_type and isinstance(doc, dict):
            media_type = doc.get("mediaType", "")
        if media_type in (MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST):
            found = _walk_index(files, doc, blob_where, own_names, depth + 1)
        elif media_type in (MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST):
            image = _read_manifest(files, doc, blob_where, own_names)
            found = [image] if image is not None else []
        else:
            raise ImageError(f"{at}: unsupported media type {media_type!r}")
        images.extend(found)
        if depth > 0 and images:
            break
    return images


def _read_manifest(
    files: _Files, manifest: object, where: str, names: tuple[str, ...]
) -> ImageSource | None:
    if not isinstance(manifest, dict):
        raise ImageError(f"{where}: expected a manifest object")
    c_type, c_digest, c_size, _ = _descriptor(manifest.get("config"), f"{where}: config")
    if c_type and c_type not in CONFIG_MEDIA_TYPES:
        return None  # an artifact (signature, SBOM, chart), not a container image
    config_bytes = _read_blob(files, c_digest, c_size, f"{where}: config")
    config = ImageConfig.from_json(config_bytes, source=f"{files.label}: {_blob_name(c_digest)}")
    raw_layers = manifest.get("layers") or []
    if not isinstance(raw_layers, list):
        raise ImageError(f"{where}: layers: expected a list")
    if len(raw_layers) != len(config.diff_ids):
        raise ImageError(
            f"{where}: {len(raw_layers)} layers but the config has {len(config.diff_ids)} diff_ids"
        )
    layers = []
    for i, (raw, diff_id) in enumerate(zip(raw_layers, config.diff_ids, strict=True)):
        l_type, l_digest, l_size, _ = _descriptor(raw, f"{where}: layers[{i}]")
        if l_type and l_type not in LAYER_MEDIA_TYPES:
            raise ImageError(f"{where}: layers[{i}]: unsupported layer media type {l_type!r}")
        name = _blob_name(l_digest)
        if not files.exists(name):
            raise ImageError(f"{files.label}: layer blob {l_digest} is missing")
        layers.append(_layer(files, name, diff_id, l_digest, l_size))
    return ImageSource(config_bytes=config_bytes, config=config, layers=tuple(layers), names=names)
