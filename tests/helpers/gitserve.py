"""Git repositories served on 127.0.0.1 for ADD <git repository> tests: the git
protocol (``git daemon --inetd`` per connection, started here and ended by PID) and
git's dumb HTTP (an http.server); and what a git build may leave behind."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pycompose.runtime.build import Builder
from pycompose.runtime.images import ImageStore

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
           "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def git(*args: str, cwd: Path) -> str:
    env = {**GIT_ENV, "HOME": str(cwd)}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True, timeout=60)
    return done.stdout.strip()


class Listener:
    """A TCP listener on 127.0.0.1 that hands each connection to ``serve(conn)``;
    what it starts is ended by PID when it closes."""

    def __init__(self, serve: Callable[[Listener, socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.serve = serve
        self.procs: list[subprocess.Popen[bytes]] = []
        self.held: list[socket.socket] = []
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connected.set()
            self.serve(self, conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join()
        for conn in self.held:
            conn.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _git_daemon(base: Path, listener: Listener, conn: socket.socket) -> None:
    with conn:
        listener.procs.append(subprocess.Popen(
            ["git", "daemon", "--inetd", "--export-all", f"--base-path={base}", str(base)],
            stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.DEVNULL,
            env={**GIT_ENV, "HOME": str(base)}))


def hang(listener: Listener, conn: socket.socket) -> None:
    listener.held.append(conn)  # accepted, never answered


@contextlib.contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """``git://127.0.0.1:<port>``: the repositories under ``base``."""
    listener = Listener(functools.partial(_git_daemon, base))
    try:
        yield f"git://127.0.0.1:{listener.port}"
    finally:
        listener.close()


@contextlib.contextmanager
def dumb_http(base: Path) -> Iterator[str]:
    """``http://127.0.0.1:<port>``: git's dumb HTTP for the repositories under ``base``."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(base)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def git_processes(state_root: Path) -> list[int]:
    """git processes working in (or with HOME in) the state root."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        program = os.path.basename(cmdline.split(b"\0")[0])
        if program.startswith(b"git") and str(state_root).encode() in cmdline + environ:
            found.append(int(pid))
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def stored(builder: Builder, store: ImageStore) -> tuple[list[str], list[str], list[str]]:
    """The images, layers and build cache entries there are (a failed build adds none)."""
    cache = builder.cache_dir
    return (sorted(image.id for image in store.list()),
            sorted(os.listdir(store.root / "layers")),
            sorted(os.listdir(cache)) if cache.exists() else [])
