"""The CLI's engine client: clear errors without an engine, no tracebacks; the HTTP
framings it reads (Content-Length, chunked, 1xx) over one kept-alive connection."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pycompose.client import EngineNotRunning, connect
from pycompose.errors import NotRootError
from pycompose.paths import HostPaths


def paths(tmp_path: Path) -> HostPaths:
    return HostPaths(root=tmp_path, socket=tmp_path / "engine.sock", instance="")


def test_a_user_who_is_not_root_is_told_so(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(NotRootError, match="pycompose needs root"):
        connect(paths(tmp_path))


def test_without_autostart_the_missing_engine_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineNotRunning, match="start one with `pycompose engine`"):
        connect(paths(tmp_path), autostart=False)


# -- HTTP framing, against a server that answers with scripted bytes -----------------

async def _scripted(path: Path, answers: list[bytes], requests: list[bytes],
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept one connection; for each request (read up to its empty line and body),
    send the next answer in 3-byte pieces, so every parser step sees partial data."""
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await listener.bind(str(path))
    listener.listen(1)
    task_status.started()
    conn, _ = await listener.accept()
    with conn, listener:
        buf = b""
        for answer in answers:
            while b"\r\n\r\n" not in buf:
                buf += await conn.recv(4096)
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += await conn.recv(4096)
            requests.append(head + b"\r\n\r\n" + buf[:length])
            buf = buf[length:]
            for i in range(0, len(answer), 3):
                await conn.send(answer[i:i + 3])


async def test_framings_over_one_kept_alive_connection(tmp_path: Path,
                                                       nursery: trio.Nursery) -> None:
    from pycompose.client import EngineClient

    sock = tmp_path / "api.sock"
    requests: list[bytes] = []
    answers = [
        # an informational answer first, then JSON with Content-Length
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
        b'{"a": [1]}\n',
        # a chunked ndjson stream with a chunk extension and a trailer
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8;x=y\r\n{\"i\":0}\n\r\n"
        b"10\r\n{\"i\":1}\n{\"i\":2}\n\r\n"
        b"0\r\nX-Trailer: 1\r\n\r\n",
        # an error answer
        b"HTTP/1.1 409 Conflict\r\nContent-Length: 27\r\n\r\n"
        b'{"message": "it is in use"}',
    ]
    await nursery.start(_scripted, sock, answers, requests)

    def call() -> list[object]:
        from pycompose.client import APIError

        with EngineClient(HostPaths(root=tmp_path, socket=sock, instance="")) as c:
            out: list[object] = [c.post("/x", {"k": "v"})]
            out.append(list(c.stream("GET", "/s")))
            try:
                c.get("/e", all=True)
            except APIError as exc:
                out.append((exc.status, exc.message))
            return out

    with trio.fail_after(10):
        got = await trio.to_thread.run_sync(call)
    assert got == [{"a": [1]}, [{"i": 0}, {"i": 1}, {"i": 2}], (409, "it is in use")]
    assert requests[0].startswith(b"POST /x HTTP/1.1\r\n")
    assert requests[0].endswith(b'\r\n\r\n{"k": "v"}')
    assert requests[2].startswith(b"GET /e?all=1 HTTP/1.1\r\n")


async def test_connect_sends_the_first_request_on_its_probe_connection(
        tmp_path: Path, nursery: trio.Nursery) -> None:
    """``connect`` checks that an engine listens by connecting; that connection carries the
    first request (the scripted server accepts only one), no second connect."""
    requests: list[bytes] = []
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    await nursery.start(_scripted, tmp_path / "engine.sock", [answer], requests)

    def call() -> object:
        with connect(paths(tmp_path), autostart=False) as client:
            return client.get("/_ping")

    with trio.fail_after(10):
        got = await trio.to_thread.run_sync(call)
    assert got == {}
    assert requests[0].startswith(b"GET /_ping HTTP/1.1\r\n")


# -- URLs: the client's own percent-encoding, read back by the engine's parser -------

QUOTED = ["web", "my app", "a/b", "100%", "ü-ñ", "é€😀", "~._-", "?&=#+", "", "x y+z"]


@pytest.mark.parametrize("text", QUOTED)
def test_path_segments_are_quoted_as_urllib_does(text: str) -> None:
    from urllib.parse import quote

    from pycompose.client import q

    assert q(text) == quote(text, safe="")


def test_query_strings_read_back_as_they_were_given() -> None:
    from urllib.parse import parse_qs, urlsplit

    from pycompose.client import _url

    url = _url("/images/create", {
        "fromImage": "registry.test:5000/my app/ü:1", "tag": None, "all": True, "quiet": False,
        "filters": {"label": ["a=b c"]}, "service": ["web", "db&1"], "n": 3,
    })
    parts = urlsplit(url)
    assert parts.path == "/images/create"
    assert parse_qs(parts.query, keep_blank_values=True) == {
        "fromImage": ["registry.test:5000/my app/ü:1"], "all": ["1"], "quiet": ["0"],
        "filters": ['{"label": ["a=b c"]}'], "service": ["web", "db&1"], "n": ["3"],
    }
    assert _url("/x", {"tag": None}) == "/x"
    assert _url("/x", None) == "/x"


# -- where the state and the socket are ----------------------------------------------

def test_host_paths_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    from pycompose.paths import host_paths

    default = host_paths({})
    assert (default.root, default.socket) == (Path("/var/lib/pycompose"),
                                              Path("/run/pycompose/engine.sock"))
    # The default root however it is spelt: the default socket (engine and CLI agree).
    assert host_paths({"PYCOMPOSE_ROOT": "/var/lib//pycompose/./"}).socket_path == \
        "/run/pycompose/engine.sock"
    monkeypatch.chdir(tmp_path)
    mine = host_paths({"PYCOMPOSE_ROOT": "state/../state2/", "PYCOMPOSE_INSTANCE": "t1"})
    assert mine.root_path == str(tmp_path / "state2")
    assert mine.socket_path == str(tmp_path / "state2" / "engine.sock")
    assert mine.root == tmp_path / "state2"
    assert mine.socket == tmp_path / "state2/engine.sock"
    assert mine.host_tag == "pycompose_t1"
    assert mine == HostPaths(tmp_path / "state2", tmp_path / "state2/engine.sock", "t1")
    assert len({mine, host_paths({"PYCOMPOSE_ROOT": str(tmp_path / "state2"),
                                  "PYCOMPOSE_INSTANCE": "t1"})}) == 1
    from pycompose.errors import UsageError

    with pytest.raises(UsageError, match="PYCOMPOSE_INSTANCE='Bad!'"):
        host_paths({"PYCOMPOSE_INSTANCE": "Bad!"})
