"""A small HTTP/1.1 server for the engine API: h11 for the protocol, trio for the I/O.

Requests and responses carry JSON bodies. A handler returns either a
:class:`Response` (one JSON document) or a :class:`StreamResponse`, whose
producer sends any number of JSON values that go out as newline-delimited JSON
in a chunked body (progress, logs, events). While a stream is open the server
watches the connection, so a client that goes away (``logs -f`` interrupted)
cancels its producer at once instead of at the next write.

Errors are Docker-shaped: a non-2xx status with ``{"message": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket as _stdsocket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import trio

log = logging.getLogger("pycompose.engine.http")

MAX_BODY = 64 * 1024 * 1024
"""The largest request body accepted (a resolved project is far smaller)."""

_RECEIVE_SIZE = 65536


class HTTPError(Exception):
    """Raised by a handler to answer with ``status`` and ``{"message": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON (``None`` when empty); a 400 on malformed input."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, f"request body is not valid JSON: {exc}") from None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter the Docker way: ``1``/``true`` are true."""
        value = self.arg(name)
        if value is None:
            return default
        return value.lower() in ("1", "true", "yes")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise HTTPError(400, f"query parameter {name}={value!r} is not an integer") from None


@dataclass
class Response:
    body: Any = None
    status: int = 200


Send = Callable[[Any], Awaitable[None]]


@dataclass
class StreamResponse:
    """``producer(send)`` sends JSON values; the stream ends when it returns."""

    producer: Callable[[Send], Awaitable[None]]
    status: int = 200


@dataclass
class UpgradeResponse:
    """Switch the connection to raw bytes (``101 Switching Protocols``): ``handler(stream)``
    then owns the connection (interactive ``exec``)."""

    handler: Callable[[trio.abc.Stream, bytes], Awaitable[None]]
    protocol: str = "pycompose-stream"


Handler = Callable[[Request], Awaitable[Response | StreamResponse | UpgradeResponse]]


class Router:
    """Method + path pattern (``/containers/{id}/logs``) -> handler."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    def route(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        allowed = False
        for m, regex, handler in self._routes:
            match = regex.match(path)
            if match is None:
                continue
            if m == method:
                return handler, {k: unquote(v) for k, v in match.groupdict().items()}
            allowed = True
        if allowed:
            raise HTTPError(405, f"method {method} not allowed on {path}")
        raise HTTPError(404, f"page not found: {path}")


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


class _Connection:
    def __init__(self, stream: trio.abc.Stream, router: Router) -> None:
        self.stream = stream
        self.router = router
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(_RECEIVE_SIZE)
                self.conn.receive_data(bytes(data))
                continue
            return event

    async def _read_request(self) -> Request | None:
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
        if not isinstance(event, h11.Request):
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            ev = await self._next_event()
            if isinstance(ev, h11.Data):
                size += len(ev.data)
                if size > MAX_BODY:
                    raise HTTPError(413, f"request body larger than {MAX_BODY} bytes")
                chunks.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                break
            else:
                return None
        target = urlsplit(event.target.decode("latin-1"))
        return Request(
            method=event.method.decode("ascii").upper(),
            path=target.path,
            query=parse_qs(target.query, keep_blank_values=True),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers},
            body=b"".join(chunks),
        )

    async def _respond_json(self, status: int, body: Any) -> None:
        data = _json_bytes(body) if body is not None else b""
        headers = [("Content-Length", str(len(data)))]
        if body is not None:
            headers.append(("Content-Type", "application/json"))
        await self._send(h11.Response(status_code=status, headers=headers))
        if data:
            await self._send(h11.Data(data=data))
        await self._send(h11.EndOfMessage())

    async def _respond_stream(self, response: StreamResponse) -> None:
        await self._send(h11.Response(
            status_code=response.status,
            headers=[("Content-Type", "application/x-ndjson"), ("Transfer-Encoding", "chunked")],
        ))

        async def send(value: Any) -> None:
            await self._send(h11.Data(data=_json_bytes(value) + b"\n"))

        async with trio.open_nursery() as nursery:
            # While streaming the client sends nothing; EOF or an error means it left.
            nursery.start_soon(self._watch_disconnect, nursery.cancel_scope)
            try:
                await response.producer(send)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise _ClientGone from None
            except Exception as exc:  # the status is sent already: report in the stream
                log.exception("stream producer failed")
                await send({"type": "error",
                            "message": f"internal error: {type(exc).__name__}: {exc}"})
            nursery.cancel_scope.cancel()
        await self._send(h11.EndOfMessage())

    async def _watch_disconnect(self, scope: trio.CancelScope) -> None:
        try:
            while True:
                data = await self.stream.receive_some(_RECEIVE_SIZE)
                if not data:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()
        raise _ClientGone

    async def serve(self) -> None:
        while True:
            try:
                request = await self._read_request()
            except HTTPError as err:
                if self.conn.our_state is h11.SEND_RESPONSE:
                    await self._respond_json(err.status, {"message": err.message})
                return
            except h11.RemoteProtocolError as err:
                # h11 lets a server answer a request it could not parse (state IDLE).
                if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._respond_json(err.error_status_hint, {"message": str(err)})
                return
            if request is None:
                return
            try:
                await self._dispatch(request)
            except _ClientGone:
                return
            if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _dispatch(self, request: Request) -> None:
        try:
            handler, request.params = self.router.route(request.method, request.path)
            response = await handler(request)
        except HTTPError as err:
            await self._respond_json(err.status, {"message": err.message})
            return
        except Exception as exc:  # a handler bug answers 500 and keeps the engine up
            log.exception("%s %s failed", request.method, request.path)
            message = f"internal error: {type(exc).__name__}: {exc}"
            await self._respond_json(500, {"message": message})
            return
        if isinstance(response, UpgradeResponse):
            await self._send(h11.InformationalResponse(
                status_code=101, headers=[("Upgrade", response.protocol),
                                          ("Connection", "Upgrade")]))
            leftover, _closed = self.conn.trailing_data
            await response.handler(self.stream, bytes(leftover))
            raise _ClientGone  # the connection is the handler's now, and is done
        if isinstance(response, StreamResponse):
            try:
                await self._respond_stream(response)
            except* _ClientGone:
                raise _ClientGone from None
        else:
            await self._respond_json(response.status, response.body)


class _ClientGone(Exception):
    pass


async def handle_stream(stream: trio.abc.Stream, router: Router) -> None:
    """Serve HTTP/1.1 requests on one connection until the client closes it."""
    try:
        await _Connection(stream, router).serve()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:  # one broken connection must never take the engine down
        log.exception("connection failed")
    finally:
        await trio.aclose_forcefully(stream)


async def bind_unix(path: Path) -> trio.SocketListener:
    """A listening unix socket at ``path``, mode 0600 from the start (no chmod race).

    A stale socket file (no engine behind it) is replaced; the caller holds the
    engine lock, so no live engine can be listening there.
    """
    # Local metadata operations at startup: not worth a thread hop.
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # noqa: ASYNC240
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # noqa: ASYNC240
    sock = trio.socket.socket(_stdsocket.AF_UNIX, _stdsocket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(128)
    return trio.SocketListener(sock)


async def serve_unix(
    path: Path, router: Router, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``router`` on a unix socket at ``path``; reports the path once listening."""
    listener = await bind_unix(path)
    try:
        async with trio.open_nursery() as nursery:
            async def on_connection(stream: trio.SocketStream) -> None:
                await handle_stream(stream, router)

            await nursery.start(trio.serve_listeners, on_connection, [listener])
            task_status.started(path)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # noqa: ASYNC240 - one unlink at shutdown
