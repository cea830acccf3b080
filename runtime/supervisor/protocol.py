"""The supervisor's wire protocol: a closed set of typed messages as JSON lines.

Client → supervisor, one line each::

    {"seq": 7, "op": "start", "args": {"id": "…"}}

Supervisor → client::

    {"seq": 7, "ok": <result>, "nfds": 0}           reply
    {"seq": 7, "error": {"type": "SpawnError", "message": "…", "step": "…", "path": "…"}}
    {"event": <ContainerEvent>}                      after a ``subscribe``

File descriptors (an exec's stdio) travel with the reply line by
``SCM_RIGHTS``; ``nfds`` says how many belong to it, in order. Every request
type names its result type, so both sides decode with :mod:`.codec`.
Replies may come out of order (``wait`` replies when the container exits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from pycompose.runtime.spec import (
    ContainerEvent,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ExecSpec,
    ExitStatus,
    GcReport,
    ProcessInfo,
)
from pycompose.runtime.supervisor.codec import from_json, to_json

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class Request:
    op: ClassVar[str]
    result: ClassVar[Any]


@dataclass(frozen=True)
class Hello(Request):
    op = "hello"
    result = dict


@dataclass(frozen=True)
class Create(Request):
    op = "create"
    result = ContainerInfo
    spec: ContainerSpec


@dataclass(frozen=True)
class Start(Request):
    op = "start"
    result = ContainerInfo
    id: str


@dataclass(frozen=True)
class Wait(Request):
    """Replies when the current run ends (at once when the container is not running)."""

    op = "wait"
    result = ExitStatus
    id: str


@dataclass(frozen=True)
class Stop(Request):
    op = "stop"
    result = ExitStatus
    id: str
    signal: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Kill(Request):
    op = "kill"
    result = type(None)
    id: str
    signal: str = "SIGKILL"


@dataclass(frozen=True)
class Pause(Request):
    op = "pause"
    result = type(None)
    id: str


@dataclass(frozen=True)
class Unpause(Request):
    op = "unpause"
    result = type(None)
    id: str


@dataclass(frozen=True)
class Remove(Request):
    op = "remove"
    result = type(None)
    id: str
    force: bool = False
    volumes: bool = False


@dataclass(frozen=True)
class Inspect(Request):
    op = "inspect"
    result = ContainerInfo
    id: str


@dataclass(frozen=True)
class ListContainers(Request):
    op = "list"
    result = list[ContainerInfo]


@dataclass(frozen=True)
class ExecStarted:
    """fds sent with it: stdin's write end (when asked), stdout's and stderr's read
    ends; with a tty, only the terminal's master end (stdin and stdout both)."""

    exec_id: str
    pid: int
    stdin: bool
    tty: bool = False


@dataclass(frozen=True)
class Exec(Request):
    op = "exec"
    result = ExecStarted
    id: str
    spec: ExecSpec


@dataclass(frozen=True)
class ExecWait(Request):
    op = "exec_wait"
    result = ExitStatus
    exec_id: str


@dataclass(frozen=True)
class ExecKill(Request):
    op = "exec_kill"
    result = type(None)
    exec_id: str
    signal: str = "SIGKILL"


@dataclass(frozen=True)
class ExecResize(Request):
    op = "exec_resize"
    result = type(None)
    exec_id: str
    rows: int
    columns: int


@dataclass(frozen=True)
class Top(Request):
    op = "top"
    result = list[ProcessInfo]
    id: str


@dataclass(frozen=True)
class Attached:
    """Sent with one fd: where to write the container's stdin (the terminal with tty)."""

    tty: bool


@dataclass(frozen=True)
class Attach(Request):
    op = "attach"
    result = Attached
    id: str


@dataclass(frozen=True)
class CloseStdin(Request):
    """End the stdin of a ``stdin_open`` container: the program reads EOF once every
    attached client has closed its end too (``docker attach`` at end of input)."""

    op = "close_stdin"
    result = type(None)
    id: str


@dataclass(frozen=True)
class Resize(Request):
    op = "resize"
    result = type(None)
    id: str
    rows: int
    columns: int


@dataclass(frozen=True)
class Stats(Request):
    op = "stats"
    result = ContainerStats
    id: str


@dataclass(frozen=True)
class Subscribe(Request):
    """Start receiving events on this connection; replays those after ``since``."""

    op = "subscribe"
    result = int  #: the latest event seq at the time of subscribing
    since: int = 0


@dataclass(frozen=True)
class Gc(Request):
    op = "gc"
    result = GcReport


@dataclass(frozen=True)
class Shutdown(Request):
    """Stop the supervisor (containers keep running; a new one re-adopts them)."""

    op = "shutdown"
    result = type(None)


REQUESTS: dict[str, type[Request]] = {
    cls.op: cls for cls in (Hello, Create, Start, Wait, Stop, Kill, Pause, Unpause, Remove,
                            Inspect, ListContainers, Exec, ExecWait, ExecKill, ExecResize, Top,
                            Stats, Attach, CloseStdin, Resize, Subscribe,
                            Gc, Shutdown)
}


def encode_request(seq: int, req: Request) -> bytes:
    return (json.dumps({"seq": seq, "op": req.op, "args": to_json(req)},
                       separators=(",", ":")) + "\n").encode()


def decode_request(msg: dict[str, Any]) -> Request:
    cls = REQUESTS.get(msg.get("op", ""))
    if cls is None:
        raise ValueError(f"unknown request {msg.get('op')!r}")
    req: Request = from_json(cls, msg.get("args") or {})
    return req


def encode_reply(seq: int, result: Any, nfds: int = 0) -> bytes:
    return (json.dumps({"seq": seq, "ok": to_json(result), "nfds": nfds},
                       separators=(",", ":")) + "\n").encode()


def encode_error(seq: int, exc: BaseException) -> bytes:
    err = {"type": type(exc).__name__, "message": str(exc),
           "step": getattr(exc, "step", ""), "path": getattr(exc, "path", "")}
    return (json.dumps({"seq": seq, "error": err}, separators=(",", ":")) + "\n").encode()


def encode_event(event: ContainerEvent) -> bytes:
    return (json.dumps({"event": to_json(event)}, separators=(",", ":")) + "\n").encode()


def decode_event(data: Any) -> ContainerEvent:
    ev: ContainerEvent = from_json(ContainerEvent, data)
    return ev
