"""The supervisor's on-disk container records (``<root>/containers/<id>/``).

``config.json`` is the spec as created (written once); ``state.json`` the
mutable part, replaced atomically (temp file + rename) at every change, so a
supervisor that restarts finds each container's last known state: its init's
pid and start time (field 22 of ``/proc/PID/stat``, to tell a re-used pid
from the container's), and the last exit status.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pycompose.runtime.spec import ContainerSpec, ContainerStatus, ExitStatus
from pycompose.runtime.supervisor.codec import from_json, to_json


@dataclass
class ContainerState:
    """What changes over a container's life; ``spec`` is fixed at create."""

    status: ContainerStatus
    created_at: str
    pid: int | None = None
    pid_start_time: int | None = None  #: /proc/PID/stat field 22 of ``pid``
    started_at: str = ""
    exit: ExitStatus | None = None
    warnings: tuple[str, ...] = ()
    restart_count: int = 0
    anonymous_volumes: tuple[str, ...] = ()
    oom_count: int = 0  #: the cgroup's OOM-kill count when the current run started
    paused: bool = False
    stopping: bool = False  #: a stop/kill was asked for the current run
    #: where the container's cgroup lives (``Cgroup.to_record()``): a supervisor
    #: restarted from another cgroup of its own still finds it
    cgroup: Mapping[str, Any] | None = None


@dataclass
class Record:
    spec: ContainerSpec
    state: ContainerState
    extra: dict[str, object] = field(default_factory=dict)


def _atomic_write(path: str, data: object) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, path)


def save_spec(cdir: str, spec: ContainerSpec) -> None:
    _atomic_write(os.path.join(cdir, "config.json"), to_json(spec))


def save_state(cdir: str, state: ContainerState) -> None:
    _atomic_write(os.path.join(cdir, "state.json"), to_json(state))


def load(cdir: str) -> Record | None:
    """The record in ``cdir``, or ``None`` when it is missing or unreadable."""
    try:
        with open(os.path.join(cdir, "config.json")) as fh:
            spec = from_json(ContainerSpec, json.load(fh))
        with open(os.path.join(cdir, "state.json")) as fh:
            state = from_json(ContainerState, json.load(fh))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return Record(spec=spec, state=state)


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), ``None`` when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[19])
