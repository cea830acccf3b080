"""Volumes: directories under ``<root>/volumes/<name>/`` (data in ``_data``).

Named volumes are created on first use (or explicitly), anonymous ones get a
random 64-hex name. A volume's content comes from the image at the mount
target the first time it is mounted while empty (unless ``nocopy``); that
copy happens in the spawn child, which sees the image (``mounts.populate_volume``).
``meta.json`` keeps the creation time, labels and whether it is anonymous.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil

from pycompose.runtime.errors import ContainerError
from pycompose.runtime.logs import rfc3339_nano
from pycompose.runtime.spec import VolumeInfo

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _vdir(root: str | os.PathLike[str], name: str) -> str:
    if not _NAME_RE.match(name):
        raise ContainerError(f"invalid volume name {name!r}: use letters, digits, '_', '.', '-'")
    return os.path.join(os.fspath(root), "volumes", name)


def ensure_volume(root: str | os.PathLike[str], name: str, labels: dict[str, str] | None = None,
                  *, anonymous: bool = False) -> VolumeInfo:
    """Create the volume when missing; return it either way."""
    vdir = _vdir(root, name)
    data = os.path.join(vdir, "_data")
    if not os.path.isdir(data):
        os.makedirs(vdir, mode=0o700, exist_ok=True)
        os.makedirs(data, mode=0o755, exist_ok=True)
        meta = {"created_at": rfc3339_nano(), "labels": labels or {}, "anonymous": anonymous}
        tmp = os.path.join(vdir, "meta.json.tmp")
        with open(tmp, "w") as fh:
            json.dump(meta, fh)
        os.replace(tmp, os.path.join(vdir, "meta.json"))
    return inspect_volume(root, name)


def anonymous_volume(root: str | os.PathLike[str]) -> str:
    name = secrets.token_hex(32)
    ensure_volume(root, name, anonymous=True)
    return name


def inspect_volume(root: str | os.PathLike[str], name: str) -> VolumeInfo:
    vdir = _vdir(root, name)
    try:
        with open(os.path.join(vdir, "meta.json")) as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise ContainerError(f"no such volume: {name}") from None
    except (OSError, ValueError):
        meta = {}
    return VolumeInfo(name=name, path=os.path.join(vdir, "_data"),
                      anonymous=bool(meta.get("anonymous")),
                      created_at=str(meta.get("created_at", "")),
                      labels=dict(meta.get("labels") or {}))


def list_volumes(root: str | os.PathLike[str]) -> list[VolumeInfo]:
    base = os.path.join(os.fspath(root), "volumes")
    out = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if os.path.exists(os.path.join(base, name, "meta.json")):
            out.append(inspect_volume(root, name))
    return out


def remove_volume(root: str | os.PathLike[str], name: str, *, defer: bool = False) -> None:
    """Delete the volume and its data (already gone is fine). The caller checks use.

    The directory is first renamed into ``<root>/trash`` (atomic: the name is
    free at once); ``defer`` leaves the deletion to the supervisor's idle time
    (or ``gc``) instead of doing it now.
    """
    vdir = _vdir(root, name)
    if os.path.isdir(vdir):
        trash = os.path.join(os.fspath(root), "trash")
        os.makedirs(trash, exist_ok=True)
        dest = os.path.join(trash, f"vol-{name}-{secrets.token_hex(4)}")
        try:
            os.rename(vdir, dest)
        except OSError:
            dest = vdir
            defer = False
        if not defer:
            shutil.rmtree(dest, ignore_errors=True)
