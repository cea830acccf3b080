"""The engine's HTTP layer over a real unix socket: routing, JSON, NDJSON streams, errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import trio

from pycompose.engine.http import (
    HTTPError,
    Request,
    Response,
    Router,
    Send,
    StreamResponse,
    serve_unix,
)


def make_router(state: dict[str, object]) -> Router:
    r = Router()

    async def echo(req: Request) -> Response:
        return Response({"params": req.params, "query": req.query, "body": req.json()})

    async def fail(_req: Request) -> Response:
        raise HTTPError(409, "container is running")

    async def boom(_req: Request) -> Response:
        raise RuntimeError("bug")

    async def stream(req: Request) -> StreamResponse:
        n = req.int_arg("n", 3) or 0

        async def produce(send: Send) -> None:
            for i in range(n):
                await send({"i": i})

        return StreamResponse(produce)

    async def forever(_req: Request) -> StreamResponse:
        async def produce(send: Send) -> None:
            await send({"hello": True})
            try:
                await trio.sleep_forever()
            finally:
                state["cancelled"] = True
                ev = state["gone"]
                assert isinstance(ev, trio.Event)
                ev.set()

        return StreamResponse(produce)

    r.add("POST", "/things/{id}/echo", echo)
    r.add("GET", "/fail", fail)
    r.add("GET", "/boom", boom)
    r.add("GET", "/stream", stream)
    r.add("GET", "/forever", forever)
    return r


async def raw_request(path: Path, data: bytes) -> bytes:
    stream = await trio.open_unix_socket(str(path))
    async with stream:
        await stream.send_all(data)
        out = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return out
            out += chunk


@pytest.fixture
async def server(tmp_path: Path, nursery: trio.Nursery) -> tuple[Path, dict[str, object]]:
    state: dict[str, object] = {"gone": trio.Event()}
    sock = tmp_path / "api.sock"
    await nursery.start(serve_unix, sock, make_router(state))
    return sock, state


def _client(sock: Path):  # sync client used from a thread, as the CLI uses it
    from pycompose.client import EngineClient
    from pycompose.paths import HostPaths

    return EngineClient(HostPaths(root=sock.parent, socket=sock, instance=""))


async def test_socket_mode_is_0600(server: tuple[Path, dict[str, object]]) -> None:
    sock, _ = server
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600


async def test_json_roundtrip_with_params_and_query(server: tuple[Path, dict[str, object]]) -> None:
    sock, _ = server

    def call() -> object:
        with _client(sock) as c:
            first = c.request("POST", "/things/a%2Fb/echo", {"x": [1, 2]}, query={"all": True})
            second = c.request("POST", "/things/2/echo")  # same kept-alive connection
            return first, second

    with trio.fail_after(10):
        first, second = await trio.to_thread.run_sync(call)
    assert first == {"params": {"id": "a/b"}, "query": {"all": ["1"]}, "body": {"x": [1, 2]}}
    assert second["params"] == {"id": "2"}


async def test_errors_are_docker_shaped(server: tuple[Path, dict[str, object]]) -> None:
    sock, _ = server
    from pycompose.client import APIError

    def call(method: str, path: str) -> APIError:
        with _client(sock) as c, pytest.raises(APIError) as info:
            c.request(method, path)
        return info.value

    with trio.fail_after(10):
        e409 = await trio.to_thread.run_sync(call, "GET", "/fail")
        e404 = await trio.to_thread.run_sync(call, "GET", "/nothing")
        e405 = await trio.to_thread.run_sync(call, "DELETE", "/fail")
        e500 = await trio.to_thread.run_sync(call, "GET", "/boom")
    assert (e409.status, e409.message) == (409, "container is running")
    assert e404.status == 404
    assert "/nothing" in e404.message
    assert e405.status == 405
    assert e500.status == 500
    assert "RuntimeError: bug" in e500.message


async def test_bad_json_body_is_400(server: tuple[Path, dict[str, object]]) -> None:
    sock, _ = server
    with trio.fail_after(10):
        out = await raw_request(sock, b"POST /things/1/echo HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 3\r\nConnection: close\r\n\r\n{x}")
    assert out.startswith(b"HTTP/1.1 400")
    assert b"not valid JSON" in out


async def test_garbage_request_line_is_rejected(server: tuple[Path, dict[str, object]]) -> None:
    sock, _ = server
    with trio.fail_after(10):
        out = await raw_request(sock, b"NONSENSE\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")


async def test_ndjson_stream(server: tuple[Path, dict[str, object]]) -> None:
    sock, _ = server

    def call() -> list[object]:
        with _client(sock) as c:
            items = list(c.stream("GET", "/stream", query={"n": 5}))
            items.append(c.request("POST", "/things/9/echo")["params"])  # connection still usable
            return items

    with trio.fail_after(10):
        items = await trio.to_thread.run_sync(call)
    assert items == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}, {"i": 4}, {"id": "9"}]


async def test_client_leaving_cancels_the_producer(server: tuple[Path, dict[str, object]]) -> None:
    sock, state = server
    stream = await trio.open_unix_socket(str(sock))
    await stream.send_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    with trio.fail_after(10):
        while b'{"hello":true}' not in got:
            got += await stream.receive_some(4096)
        await stream.aclose()
        gone = state["gone"]
        assert isinstance(gone, trio.Event)
        await gone.wait()
    assert state["cancelled"] is True
    assert json.loads(got.split(b"\r\n\r\n", 1)[1].split(b"\r\n")[1]) == {"hello": True}


async def test_a_failing_stream_reports_in_band_and_the_server_lives_on(
        tmp_path: Path, nursery: trio.Nursery) -> None:
    r = Router()

    async def bad(_req: Request) -> StreamResponse:
        async def produce(send: Send) -> None:
            await send({"n": 1})
            raise ValueError("broken producer")

        return StreamResponse(produce)

    async def ok(_req: Request) -> Response:
        return Response("fine")

    r.add("GET", "/bad", bad)
    r.add("GET", "/ok", ok)
    sock = tmp_path / "s.sock"
    await nursery.start(serve_unix, sock, r)

    def call() -> tuple[list[object], object]:
        with _client(sock) as c:
            items = list(c.stream("GET", "/bad"))
        with _client(sock) as c:
            return items, c.request("GET", "/ok")

    with trio.fail_after(10):
        items, after = await trio.to_thread.run_sync(call)
    assert items == [{"n": 1}, {"type": "error",
                                "message": "internal error: ValueError: broken producer"}]
    assert after == "fine"
