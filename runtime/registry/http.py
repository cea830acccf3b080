"""A small HTTP/1.1 client for trio: h11 over ``trio.open_tcp_stream`` / ``SSLStream``.

Why not httpx: the registry protocol needs only a handful of verbs, streamed
bodies both ways and keep-alive; h11 (already the engine's HTTP parser) plus
trio streams gives that without an anyio layer in the engine's event loop,
with trio's cancel scopes working on every read.

::

    async with HttpClient() as http:
        async with http.stream("GET", url, headers={...}) as resp:
            resp.status, resp.headers["content-type"]
            async for chunk in resp.iter_bytes(): ...
        resp = await http.request("HEAD", url)    # body read and connection recycled

Connections are kept per ``(scheme, host, port)`` and reused when a response
was read to its end. A body framed by ``Content-Length`` (every blob) is read
straight off the stream in large reads instead of through h11's receive buffer,
which would copy every chunk twice more; h11 still parses every head and any
chunked body. On a plain-TCP connection such a body can also be handed to a
worker thread (:meth:`Response.detach_body`), which reads it with blocking
calls on its own copy of the socket, with no hop through the event loop per
chunk (a registry pull hashes and unpacks in that thread anyway). Every
failure of the transport (refused, reset, TLS, a peer that stops answering
for ``read_timeout`` seconds, a malformed response) is an :class:`HttpError`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import h11
import trio

__all__ = ["DetachedBody", "HttpClient", "HttpError", "Response", "Url"]

USER_AGENT = "pycompose"
_CHUNK = 1 << 16       # reads while h11 parses a head or a chunked body
_BODY_CHUNK = 1 << 18  # reads of a Content-Length body


class HttpError(Exception):
    """The transport failed: connection, TLS, timeout or protocol error (not an HTTP status)."""


@dataclass(frozen=True)
class Url:
    scheme: str
    host: str
    port: int
    target: str  # path + query

    @classmethod
    def parse(cls, url: str) -> Url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"unsupported URL {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, target)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class _Connection:
    def __init__(self, stream: trio.abc.Stream, origin: tuple[str, str, int]) -> None:
        self.stream = stream
        self.origin = origin
        self.conn = h11.Connection(h11.CLIENT)
        # Set when a body was read past h11 (``Response._iter_raw``): the connection is
        # reusable with a fresh h11 state, h11's own says "still in the body".
        self.raw_cycle_done = False

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)


@dataclass
class Response:
    """A response whose body is read with :meth:`iter_bytes` or :meth:`read`."""

    status: int
    reason: str
    headers: dict[str, str]
    url: str
    _client: HttpClient = field(repr=False)
    _conn: _Connection | None = field(repr=False)
    _read_timeout: float = field(repr=False, default=60.0)
    _done: bool = field(repr=False, default=False)
    _length: int | None = field(repr=False, default=None)  # Content-Length framing
    _keep_alive: bool = field(repr=False, default=False)

    async def iter_bytes(self) -> AsyncGenerator[bytes, None]:
        conn = self._conn
        if conn is None or self._done:
            return
        if self._length is not None:
            async with aclosing(self._iter_raw(conn, self._length)) as raw:
                async for chunk in raw:
                    yield chunk
            return
        while True:
            event = await self._client._next_event(conn, self._read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
                await self._client._release(conn)
                self._conn = None
                return
            else:  # pragma: no cover - h11 emits only these after the response head
                raise HttpError(f"{self.url}: unexpected HTTP event {type(event).__name__}")

    async def _iter_raw(self, conn: _Connection, length: int) -> AsyncGenerator[bytes, None]:
        """The body of ``length`` bytes: what h11 has buffered past the head, then the rest
        read from the stream directly (no copies through h11's buffer)."""
        buffered, _ = conn.conn.trailing_data
        if len(buffered) > length:  # more than the body: not a response we can frame
            await self.aclose()
            raise HttpError(f"{self.url}: {len(buffered) - length} bytes after the body")
        remaining = length - len(buffered)
        if buffered:
            yield buffered
        data: bytes | None = None
        client = self._client
        while remaining:
            # (no yield inside a cancel scope: the consumer runs while this is suspended)
            with trio.move_on_after(self._read_timeout):
                data = await client._receive(conn, min(remaining, _BODY_CHUNK))
                remaining -= len(data)
            if data is None:
                await self.aclose()
                raise HttpError(f"{conn.origin[1]}: no data for {self._read_timeout:g}s")
            if not data:
                await self.aclose()
                raise HttpError(f"{self.url}: peer closed connection without sending "
                                f"complete message body (received {length - remaining} "
                                f"bytes, expected {length})")
            yield data
            data = None
        self._done = True
        conn.raw_cycle_done = self._keep_alive
        await client._release(conn)
        self._conn = None

    async def read(self, limit: int = 16 << 20) -> bytes:
        """The whole body (refused above ``limit`` bytes: manifests and JSON are small)."""
        out = bytearray()
        async with aclosing(self.iter_bytes()) as chunks:
            async for chunk in chunks:
                out += chunk
                if len(out) > limit:
                    raise HttpError(f"{self.url}: response larger than {limit} bytes")
        return bytes(out)

    async def aclose(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.aclose()

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def detach_body(self) -> DetachedBody | None:
        """The unread body for a worker thread to read, when it is framed by Content-Length
        on a plain-TCP connection (None otherwise: TLS lives in the event loop's stream).

        The response must then be left alone until :meth:`reattach` (after the thread is
        done with the body, or has been stopped with :meth:`DetachedBody.abort`).
        """
        conn = self._conn
        if conn is None or self._done or self._length is None \
                or not isinstance(conn.stream, trio.SocketStream):
            return None
        buffered, _ = conn.conn.trailing_data
        if len(buffered) > self._length:
            return None  # not framed as promised: iter_bytes reports it
        sock = socket.socket(fileno=os.dup(conn.stream.socket.fileno()))
        sock.settimeout(self._read_timeout)
        return DetachedBody(sock, bytes(buffered), self._length - len(buffered), self.url)

    async def reattach(self, body: DetachedBody) -> None:
        """Take the connection back from ``body``: reused when the whole body was read.

        Otherwise the connection is closed; ``body``'s own descriptor stays open for a
        thread that may still be in a read, until that thread's owner closes it.
        """
        if body.remaining or body.error is not None:
            await self.aclose()
            return
        body.close()
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.raw_cycle_done = self._keep_alive
            await self._client._release(conn)


class DetachedBody:
    """The rest of a Content-Length body, read by a worker thread with blocking calls.

    ``read`` gives what h11 had buffered past the head, then reads the socket (a
    duplicate of the connection's descriptor, with the client's read timeout) until
    the body is complete, then returns ``b""``. A broken or silent connection raises
    :class:`HttpError` (kept in ``error``). ``abort`` may be called from any thread:
    it shuts the socket down, so a blocked ``read`` returns at once with an error.
    """

    def __init__(self, sock: socket.socket, buffered: bytes, remaining: int, url: str) -> None:
        self._sock = sock
        self._buffered = buffered
        self.length = len(buffered) + remaining
        self.remaining = len(buffered) + remaining  # bytes of the body not yet read
        self.url = url
        self.error: HttpError | None = None
        self._lock = threading.Lock()  # abort and close race with a read
        self._aborted = False

    def read(self, size: int) -> bytes:
        if self.error is not None:
            raise self.error
        if self._buffered:
            data, self._buffered = self._buffered[:size], self._buffered[size:]
        elif not self.remaining:
            return b""
        else:
            try:
                data = self._sock.recv(min(size, self.remaining))
            except TimeoutError:
                self.error = HttpError(f"{self.url}: no data for {self._sock.gettimeout():g}s")
                raise self.error from None
            except OSError as exc:
                self.error = HttpError(f"{self.url}: connection lost: {_describe(exc)}")
                raise self.error from None
            if not data:
                why = "aborted" if self._aborted else "peer closed connection"
                self.error = HttpError(
                    f"{self.url}: {why} without sending complete message body (received "
                    f"{self.length - self.remaining} bytes, expected {self.length})")
                raise self.error
        self.remaining -= len(data)
        return data

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            if self._sock.fileno() >= 0:
                # (OSError: not connected any more; the read fails by itself)
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the duplicate descriptor (once no thread can be in :meth:`read`)."""
        with self._lock:
            self._sock.close()


class HttpClient:
    """Keep-alive HTTP/1.1 over trio. Use as an async context manager."""

    def __init__(self, *, connect_timeout: float = 30.0, read_timeout: float = 60.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ssl = ssl_context
        self._ssl_by_host: dict[tuple[str, int], ssl.SSLContext] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}

    def set_ssl_context(self, host: str, port: int, context: ssl.SSLContext) -> None:
        """Use ``context`` (own CAs, a client certificate) for HTTPS to ``host:port``."""
        self._ssl_by_host[(host, port)] = context

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                await conn.aclose()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, url: Url) -> _Connection:
        try:
            with trio.fail_after(self.connect_timeout):
                tcp = await trio.open_tcp_stream(url.host, url.port)
                stream: trio.abc.Stream = tcp
                if url.scheme == "https":
                    context = self._ssl_by_host.get((url.host, url.port)) or self._ssl_context()
                    tls = trio.SSLStream(tcp, context, server_hostname=url.host,
                                         https_compatible=True)
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        await trio.aclose_forcefully(tcp)
                        raise
                    stream = tls
        except trio.TooSlowError:
            raise HttpError(f"{url.host}:{url.port}: connection timed out") from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            raise HttpError(f"{url.host}:{url.port}: cannot connect: {_describe(exc)}") from None
        return _Connection(stream, url.origin)

    async def _next_event(self, conn: _Connection, read_timeout: float) -> Any:
        while True:
            try:
                event = conn.conn.next_event()
            except h11.RemoteProtocolError as exc:
                await conn.aclose()
                raise HttpError(f"{conn.origin[1]}: bad HTTP response: {exc}") from None
            if event is not h11.NEED_DATA:
                return event
            try:
                with trio.fail_after(read_timeout):
                    data = await self._receive(conn, _CHUNK)
            except trio.TooSlowError:
                await conn.aclose()
                raise HttpError(f"{conn.origin[1]}: no data for {read_timeout:g}s") from None
            conn.conn.receive_data(data)

    async def _receive(self, conn: _Connection, max_bytes: int) -> bytes:
        try:
            return bytes(await conn.stream.receive_some(max_bytes))
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
            await conn.aclose()
            raise HttpError(f"{conn.origin[1]}: connection lost: {_describe(exc)}") from None

    async def _release(self, conn: _Connection) -> None:
        if conn.raw_cycle_done:  # the body went past h11: start over with a fresh state
            conn.conn = h11.Connection(h11.CLIENT)
            conn.raw_cycle_done = False
            self._idle.setdefault(conn.origin, []).append(conn)
        elif conn.conn.our_state is h11.DONE and conn.conn.their_state is h11.DONE:
            try:
                conn.conn.start_next_cycle()
            except h11.LocalProtocolError:
                await conn.aclose()
                return
            self._idle.setdefault(conn.origin, []).append(conn)
        else:
            await conn.aclose()

    async def _send(self, conn: _Connection, event: Any) -> None:
        data = conn.conn.send(event)
        if data:
            try:
                await conn.stream.send_all(data)
            except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
                await conn.aclose()
                raise HttpError(f"{conn.origin[1]}: connection lost: {_describe(exc)}") from None

    async def _open(self, method: str, url: Url, headers: Mapping[str, str],
                    body: bytes | AsyncIterator[bytes] | None,
                    content_length: int | None) -> tuple[_Connection, Any]:
        hdrs = [("Host", url.host_header), ("User-Agent", USER_AGENT)]
        hdrs += [(k, v) for k, v in headers.items()]
        if isinstance(body, bytes):
            hdrs.append(("Content-Length", str(len(body))))
        elif body is not None:
            if content_length is not None:
                hdrs.append(("Content-Length", str(content_length)))
            else:
                hdrs.append(("Transfer-Encoding", "chunked"))
        elif method in ("PUT", "POST", "PATCH"):
            hdrs.append(("Content-Length", "0"))
        # A pooled connection may have been closed by the server meanwhile: retry once
        # on a fresh one when nothing of the request can have been processed.
        for attempt in (0, 1):
            pooled = self._idle.get(url.origin)
            reused = bool(pooled) and attempt == 0
            conn = pooled.pop() if pooled and reused else await self._connect(url)
            try:
                await self._send(conn, h11.Request(method=method, target=url.target,
                                                   headers=hdrs))
                if isinstance(body, bytes):
                    if body:
                        await self._send(conn, h11.Data(data=body))
                elif body is not None:
                    async for chunk in body:
                        if chunk:
                            await self._send(conn, h11.Data(data=chunk))
                await self._send(conn, h11.EndOfMessage())
                event = await self._next_event(conn, self.read_timeout)
                while isinstance(event, h11.InformationalResponse):
                    event = await self._next_event(conn, self.read_timeout)
                return conn, event
            except HttpError:
                if attempt == 0 and reused and (body is None or isinstance(body, bytes)):
                    continue
                raise
            except BaseException:
                await conn.aclose()  # cancelled mid-request: the connection is unusable
                raise
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def stream(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                     body: bytes | AsyncIterator[bytes] | None = None,
                     content_length: int | None = None) -> AsyncIterator[Response]:
        """Send a request; yield the response with its body unread (closed on exit)."""
        parsed = Url.parse(url)
        conn, event = await self._open(method, parsed, headers or {}, body, content_length)
        headers = _headers(event.headers)
        resp = Response(
            status=event.status_code,
            reason=event.reason.decode("latin-1"),
            headers=headers,
            url=url,
            _client=self,
            _conn=conn,
            _read_timeout=self.read_timeout,
            _length=_content_length(method, event.status_code, headers),
            _keep_alive=event.http_version == b"1.1"
            and "close" not in headers.get("connection", "").lower(),
        )
        try:
            yield resp
        finally:
            if resp._conn is not None:
                if resp._done:
                    await self._release(resp._conn)
                else:
                    await resp.aclose()

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      body: bytes | AsyncIterator[bytes] | None = None,
                      content_length: int | None = None,
                      limit: int = 16 << 20) -> tuple[Response, bytes]:
        """Send a request and read the whole (small) body."""
        async with self.stream(method, url, headers=headers, body=body,
                               content_length=content_length) as resp:
            data = await resp.read(limit)
        return resp, data


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; repeated headers joined by ``, `` (``WWW-Authenticate``: by newline,
    since its challenges contain commas)."""
    out: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        if name in out:
            text = out[name] + ("\n" if name == "www-authenticate" else ", ") + text
        out[name] = text
    return out


def _content_length(method: str, status: int, headers: Mapping[str, str]) -> int | None:
    """The body length when it is framed by ``Content-Length`` alone (h11 has checked the
    header's syntax); None for no body, a chunked body, or one read until close."""
    if method == "HEAD" or status in (204, 304) or status < 200:
        return None
    if "transfer-encoding" in headers:
        return None
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None:
        exc = exc.__cause__  # trio wraps TLS failures: the SSLError says what went wrong
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def resolve(base: str, location: str) -> str:
    """An absolute URL for a ``Location`` header (registries often send relative ones)."""
    return urljoin(base, location)
