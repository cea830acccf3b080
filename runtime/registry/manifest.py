"""Manifests and indexes: parse, validate, pick the host's platform.

Docker schema 2 and OCI manifests have the same shape (``config`` and
``layers`` descriptors); Docker manifest lists and OCI indexes too
(``manifests`` with ``platform``). Schema 1 manifests are refused (Docker
dropped them as well).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import uname
from typing import Any

from pycompose.runtime.images.config import host_architecture
from pycompose.runtime.images.digest import is_digest
from pycompose.runtime.registry.client import INDEX_TYPES, MANIFEST_TYPES
from pycompose.runtime.registry.errors import RegistryError

FOREIGN_LAYER_TYPES = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, doc: object, where: str) -> Descriptor:
        if not isinstance(doc, dict):
            raise RegistryError(f"{where}: expected a descriptor object")
        digest, size = doc.get("digest"), doc.get("size")
        if not is_digest(digest):
            raise RegistryError(f"{where}: invalid or unsupported digest {digest!r}")
        if not isinstance(size, int) or size < 0:
            raise RegistryError(f"{where}: invalid size {size!r}")
        plat = doc.get("platform")
        urls = doc.get("urls") or []
        return cls(str(doc.get("mediaType", "")), str(digest), size,
                   plat if isinstance(plat, dict) else None,
                   tuple(u for u in urls if isinstance(u, str)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError(f"{where}: manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{where}: manifest must be a JSON object")
    return doc


def parse_manifest(media_type: str, data: bytes, where: str) -> Manifest:
    if media_type not in MANIFEST_TYPES:
        if "v1+json" in media_type or media_type.endswith("+prettyjws"):
            raise RegistryError(f"{where}: Docker schema 1 manifests are not supported "
                                "(push the image again with a current tool)")
        raise RegistryError(f"{where}: unsupported manifest media type {media_type!r}")
    doc = _load(data, where)
    config = Descriptor.parse(doc.get("config"), f"{where}: config")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise RegistryError(f"{where}: layers: expected a list")
    layers = tuple(Descriptor.parse(d, f"{where}: layers[{i}]") for i, d in enumerate(raw_layers))
    for i, layer in enumerate(layers):
        if layer.media_type in FOREIGN_LAYER_TYPES and layer.urls:
            raise RegistryError(f"{where}: layers[{i}] is a foreign layer served from "
                                f"{layer.urls[0]}; not supported")
    return Manifest(media_type, config, layers)


def host_platform() -> dict[str, str]:
    """``{"os": "linux", "architecture": "amd64"}`` plus the ARM variant where it matters."""
    arch = host_architecture()
    out = {"os": "linux", "architecture": arch}
    if arch == "arm64":
        out["variant"] = "v8"
    elif arch == "arm":
        machine = uname().machine.lower()
        out["variant"] = "v6" if machine.startswith("armv6") else "v7"
    return out


def choose_platform(media_type: str, data: bytes, where: str,
                    want: dict[str, str] | None = None) -> Descriptor:
    """The index entry for ``want`` (the host's platform by default)."""
    if media_type not in INDEX_TYPES:
        raise RegistryError(f"{where}: not an index: {media_type!r}")
    want = want or host_platform()
    doc = _load(data, where)
    raw = doc.get("manifests")
    if not isinstance(raw, list):
        raise RegistryError(f"{where}: manifests: expected a list")
    entries = [Descriptor.parse(d, f"{where}: manifests[{i}]") for i, d in enumerate(raw)]
    candidates = []
    for entry in entries:
        plat = entry.platform or {}
        if plat.get("os") != want["os"] or plat.get("architecture") != want["architecture"]:
            continue
        variant = str(plat.get("variant", ""))
        wanted_variant = want.get("variant", "")
        if variant and wanted_variant and variant != wanted_variant:
            continue
        candidates.append((0 if variant == wanted_variant else 1, entry))
    if not candidates:
        found = sorted({_format_platform(e.platform) for e in entries if e.platform
                        and e.platform.get("os") != "unknown"})
        raise RegistryError(
            f"{where}: no image for {_format_platform(want)} "
            f"(available: {', '.join(found) or 'none'})")
    candidates.sort(key=lambda c: c[0])
    return candidates[0][1]


def _format_platform(plat: dict[str, Any] | None) -> str:
    if not plat:
        return "?"
    text = f"{plat.get('os', '?')}/{plat.get('architecture', '?')}"
    return text + (f"/{plat['variant']}" if plat.get("variant") else "")
