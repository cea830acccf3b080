"""Builders for image archives made at test time: layer tars, configs, ``docker save``
archives, OCI image layouts and OCI archives (nothing binary is committed).

Layers are built from entry lists (``file``, ``directory``, ``symlink``,
``hardlink``, ``whiteout``, ``opaque``, ``device``, ``fifo``) or from a
directory (``tar_of_dir``), optionally compressed with gzip or zstd. The
busybox images come from the ``busybox_rootfs`` fixture.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from pycompose.runtime.images.config import host_architecture

MEDIA_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- tar entries ---------------------------------------------------------------------------


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
    info.mtime = 1_700_000_000
    return info


def file(name: str, data: bytes = b"", *, mode: int = 0o644, uid: int = 0, gid: int = 0,
         xattrs: dict[str, bytes] | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    info = _info(name, tarfile.REGTYPE, mode, uid, gid)
    info.size = len(data)
    if xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
        }
    return info, data


def directory(name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0
              ) -> tuple[tarfile.TarInfo, bytes | None]:
    return _info(name, tarfile.DIRTYPE, mode, uid, gid), None


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes | None]:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info, None


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes | None]:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info, None


def whiteout(path: str) -> tuple[tarfile.TarInfo, bytes | None]:
    """The OCI whiteout entry that deletes ``path`` from the layers below."""
    parent, _, base = path.rpartition("/")
    return file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", mode=0o600)


def opaque(dir_path: str) -> tuple[tarfile.TarInfo, bytes | None]:
    """The OCI marker that hides everything below ``dir_path`` in lower layers."""
    return file(f"{dir_path.rstrip('/')}/.wh..wh..opq", mode=0o600)


def device(name: str, kind: str = "c", major: int = 1, minor: int = 3
           ) -> tuple[tarfile.TarInfo, bytes | None]:
    info = _info(name, tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE, 0o666)
    info.devmajor, info.devminor = major, minor
    return info, None


def fifo(name: str) -> tuple[tarfile.TarInfo, bytes | None]:
    return _info(name, tarfile.FIFOTYPE, 0o644), None


def tar_bytes(entries: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """An uncompressed PAX tar of ``entries`` in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_of_dir(root: Path, *, extra: Iterable[tuple[tarfile.TarInfo, bytes | None]] = ()) -> bytes:
    """An uncompressed tar of the tree at ``root`` (numeric owners), then ``extra`` entries."""
    buf = io.BytesIO()

    def numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name, filter=numeric)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(data)
    assert compression == "none", compression
    return data


# --- images --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerBlob:
    data: bytes  # as stored in the archive (maybe compressed)
    diff_id: str  # sha256 of the uncompressed tar
    compression: str = "none"

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def media_type(self) -> str:
        return MEDIA_LAYER[self.compression]


def make_layer(tar: bytes, compression: str = "none") -> LayerBlob:
    return LayerBlob(data=compress(tar, compression), diff_id=sha256(tar), compression=compression)


def make_config(layers: Sequence[LayerBlob], *, cmd: Sequence[str] | None = ("sh",),
                env: Sequence[str] = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin",),
                architecture: str | None = None, **config: object) -> bytes:
    doc = {
        "architecture": architecture or host_architecture(),
        "os": "linux",
        "created": "2024-05-01T10:00:00.123456789Z",
        "config": {"Env": list(env), **({"Cmd": list(cmd)} if cmd is not None else {}), **config},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": "2024-05-01T10:00:00Z", "created_by": f"layer {i}"}
                    for i in range(len(layers))],
    }
    return json.dumps(doc, indent=2).encode()


@dataclass(frozen=True)
class ArchiveImage:
    config: bytes
    layers: tuple[LayerBlob, ...]
    tags: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return sha256(self.config)


