"""The image configuration (the OCI/Docker "image config" JSON), as frozen dataclasses.

``ImageConfig.from_json`` validates the parts the runtime relies on (types of
Env/Cmd/Entrypoint/…, the ``rootfs.diff_ids``) and keeps the parsed JSON in
``raw`` so that fields we do not model survive a round trip (``to_json``
writes ``raw`` with the modelled fields replaced). The image id is the sha256
of the exact config bytes, as in Docker, so configs we create are serialised
once, deterministically, and stored byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from os import uname
from typing import Any

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.digest import check_digest

MAX_CONFIG_BYTES = 8 << 20


@dataclass(frozen=True)
class Healthcheck:
    """``Healthcheck`` of the image config; durations are nanoseconds (0 = inherit/default).

    ``test`` is ``("NONE",)`` to disable, ``("CMD", arg…)``, ``("CMD-SHELL", cmd)``,
    or empty to inherit the parent's.
    """

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
            ("Retries", self.retries),
        ):
            if value:
                out[key] = value
        return out


@dataclass(frozen=True)
class ContainerConfig:
    """The ``config`` section: defaults for containers run from the image.

    ``cmd``/``entrypoint`` are ``None`` when unset, which differs from an
    empty list for Docker's override rules.
    """

    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    stop_signal: str = ""
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] | None = None

    @property
    def env_map(self) -> dict[str, str]:
        """``Env`` as a mapping (a later ``K=`` wins, a bare ``K`` maps to ``""``)."""
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.user:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.healthcheck is not None:
            out["Healthcheck"] = self.healthcheck.to_json()
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.on_build:
            out["OnBuild"] = list(self.on_build)
        if self.shell is not None:
            out["Shell"] = list(self.shell)
        return out


@dataclass(frozen=True)
class HistoryEntry:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created:
            out["created"] = self.created
        if self.created_by:
            out["created_by"] = self.created_by
        if self.author:
            out["author"] = self.author
        if self.comment:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True)
class ImageConfig:
    """A whole image config. ``created`` is the RFC 3339 text as stored (nanoseconds kept)."""

    architecture: str
    os: str
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    created: str = ""
    author: str = ""
    variant: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def created_at(self) -> datetime | None:
        """``created`` as an aware datetime (microsecond precision), or None."""
        return parse_time(self.created) if self.created else None

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> ImageConfig:
        """Parse and validate config bytes; ``source`` names them in errors."""
        if len(data) > MAX_CONFIG_BYTES:
            raise ImageError(f"{source}: image config is larger than {MAX_CONFIG_BYTES} bytes")
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ImageError(f"{source}: image config is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ImageError(f"{source}: image config must be a JSON object")
        return cls.from_dict(doc, source=source)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, source: str) -> ImageConfig:
        rootfs = doc.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            raise ImageError(f"{source}: rootfs: expected {{\"type\": \"layers\", ...}}")
        ids = rootfs.get("diff_ids") or []
        if not isinstance(ids, list):
            raise ImageError(f"{source}: rootfs.diff_ids: expected a list")
        diff_ids = tuple(
            check_digest(d, f"{source}: rootfs.diff_ids[{i}]") for i, d in enumerate(ids)
        )
        history = doc.get("history") or []
        if not isinstance(history, list):
            raise ImageError(f"{source}: history: expected a list")
        return cls(
            architecture=_str(doc, "architecture", source),
            os=_str(doc, "os", source),
            variant=_str(doc, "variant", source),
            created=_str(doc, "created", source),
            author=_str(doc, "author", source),
            config=_container_config(doc.get("config"), f"{source}: config"),
            diff_ids=diff_ids,
            history=tuple(_history(h, f"{source}: history[{i}]") for i, h in enumerate(history)),
            raw=doc,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.raw)
        for key, value in (
            ("architecture", self.architecture),
            ("os", self.os),
            ("variant", self.variant),
            ("created", self.created),
            ("author", self.author),
        ):
            if value:
                out[key] = value
            else:
                out.pop(key, None)
        out["config"] = self.config.to_json()
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        out["history"] = [h.to_json() for h in self.history]
        out.pop("container_config", None)  # describes the build container of the *raw* config
        return out

    def to_json(self) -> bytes:
        """Deterministic bytes for a config we create (its sha256 is the image id)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def derive(
        self,
        *,
        diff_ids: Sequence[str] = (),
        config: ContainerConfig | None = None,
        created_by: str = "",
        comment: str = "",
        author: str = "",
        created: str | None = None,
    ) -> ImageConfig:
        """A child config: ``diff_ids`` appended (none = an empty-layer step), one history entry."""
        when = created if created is not None else format_time(datetime.now(UTC))
        entry = HistoryEntry(
            created=when, created_by=created_by, author=author, comment=comment,
            empty_layer=not diff_ids,
        )
        return replace(
            self,
            created=when,
            author=author or self.author,
            config=config if config is not None else self.config,
            diff_ids=self.diff_ids + tuple(diff_ids),
            history=self.history + (entry,),
        )


