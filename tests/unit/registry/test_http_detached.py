"""A response body handed to a worker thread (``Response.detach_body``), on a real
loopback TCP server: read whole and the connection reused, a stalled peer aborted
from trio, a peer that hangs up early."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from pycompose.runtime.registry.http import DetachedBody, HttpClient, HttpError, Response

BODY = bytes(range(256)) * 4096  # 1 MiB


class _Server:
    """HTTP/1.1 on 127.0.0.1 answering every request with ``Content-Length: len(BODY)``;
    ``send`` bytes of the body are written (then it stalls until ``release``, or hangs up
    when ``hang_up``)."""

    def __init__(self, send: int = len(BODY), *, hang_up: bool = False) -> None:
        self.send = send
        self.hang_up = hang_up
        self.connections = 0
        self.requests = 0
        self.release = trio.Event()
        self.port = 0

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        buf = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                buf = buf.split(b"\r\n\r\n", 1)[1]
                self.requests += 1
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: "
                                      + str(len(BODY)).encode() + b"\r\n\r\n")
                await stream.send_all(BODY[:self.send])
                if self.send < len(BODY):
                    if self.hang_up:
                        return
                    await self.release.wait()
                    return

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)


@asynccontextmanager
async def _detached(server: _Server) -> AsyncIterator[tuple[Response, DetachedBody]]:
    """``server`` running, one GET to it, and its response's body detached."""
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        async with HttpClient() as http, \
                http.stream("GET", f"http://127.0.0.1:{server.port}/blob") as resp:
            body = resp.detach_body()
            assert body is not None
            yield resp, body
        server.release.set()
        nursery.cancel_scope.cancel()


def _read_all(body: DetachedBody) -> bytes:
    out = bytearray()
    while chunk := body.read(65536):
        out += chunk
    return bytes(out)


async def test_body_read_in_a_thread_and_connection_reused() -> None:
    server = _Server()
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        url = f"http://127.0.0.1:{server.port}/blob"
        async with HttpClient() as http:
            for _ in range(2):
                async with http.stream("GET", url) as resp:
                    body = resp.detach_body()
                    assert body is not None
                    assert body.length == len(BODY)
                    data = await trio.to_thread.run_sync(_read_all, body)
                    await resp.reattach(body)
                assert data == BODY
                assert body.remaining == 0
                assert body.error is None
        assert server.requests == 2
        assert server.connections == 1  # the second request reused the connection
        nursery.cancel_scope.cancel()


async def test_abort_wakes_a_read_blocked_on_a_stalled_peer() -> None:
    failed: list[BaseException] = []
    async with _detached(_Server(send=4096)) as (resp, body):
        sent_read = trio.Event()

        def reader() -> None:
            got = 0
            try:
                while got < 4096:
                    got += len(body.read(4096 - got))
                trio.from_thread.run_sync(sent_read.set)
                _read_all(body)  # blocks: the peer sends no more
            except HttpError as exc:
                failed.append(exc)

        with trio.fail_after(10):
            async with trio.open_nursery() as inner:
                inner.start_soon(trio.to_thread.run_sync, reader)
                await sent_read.wait()
                await trio.sleep(0.05)  # (into its recv: abort must wake it there too)
                body.abort()
        await resp.reattach(body)  # incomplete: the connection is closed
        body.close()
    assert len(failed) == 1
    assert "aborted" in str(failed[0])


async def test_peer_hanging_up_early_is_an_error() -> None:
    async with _detached(_Server(send=1000, hang_up=True)) as (resp, body):
        with pytest.raises(HttpError, match=f"peer closed connection .*received 1000 "
                           f"bytes, expected {len(BODY)}"):
            await trio.to_thread.run_sync(_read_all, body)
        await resp.reattach(body)
        body.close()
