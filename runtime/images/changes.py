"""Dockerfile instructions applied to an image config (``docker import --change``).

Accepted: ``CMD``, ``ENTRYPOINT``, ``ENV``, ``EXPOSE``, ``LABEL``, ``USER``,
``VOLUME``, ``WORKDIR``, ``STOPSIGNAL``, ``HEALTHCHECK``, ``ONBUILD``,
``SHELL`` — the instructions that only change metadata. The builder uses the
same functions for those steps.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import replace

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.config import ContainerConfig, Healthcheck

DEFAULT_SHELL = ("/bin/sh", "-c")
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str, where: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ImageError(f"{where}: invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)")
    return int(total)


def _json_list(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command(rest: str, shell: tuple[str, ...] | None) -> tuple[str, ...]:
    as_list = _json_list(rest)
    if as_list is not None:
        return tuple(as_list)
    return (*(shell or DEFAULT_SHELL), rest)


def _pairs(rest: str, where: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise ImageError(f"{where}: {exc}") from None
    if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    out = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise ImageError(f"{where}: expected KEY=VALUE, got {word!r}")
        out.append((key, value))
    return out


def apply_change(config: ContainerConfig, change: str) -> ContainerConfig:
    """Apply one instruction line to ``config`` and return the new config."""
    where = f"change {change!r}"
    keyword, _, rest = change.strip().partition(" ")
    keyword, rest = keyword.upper(), rest.strip()
    if not rest and keyword != "HEALTHCHECK":
        raise ImageError(f"{where}: {keyword} needs an argument")
    if keyword == "CMD":
        return replace(config, cmd=_command(rest, config.shell))
    if keyword == "ENTRYPOINT":
        return replace(config, entrypoint=_command(rest, config.shell))
    if keyword == "SHELL":
        shell = _json_list(rest)
        if not shell:
            raise ImageError(f"{where}: SHELL needs a JSON array")
        return replace(config, shell=tuple(shell))
    if keyword == "ENV":
        env = config.env_map
        for key, value in _pairs(rest, where):
            env[key] = value
        return replace(config, env=tuple(f"{k}={v}" for k, v in env.items()))
    if keyword == "LABEL":
        labels = dict(config.labels)
        labels.update(_pairs(rest, where))
        return replace(config, labels=labels)
    if keyword == "EXPOSE":
        ports = set(config.exposed_ports)
        for word in rest.split():
            port, _, proto = word.partition("/")
            valid_port = port.isdigit() and 0 < int(port) < 65536
            if not valid_port or proto not in ("", "tcp", "udp", "sctp"):
                raise ImageError(f"{where}: invalid port {word!r}")
            ports.add(f"{int(port)}/{proto or 'tcp'}")
        return replace(config, exposed_ports=tuple(sorted(ports)))
    if keyword == "VOLUME":
        paths = _json_list(rest) or rest.split()
        return replace(config, volumes=tuple(sorted(set(config.volumes) | set(paths))))
    if keyword == "USER":
        return replace(config, user=rest)
    if keyword == "WORKDIR":
        if not rest.startswith("/"):
            rest = (config.working_dir or "/").rstrip("/") + "/" + rest
        return replace(config, working_dir=rest)
    if keyword == "STOPSIGNAL":
        return replace(config, stop_signal=rest)
    if keyword == "ONBUILD":
        return replace(config, on_build=(*config.on_build, rest))
    if keyword == "HEALTHCHECK":
        return replace(config, healthcheck=_healthcheck(rest, config.shell, where))
    raise ImageError(
        f"{where}: unsupported instruction {keyword!r} (use CMD, ENTRYPOINT, ENV, EXPOSE, "
        "HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME or WORKDIR)"
    )


def _healthcheck(rest: str, shell: tuple[str, ...] | None, where: str) -> Healthcheck:
    if rest.upper() == "NONE":
        return Healthcheck(test=("NONE",))
    options: dict[str, int] = {}
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        rest = rest.strip()
        name, eq, value = option[2:].partition("=")
        if not eq:
            raise ImageError(f"{where}: option {option!r} needs =VALUE")
        if name == "retries":
            if not value.isdigit():
                raise ImageError(f"{where}: --retries must be a number, got {value!r}")
            options[name] = int(value)
        elif name in ("interval", "timeout", "start-period", "start-interval"):
            options[name] = parse_duration(value, f"{where}: --{name}")
        else:
            raise ImageError(f"{where}: unknown HEALTHCHECK option --{name}")
    keyword, _, command = rest.partition(" ")
    if keyword.upper() != "CMD" or not command.strip():
        raise ImageError(f"{where}: expected HEALTHCHECK [OPTIONS] CMD command, or NONE")
    as_list = _json_list(command.strip())
    test = ("CMD", *as_list) if as_list is not None else ("CMD-SHELL", command.strip())
    return Healthcheck(
        test=test,
        interval=options.get("interval", 0),
        timeout=options.get("timeout", 0),
        start_period=options.get("start-period", 0),
        start_interval=options.get("start-interval", 0),
        retries=options.get("retries", 0),
    )


def apply_changes(config: ContainerConfig, changes: Sequence[str]) -> ContainerConfig:
    for change in changes:
        config = apply_change(config, change)
    return config