def empty_config(*, architecture: str | None = None, os: str = "linux") -> ImageConfig:
    """A config with no layers for this host's architecture (the start of an import or build)."""
    return ImageConfig(architecture=architecture or host_architecture(), os=os)


def host_architecture() -> str:
    """The OCI/Go name of this machine's architecture (``amd64``, ``arm64``, …)."""
    machine = uname().machine.lower()  # what platform.machine() reads, without its import
    return {
        "x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
        "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
    }.get(machine, machine)


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and nanosecond-width fraction, as Docker writes it."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}000Z"


def parse_time(text: str) -> datetime | None:
    """Parse RFC 3339 (fractions longer than microseconds are cut); None when unparseable."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, dot, tail = value.partition(".")
    if dot:
        digits = ""
        while tail and tail[0].isdigit():
            digits, tail = digits + tail[0], tail[1:]
        value = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- validation helpers ------------------------------------------------------------


def _str(doc: Mapping[str, Any], key: str, source: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImageError(f"{source}: {key}: expected a string, got {type(value).__name__}")
    return value


def _str_list(value: object, where: str, *, lenient: bool = False) -> tuple[str, ...] | None:
    if value is None:
        return None
    if lenient and isinstance(value, str):  # some old images store Cmd/Entrypoint as one string
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _key_set(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ImageError(f"{where}: expected an object, got {value!r}")
    return tuple(sorted(str(k) for k in value))


def _int(value: object, where: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ImageError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


def _container_config(value: object, where: str) -> ContainerConfig:
    if value is None:
        return ContainerConfig()
    if not isinstance(value, dict):
        raise ImageError(f"{where}: expected an object")
    labels = value.get("Labels") or {}
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ImageError(f"{where}.Labels: expected an object of strings")
    hc = value.get("Healthcheck")
    healthcheck = None
    if hc is not None:
        if not isinstance(hc, dict):
            raise ImageError(f"{where}.Healthcheck: expected an object")
        healthcheck = Healthcheck(
            test=_str_list(hc.get("Test"), f"{where}.Healthcheck.Test") or (),
            interval=_int(hc.get("Interval"), f"{where}.Healthcheck.Interval"),
            timeout=_int(hc.get("Timeout"), f"{where}.Healthcheck.Timeout"),
            start_period=_int(hc.get("StartPeriod"), f"{where}.Healthcheck.StartPeriod"),
            start_interval=_int(hc.get("StartInterval"), f"{where}.Healthcheck.StartInterval"),
            retries=_int(hc.get("Retries"), f"{where}.Healthcheck.Retries"),
        )
    for key in ("User", "WorkingDir", "StopSignal"):
        if value.get(key) is not None and not isinstance(value.get(key), str):
            raise ImageError(f"{where}.{key}: expected a string, got {value.get(key)!r}")
    return ContainerConfig(
        env=_str_list(value.get("Env"), f"{where}.Env") or (),
        cmd=_str_list(value.get("Cmd"), f"{where}.Cmd", lenient=True),
        entrypoint=_str_list(value.get("Entrypoint"), f"{where}.Entrypoint", lenient=True),
        working_dir=value.get("WorkingDir") or "",
        user=value.get("User") or "",
        exposed_ports=_key_set(value.get("ExposedPorts"), f"{where}.ExposedPorts"),
        volumes=_key_set(value.get("Volumes"), f"{where}.Volumes"),
        labels=dict(labels),
        stop_signal=value.get("StopSignal") or "",
        healthcheck=healthcheck,
        on_build=_str_list(value.get("OnBuild"), f"{where}.OnBuild") or (),
        shell=_str_list(value.get("Shell"), f"{where}.Shell"),
    )


def _history(value: object, where: str) -> HistoryEntry:
    if not isinstance(value, dict):
        raise ImageError(f"{where}: expected an object")
    return HistoryEntry(
        created=_str(value, "created", where),
        created_by=_str(value, "created_by", where),
        author=_str(value, "author", where),
        comment=_str(value, "comment", where),
        empty_layer=bool(value.get("empty_layer", False)),
    )