def image(layers: Sequence[LayerBlob], tags: Sequence[str] = (), **config: object
          ) -> ArchiveImage:
    return ArchiveImage(
        config=make_config(layers, **config), layers=tuple(layers), tags=tuple(tags)
    )


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def write_docker_save(path: Path, images: Sequence[ArchiveImage]) -> Path:
    """The classic ``docker save`` format: ``<id>/layer.tar``, ``<hex>.json``, ``manifest.json``.

    A layer used twice is stored once and linked, as Docker does.
    """
    manifest = []
    with tarfile.open(path, "w") as tar:
        written: dict[str, str] = {}
        for img in images:
            layer_paths = []
            for layer in img.layers:
                layer_id = layer.digest.split(":")[1]
                name = f"{layer_id}/layer.tar"
                if layer.digest in written:
                    if written[layer.digest] != name:
                        link = tarfile.TarInfo(name)
                        link.type, link.linkname = tarfile.SYMTYPE, f"../{written[layer.digest]}"
                        tar.addfile(link)
                else:
                    _add(tar, name, layer.data)
                    written[layer.digest] = name
                layer_paths.append(name)
            config_name = f"{img.id.split(':')[1]}.json"
            if config_name not in written:
                _add(tar, config_name, img.config)
                written[config_name] = config_name
            manifest.append({"Config": config_name, "RepoTags": list(img.tags) or None,
                             "Layers": layer_paths})
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return path


def _blob_files(images: Sequence[ArchiveImage], *, platform: bool
                ) -> tuple[dict[str, bytes], bytes]:
    """The blobs of an OCI layout and its index.json."""
    blobs: dict[str, bytes] = {}
    descriptors = []
    for img in images:
        for layer in img.layers:
            blobs[layer.digest] = layer.data
        blobs[img.id] = img.config
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": img.id, "size": len(img.config)},
            "layers": [{"mediaType": layer.media_type, "digest": layer.digest,
                        "size": len(layer.data)} for layer in img.layers],
        }).encode()
        blobs[sha256(manifest)] = manifest
        desc: dict[str, object] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest), "size": len(manifest),
        }
        if platform:
            desc["platform"] = {"os": "linux", "architecture": host_architecture()}
        if img.tags:
            desc["annotations"] = {"io.containerd.image.name": img.tags[0],
                                   "org.opencontainers.image.ref.name": img.tags[0]}
        descriptors.append(desc)
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": descriptors}).encode()
    return blobs, index


def write_oci_layout(directory_path: Path, images: Sequence[ArchiveImage], *,
                     platform: bool = False) -> Path:
    directory_path.mkdir(parents=True, exist_ok=True)
    blobs, index = _blob_files(images, platform=platform)
    (directory_path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    for digest, data in blobs.items():
        (directory_path / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    (directory_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory_path / "index.json").write_bytes(index)
    return directory_path


def write_oci_archive(path: Path, images: Sequence[ArchiveImage], *, platform: bool = False
                      ) -> Path:
    blobs, index = _blob_files(images, platform=platform)
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(tar, "index.json", index)
        for digest, data in blobs.items():
            _add(tar, f"blobs/sha256/{digest.split(':')[1]}", data)
    return path


# --- busybox images ----------------------------------------------------------------------


def busybox_layer(rootfs: Path, compression: str = "none") -> LayerBlob:
    """The busybox root filesystem plus ``/etc/motd`` and a ``/data`` directory."""
    extra = [
        file("etc/motd", b"welcome\n"),
        directory("data"),
        file("data/old.txt", b"old\n"),
        directory("data/sub"),
        file("data/sub/deep.txt", b"deep\n"),
    ]
    return make_layer(tar_of_dir(rootfs, extra=extra), compression)


def delete_layer(compression: str = "none") -> LayerBlob:
    """An upper layer: deletes ``/etc/motd``, makes ``/data`` opaque, adds files."""
    return make_layer(tar_bytes([
        directory("etc"),
        whiteout("etc/motd"),
        directory("data"),
        opaque("data"),
        file("data/new.txt", b"new\n"),
        file("hello.txt", b"hello from the top layer\n"),
    ]), compression)


def busybox_two_layers(rootfs: Path, tags: Sequence[str] = ("bb2:latest",),
                       compression: str = "none") -> ArchiveImage:
    return image([busybox_layer(rootfs, compression), delete_layer(compression)], tags=tags)
