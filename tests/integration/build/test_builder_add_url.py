"""ADD <url> from a local HTTP server (127.0.0.1, started by the test): names, modes,
mtimes, checksums, redirects, no extraction, the cache, and errors."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pycompose.runtime.build import Builder, BuildError, BuildOptions, DockerfileError
from pycompose.runtime.images import Image, ImageStore
from tests.helpers.builds import leftovers

pytestmark = pytest.mark.root

MTIME = 1_600_000_000  # 2020-09-13, sent as Last-Modified


def _tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("inside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"in\n"))
    return buf.getvalue()


class Files:
    """What the server serves, and the paths it was asked for."""

    def __init__(self) -> None:
        self.content = {"/files/hello.txt": b"hello\n", "/files/archive.tar.gz": _tarball(),
                        "/dir/": b"index\n"}
        self.requests: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Files]]:
    files = Files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            files.requests.append(self.path)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/hop")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/hop":
                self.send_response(301)
                self.send_header("Location", f"http://127.0.0.1:{port}/files/hello.txt")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/loop":
                self.send_response(307)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path in files.content:
                body = files.content[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Last-Modified", formatdate(MTIME, usegmt=True))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def top_layer(image: Image) -> Path:
    return image.layer_dirs[-1]


async def test_add_url(server: tuple[str, Files], store: ImageStore, state_root: Path,
                       tmp_path: Path) -> None:
    url, files = server
    lines: list[str] = []
    builder = Builder(store, state_root, log=lines.append)
    good = hashlib.sha256(b"hello\n").hexdigest()
    dockerfile = (
        "FROM busybox\n"
        f"ADD {url}/files/hello.txt /data/\n"
        f"ADD --chown=1000:1001 --chmod=0640 {url}/redirect /data/renamed.txt\n"
        f"ADD {url}/files/archive.tar.gz /arch/\n"
        f"ADD --checksum=sha256:{good} {url}/files/hello.txt /checked\n")
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    layers = image.layer_dirs[-4:]
    hello = layers[0] / "data" / "hello.txt"
    st = os.stat(hello)
    assert hello.read_text() == "hello\n"
    assert stat.S_IMODE(st.st_mode) == 0o600  # as Docker
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert int(st.st_mtime) == MTIME  # from Last-Modified
    renamed = layers[1] / "data" / "renamed.txt"
    st = os.stat(renamed)
    assert renamed.read_text() == "hello\n"  # two redirects followed
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1000, 1001)
    archive = layers[2] / "arch" / "archive.tar.gz"
    assert archive.read_bytes() == files.content["/files/archive.tar.gz"]  # not extracted
    assert not (layers[2] / "arch" / "inside.txt").exists()
    assert (layers[3] / "checked").read_text() == "hello\n"
    assert leftovers(state_root) == []

    # A rebuild downloads again; the same content is a cache hit.
    before = len(files.requests)
    lines.clear()
    again = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    assert again.id == image.id
    assert len(files.requests) - before == 6  # 4 files, 2 redirects
    assert sum(line.endswith("CACHED") for line in lines) == 4
    # Changed content: that step and those after it run again.
    files.content["/files/archive.tar.gz"] = b"not a tarball any more\n"
    lines.clear()
    changed = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    assert changed.id != image.id
    assert sum(line.endswith("CACHED") for line in lines) == 2
    assert leftovers(state_root) == []


async def test_add_url_errors(server: tuple[str, Files], store: ImageStore, state_root: Path,
                              tmp_path: Path) -> None:
    url, _ = server
    builder = Builder(store, state_root)
    wrong = "0" * 64
    good = hashlib.sha256(b"hello\n").hexdigest()
    cases = (
        (f"ADD --checksum=sha256:{wrong} {url}/files/hello.txt /x", BuildError,
         rf":2: ADD {url}/files/hello.txt: checksum mismatch: expected sha256:{wrong}, "
         rf"got sha256:{good}"),
        (f"ADD {url}/missing /x", BuildError, rf":2: ADD {url}/missing: HTTP 404"),
        (f"ADD {url}/loop /x", BuildError, r":2: ADD .*/loop: more than 10 redirects"),
        ("ADD http://127.0.0.1:1/x /x", BuildError, r":2: ADD http://127.0.0.1:1/x: .*connect"),
        (f"ADD {url}/repo.git /src", BuildError,
         rf":2: ADD {url}/repo.git: cannot read the repository {url}/repo.git"),
        (f"COPY {url}/repo.git /src", DockerfileError, r":2: COPY does not take Git sources"),
        (f"COPY {url}/files/hello.txt /x", DockerfileError, r":2: COPY does not take URLs"),
        ("ADD --checksum=sha256:abc a.txt /x", DockerfileError, r":2: ADD --checksum needs"),
        (f"ADD {url}/dir/ /dest/", DockerfileError, r":2: ADD .*cannot name the file"),
    )
    (tmp_path / "a.txt").write_text("a")
    for line, kind, message in cases:
        with pytest.raises(kind, match=message):
            await builder.build(BuildOptions(context=tmp_path,
                                             dockerfile_inline=f"FROM busybox\n{line}\n"))
    assert leftovers(state_root) == []
