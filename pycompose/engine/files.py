"""``secrets`` and ``configs``: their content written once per container, mounted read-only.

Docker's places: a secret at ``/run/secrets/<target or name>`` (a relative
``target`` is under ``/run/secrets``), a config at ``/<name>`` or its absolute
``target``. Content comes from a ``file`` (relative to the project directory),
an ``environment`` variable of the project, or inline ``content`` (configs).
The engine writes a private copy under ``<root>/engine-files/<container id>/``
with the asked ``uid``/``gid``/``mode`` (default root, 0444) — the user's file
is never chmod-ed — and bind-mounts it read-only; the copy goes with the
container.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from pathlib import Path

from pycompose.compose.model import FileObject, FileReference, Project, Service
from pycompose.errors import EngineError
from pycompose.runtime.spec import Mount, MountType


class FileObjectError(EngineError):
    """A secret or config that cannot be provided; the message names it and why."""


def files_dir(root: Path, cid: str) -> Path:
    return root / "engine-files" / cid


def file_content(project: Project, kind: str, ref: FileReference, obj: FileObject) -> bytes:
    """The bytes of the secret or config ``obj`` that ``ref`` names (``kind``: ``secrets`` or
    ``configs``); :class:`FileObjectError` says which one cannot be read and why."""
    where = f"{kind}.{ref.source}"
    if obj.external:
        raise FileObjectError(f"{where}: external {kind} are not supported (no swarm here)")
    if obj.file is not None:
        path = Path(obj.file)
        if not path.is_absolute():
            path = Path(project.working_dir) / path
        try:
            return path.read_bytes()
        except OSError as exc:
            raise FileObjectError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if obj.environment is not None:
        value = project.environment.get(obj.environment)
        if value is None:
            raise FileObjectError(f"{where}: environment variable {obj.environment} is not set")
        return str(value).encode()
    if obj.content is not None:
        return str(obj.content).encode()
    raise FileObjectError(f"{where}: needs file, environment or content")


def _target(kind: str, ref: FileReference) -> str:
    if kind == "secrets":
        target = ref.target or ref.source
        return target if target.startswith("/") else posixpath.join("/run/secrets", target)
    return ref.target or f"/{ref.source}"


def prepare(root: Path, cid: str, project: Project, service: Service) -> tuple[Mount, ...]:
    """Write the service's secrets and configs for container ``cid``; return their mounts.
    Blocking (file I/O): call it in a worker thread."""
    mounts: list[Mount] = []
    base = files_dir(root, cid)
    for kind, refs, objects in (("secrets", service.secrets, project.secrets),
                                ("configs", service.configs, project.configs)):
        for i, ref in enumerate(refs):
            obj = objects.get(ref.source)
            if obj is None:
                raise FileObjectError(f"service {service.name}: {kind} {ref.source!r} is not "
                                      f"defined at the top level")
            data = file_content(project, kind, ref, obj)
            base.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = base / f"{kind}-{i}-{ref.source}"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            if ref.uid is not None or ref.gid is not None:
                os.chown(tmp, int(ref.uid or 0), int(ref.gid or 0))
            os.chmod(tmp, ref.mode if ref.mode is not None else 0o444)
            os.replace(tmp, path)
            mounts.append(Mount(type=MountType.BIND, source=str(path),
                                target=_target(kind, ref), read_only=True,
                                create_host_path=False))
    return tuple(mounts)


def remove(root: Path, cid: str) -> None:
    shutil.rmtree(files_dir(root, cid), ignore_errors=True)
