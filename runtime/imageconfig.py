"""Merge an image's config with a container spec, as Docker does.

* entrypoint: the spec's when given, else the image's.
* command: the spec's when given; else ``[]`` when the spec overrides the
  entrypoint (Docker drops the image's Cmd then); else the image's Cmd.
  The process is ``entrypoint + command``; empty is an error.
* env: the image's ``Env``, then the spec's keys over it; ``PATH`` defaults
  to Docker's when neither sets it; ``HOSTNAME`` is the container's hostname;
  ``HOME`` comes from the user's passwd entry at spawn when unset.
* working_dir: the spec's, else the image's, else ``/``.
* user: the spec's, else the image's, else root.
* stop signal: the spec's, else the image's ``StopSignal``, else SIGTERM.
"""

from __future__ import annotations

import posixpath
import signal as _signal
from dataclasses import dataclass

from pycompose.runtime.errors import ContainerError
from pycompose.runtime.spec import ContainerSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProcessConfig:
    """The container's main process after the merge."""

    argv: tuple[str, ...]
    env: tuple[str, ...]  #: ``KEY=value``, image order then the spec's new keys
    working_dir: str
    user: str
    stop_signal: int


def parse_signal(value: str | int, *, what: str = "signal") -> int:
    """``"SIGTERM"``, ``"TERM"``, ``"15"`` or ``15`` → 15; a clear error otherwise."""
    if isinstance(value, int):
        if 0 < value < 65:
            return value
        raise ContainerError(f"invalid {what} {value!r}")
    text = value.strip().upper()
    if text.isdigit():
        return parse_signal(int(text), what=what)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(_signal.Signals[text])
    except KeyError:
        if text.startswith("SIGRTMIN+") or text.startswith("SIGRTMAX-"):
            base, _, off = text[3:].partition("+" if "+" in text else "-")
            n = int(off) if off.isdigit() else -1
            if n >= 0:
                return (_signal.SIGRTMIN + n) if base == "RTMIN" else (_signal.SIGRTMAX - n)
        raise ContainerError(f"invalid {what} {value!r}") from None


def merge_env(image_env: tuple[str, ...], spec_env: dict[str, str] | None,
              hostname: str) -> tuple[str, ...]:
    merged: dict[str, str] = {}
    for entry in image_env:
        key, sep, value = entry.partition("=")
        if key:
            merged[key] = value if sep else ""
    merged.setdefault("PATH", DEFAULT_PATH)
    if hostname:
        merged["HOSTNAME"] = hostname
    for key, value in (spec_env or {}).items():
        merged[key] = value
    return tuple(f"{k}={v}" for k, v in merged.items())


def resolve_process(spec: ContainerSpec) -> ProcessConfig:
    """Apply Docker's rules; raises ``ContainerError`` naming the container when empty."""
    image = spec.image
    entrypoint = spec.entrypoint if spec.entrypoint is not None else (image.entrypoint or ())
    if spec.command is not None:
        command = spec.command
    elif spec.entrypoint is not None:
        command = ()
    else:
        command = image.cmd or ()
    argv = tuple(entrypoint) + tuple(command)
    if not argv:
        raise ContainerError(f"container {spec.name}: no command specified "
                             "(neither the image nor the service sets one)")
    working_dir = spec.working_dir or image.working_dir or "/"
    if not posixpath.isabs(working_dir):
        raise ContainerError(f"container {spec.name}: working_dir {working_dir!r} "
                             "must be an absolute path")
    stop = spec.stop_signal or image.stop_signal or "SIGTERM"
    return ProcessConfig(
        argv=argv,
        env=merge_env(image.env, dict(spec.env), spec.hostname or spec.id[:12]),
        working_dir=posixpath.normpath(working_dir),
        user=spec.user if spec.user is not None else image.user,
        stop_signal=parse_signal(stop, what=f"stop signal of {spec.name}"),
    )
