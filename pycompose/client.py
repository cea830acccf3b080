"""The CLI's client for the engine API: blocking HTTP/1.1 over a unix socket, no trio.

``connect()`` returns an :class:`EngineClient`; when nothing answers on the
socket it starts an engine (detached, in its own session, output to
``<root>/engine.log``) and waits until that engine reports readiness on a pipe
(bounded by a deadline) — no sleep-and-retry loop. Two CLIs racing to start
the engine are fine: the loser's engine finds the lock taken and exits, and
its CLI connects to the winner.
"""

from __future__ import annotations

import _socket
import errno
import os
import select
import sys
import time

from pycompose.errors import EngineError, NotRootError
from pycompose.paths import HostPaths, host_paths

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path
    from typing import Any

START_TIMEOUT = 30.0
"""Seconds to wait for a freshly started engine to listen."""

REGISTRY_ENV = ("PYCOMPOSE_REGISTRY_MIRRORS", "PYCOMPOSE_INSECURE_REGISTRIES",
                "DOCKER_CONFIG", "HOME")
"""The caller's environment a pull in the engine honours (``RegistryConfig.load`` reads
these); the CLI sends them along with ``POST /images/create``."""


class EngineNotRunning(EngineError):
    """Nothing answers on the engine socket (and autostart was not asked for)."""


class APIError(EngineError):
    """The engine answered with an error status; ``message`` is its explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Connection:
    """One kept-alive HTTP/1.1 connection over the unix socket.

    The engine answers in two framings only (``engine/http.py``): a JSON body with
    ``Content-Length``, or a chunked ndjson stream; reading those is a few lines here.
    An HTTP library costs more to import than a short command's whole work (h11 some
    5 ms, ``http.client`` with ``email`` more), and ``up`` on an unchanged stack is
    mostly start-up."""

    def __init__(self, path: str, timeout: float | None,
                 sock: _socket.socket | None = None) -> None:
        """Connect to ``path``, or use ``sock``, already connected to it."""
        if sock is not None:
            sock.settimeout(timeout)
            self.sock = sock
        else:
            self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                self.sock.settimeout(timeout)
                self.sock.connect(path)
            except BaseException:
                self.sock.close()
                raise
        self.buf = b""
        self.dead = False  # answered without framing: not reusable

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the engine closed the connection")
        self.buf += data

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise ConnectionResetError("the engine's answer has an overlong line")
            self._fill()
        line, self.buf = self.buf[:end], self.buf[end + 2:]
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _head(self) -> tuple[int, dict[bytes, bytes]]:
        """The status and headers of the next final (non-1xx) answer."""
        while True:
            line = self._line()
            version, _, rest = line.partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise ConnectionResetError(f"not an HTTP answer from the engine: {line[:80]!r}")
            headers: dict[bytes, bytes] = {}
            while line := self._line():
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if not 100 <= int(code) < 200:
                return int(code), headers

    def request(self, method: str, url: str, data: bytes | None) -> tuple[int, Any]:
        """Send a request; return the status and an iterator over the body's chunks."""
        head = f"{method} {url} HTTP/1.1\r\nHost: localhost\r\n"
        if data is not None:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(data or b'')}\r\n\r\n"
        self.sock.sendall(head.encode() + (data or b""))
        status, headers = self._head()
        chunked = headers.get(b"transfer-encoding", b"").lower().endswith(b"chunked")
        length = headers.get(b"content-length")
        if method == "HEAD" or status in (204, 304):
            length = b"0"

        def body() -> Any:
            if chunked:
                while size := int(self._line().split(b";")[0], 16):
                    yield self._take(size)
                    self._take(2)  # the CRLF after each chunk
                while self._line():  # trailers, up to the empty line
                    pass
                return
            if length is None:  # no framing: the body ends with the connection
                self.dead = True
                while True:
                    if self.buf:
                        yield self._take(len(self.buf))
                    try:
                        self._fill()
                    except ConnectionResetError:
                        return
            left = int(length)
            while left:
                if not self.buf:
                    self._fill()
                piece = self._take(min(left, len(self.buf)))
                left -= len(piece)
                yield piece

        return status, body()


_MAX_HEAD = 64 * 1024


# RFC 3986's unreserved characters: what a URL carries as it is.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _quote(text: str) -> str:
    """Percent-encode ``text`` (UTF-8) but for the unreserved characters, as
    ``urllib.parse.quote(text, safe="")`` does; that module's import (its named tuples)
    would cost every command's start about 2 ms."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def _url(path: str, query: Mapping[str, Any] | None) -> str:
    """``path`` with ``query`` as a query string: a dict value as JSON, booleans as
    ``1``/``0``, a list or tuple as the key repeated, ``None`` left out."""
    if not query:
        return path
    pairs: list[str] = []
    for key, value in query.items():
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else (value,):
            text = (_dumps(item).decode() if isinstance(item, dict) else
                    "1" if item is True else "0" if item is False else str(item))
            pairs.append(f"{_quote(str(key))}={_quote(text)}")
    return f"{path}?{'&'.join(pairs)}" if pairs else path


def _dumps(value: Any) -> bytes:
    # json (with the re and enum it imports, ~6 ms) loads on first use, not at import: a
    # request without a body, such as a pull, goes out before it.
    import json

    return json.dumps(value).encode()


def _loads(raw: bytes) -> Any:
    import json

    return json.loads(raw)


def q(part: str) -> str:
    """Quote one path segment (container and project names)."""
    return _quote(part)


class EngineClient:
    def __init__(self, paths: HostPaths, *, timeout: float | None = 60.0,
                 sock: _socket.socket | None = None) -> None:
        """``sock``: a connection to the engine to use first (``connect``'s probe)."""
        self.paths = paths
        self.timeout = timeout
        self._conn: _Connection | None = (
            None if sock is None else _Connection(paths.socket_path, timeout, sock))

    # ---- plumbing

    def _connection(self) -> _Connection:
        if self._conn is not None and self._conn.dead:
            self.close()
        if self._conn is None:
            self._conn = _Connection(self.paths.socket_path, self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, method: str, path: str, body: Any, query: Mapping[str, Any] | None,
              stream: bool) -> tuple[int, Any]:
        data = None if body is None else _dumps(body)
        url = _url(path, query)
        for attempt in (1, 2):
            try:
                conn = self._connection()
                conn.sock.settimeout(None if stream else self.timeout)
                return conn.request(method, url, data)
            except (ConnectionResetError, BrokenPipeError) as exc:
                # A kept-alive connection the engine closed meanwhile: reconnect once.
                self.close()
                if attempt == 2:
                    raise EngineError(f"the engine closed the connection during {method} "
                                      f"{path}: {exc}") from None
            except TimeoutError:
                self.close()
                raise EngineError(f"the engine did not answer {method} {path} within "
                                  f"{self.timeout:g} s") from None
            except OSError as exc:
                self.close()
                raise _connect_error(self.paths, exc) from None
            except Exception:
                self.close()  # a protocol error leaves the connection unusable
                raise
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, body: Any = None,
                query: Mapping[str, Any] | None = None) -> Any:
        """One request, the decoded JSON answer; an error status raises :class:`APIError`."""
        status, chunks = self._send(method, path, body, query, stream=False)
        try:
            raw = b"".join(chunks)
        except (OSError, ConnectionResetError) as exc:
            self.close()
            raise EngineError(f"{method} {path}: {exc}") from None
        value = _loads(raw) if raw else None
        if status >= 400:
            message = value.get("message") if isinstance(value, dict) else None
            raise APIError(status, message or f"{method} {path}: HTTP {status}")
        return value

    def stream(self, method: str, path: str, body: Any = None,
               query: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """A newline-delimited JSON stream, one decoded value at a time."""
        yield from self.open_stream(method, path, body, query)

    def open_stream(self, method: str, path: str, body: Any = None,
                    query: Mapping[str, Any] | None = None) -> NDJSONStream:
        """Like :meth:`stream`, but the request is sent now, and the answer can be waited
        for with ``select`` on :meth:`NDJSONStream.fileno` (several streams at once, each
        on its own client)."""
        status, chunks = self._send(method, path, body, query, stream=True)
        return NDJSONStream(self, method, path, status, chunks)

    def pull(self, reference: str, *, platform: str | None = None,
             policy: str | None = None) -> NDJSONStream:
        """Ask the engine to pull ``reference`` (``POST /images/create``) with this
        process's registry settings (``REGISTRY_ENV``); its progress stream."""
        env = [f"{name}={os.environ[name]}" for name in REGISTRY_ENV if name in os.environ]
        return self.open_stream("POST", "/images/create", None, {
            "fromImage": reference, "platform": platform, "policy": policy, "env": env})

    def attach(self, path: str, body: Any, *, stdin: int | None, stdout: Any, stderr: Any,
               tty: bool = False, on_message: Any = None) -> dict[str, Any]:
        """An upgraded (101) connection for interactive exec, in frames both ways (see
        ``ProjectManager._exec_attached``): ``stdin`` (an fd, or None) goes to the process,
        its end as an end frame; output frames go to ``stdout``/``stderr`` (binary files).
        With ``tty`` the local terminal is put in raw mode for the session and its size
        follows SIGWINCH. Returns the final ``{"exit_code": n}``."""
        import contextlib
        import selectors
        import signal
        import socket

        def frame(kind: int, payload: bytes) -> bytes:
            return bytes([kind, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

        def size() -> bytes:
            cols, rows = os.get_terminal_size(stdin if stdin is not None else 0)
            return _dumps({"rows": rows, "cols": cols})

        data = _dumps(body)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.paths.socket_path)
        except OSError as exc:
            sock.close()
            raise _connect_error(self.paths, exc) from None
        saved = None
        wake_r, wake_w = socket.socketpair()
        old_wakeup = old_winch = None
        try:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: Upgrade\r\n"
                f"Upgrade: pycompose-stream\r\n\r\n".encode() + data)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise EngineError(f"the engine closed the connection during POST {path}")
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                # An ordinary answer (an error): the rest of the body is JSON.
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                while len(buf) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                value = _loads(buf[:length]) if length else {}
                raise APIError(status, value.get("message") or f"POST {path}: HTTP {status}")
            sel = selectors.PollSelector()  # poll, unlike epoll, takes files and /dev/null
            sel.register(sock, selectors.EVENT_READ, "sock")
            if stdin is not None:
                sel.register(stdin, selectors.EVENT_READ, "stdin")
                if tty:
                    import termios
                    import tty as ttymod

                    saved = termios.tcgetattr(stdin)
                    ttymod.setraw(stdin)
                    wake_r.setblocking(False)
                    wake_w.setblocking(False)
                    old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
                    old_winch = signal.signal(signal.SIGWINCH, lambda *_: None)
                    sel.register(wake_r, selectors.EVENT_READ, "winch")
                    sock.sendall(frame(4, size()))
            else:
                sock.sendall(frame(5, b""))
            result: dict[str, Any] | None = None
            while result is None:
                while len(buf) >= 8:
                    n = int.from_bytes(buf[4:8], "big")
                    if len(buf) < 8 + n:
                        break
                    kind, payload, buf = buf[0], buf[8:8 + n], buf[8 + n:]
                    if kind == 1:
                        stdout.write(payload)
                        stdout.flush()
                    elif kind == 2:
                        stderr.write(payload)
                        stderr.flush()
                    elif kind == 6:
                        if on_message is not None:
                            on_message(_loads(payload))
                    else:
                        result = _loads(payload)
                        break
                if result is not None:
                    break
                for key, _ in sel.select():
                    if key.data == "stdin":
                        chunk = os.read(key.fd, 65536)
                        if chunk:
                            sock.sendall(frame(0, chunk))
                        else:
                            sel.unregister(key.fd)
                            sock.sendall(frame(5, b""))
                    elif key.data == "winch":
                        with contextlib.suppress(BlockingIOError):
                            wake_r.recv(512)
                        sock.sendall(frame(4, size()))
                    else:
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise EngineError("the engine closed the exec session early")
                        buf += chunk
            sel.close()
            return result
        finally:
            if saved is not None and stdin is not None:
                import termios

                termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            if old_winch is not None:
                signal.signal(signal.SIGWINCH, old_winch)
            if old_wakeup is not None:
                signal.set_wakeup_fd(old_wakeup)
            wake_r.close()
            wake_w.close()
            sock.close()

    # ---- a few conveniences

    def ping(self) -> bool:
        try:
            return bool(self.request("GET", "/_ping") == "OK")
        except EngineError:
            return False

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any = None, **query: Any) -> Any:
        return self.request("POST", path, body, query=query)


class NDJSONStream:
    """The values of one ndjson answer. :meth:`pending` says whether the next value may
    be had without waiting for the socket (bytes already read and not yet decoded)."""

    def __init__(self, client: EngineClient, method: str, path: str, status: int,
                 chunks: Iterator[bytes]) -> None:
        self._client = client
        self._conn = client._conn
        self._what = f"{method} {path}"
        self._status = status
        self._chunks = chunks
        self._buf = b""
        self._done = False

    def fileno(self) -> int:
        assert self._conn is not None
        return self._conn.sock.fileno()

    def pending(self) -> bool:
        return self._done or b"\n" in self._buf or bool(self._conn and self._conn.buf) \
            or self._status >= 400

    def __iter__(self) -> NDJSONStream:
        return self

    def __next__(self) -> Any:
        if self._status >= 400:
            raw = b"".join(self._chunks)
            value = _loads(raw) if raw else None
            message = value.get("message") if isinstance(value, dict) else None
            self._done = True
            raise APIError(self._status, message or f"{self._what}: HTTP {self._status}")
        while True:
            line, sep, rest = self._buf.partition(b"\n")
            if sep:
                self._buf = rest
                if line.strip():
                    return _loads(line)
                continue
            if self._done:
                if self._buf.strip():
                    line, self._buf = self._buf, b""
                    return _loads(line)
                raise StopIteration
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                self._done = True
            except (OSError, ConnectionResetError) as exc:
                self._client.close()
                raise EngineError(f"{self._what}: {exc}") from None
            except BaseException:
                self._client.close()  # a stream abandoned half-way cannot be reused
                raise

    def close(self) -> None:
        """Give up on the rest of the answer (the connection is dropped)."""
        if not self._done:
            self._client.close()
            self._done = True


def _connect_error(paths: HostPaths, exc: OSError) -> EngineError | NotRootError:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return NotRootError(
            f"permission denied on the engine socket {paths.socket_path}: "
            "pycompose runs containers and needs root (try sudo)"
        )
    if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
        return EngineNotRunning(f"no engine is listening on {paths.socket_path}")
    return EngineError(f"cannot reach the engine at {paths.socket_path}: {exc.strerror or exc}")


def _probe(paths: HostPaths) -> _socket.socket | OSError:
    """Try to connect once: the connection when an engine accepted it, else the error."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(5.0)
        sock.connect(paths.socket_path)
        return sock
    except OSError as exc:
        sock.close()
        return exc


def connect(paths: HostPaths | None = None, *, autostart: bool = True,
            timeout: float | None = 60.0) -> EngineClient:
    """A client for the engine of ``paths`` (from the environment by default), starting it
    when nothing answers and ``autostart`` is set."""
    paths = paths or host_paths()
    err = _probe(paths)
    if not isinstance(err, OSError):  # an engine answered: that connection serves first
        return EngineClient(paths, timeout=timeout, sock=err)
    if err.errno in (errno.EACCES, errno.EPERM) or (
            os.geteuid() != 0 and err.errno in (errno.ENOENT, errno.ECONNREFUSED)):
        raise NotRootError(
            f"pycompose needs root: its engine runs containers (namespaces, cgroups, "
            f"mounts) and listens on {paths.socket_path}, which only root may use; try sudo"
        )
    if err.errno not in (errno.ENOENT, errno.ECONNREFUSED):
        raise _connect_error(paths, err)
    if not autostart:
        raise EngineNotRunning(
            f"no engine is listening on {paths.socket_path}; start one with `pycompose engine`")
    start_engine(paths)
    return EngineClient(paths, timeout=timeout)


def start_engine(paths: HostPaths, *, timeout: float = START_TIMEOUT) -> int:
    """Start a detached engine for ``paths`` and wait until it listens; returns its pid.

    If another engine wins the race for the state root meanwhile, that one is used.
    """
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o711)
    log_path = paths.root / "engine.log"
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    env = dict(os.environ)
    env["PYCOMPOSE_ROOT"] = str(paths.root)
    env["PYCOMPOSE_INSTANCE"] = paths.instance
    # posix_spawn, not Popen: the engine outlives this process, and nothing here will
    # wait for it (its own session; init reaps it once the CLI has exited).
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.set_inheritable(write_fd, True)
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "pycompose", "engine", "--ready-fd", str(write_fd)],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(write_fd)
        os.close(log_fd)
    try:
        answer = _read_ready(read_fd, timeout)
    finally:
        os.close(read_fd)
    if answer == b"ready\n":
        return pid
    # No readiness: it died (e.g. lost the race for the lock) or is stuck.
    code = _exit_status(pid)
    probe = _probe(paths)
    if isinstance(probe, _socket.socket):
        probe.close()
        return pid if code is None else -1
    tail = _tail(log_path, 15)
    if code is None:
        raise EngineError(
            f"the engine did not become ready within {timeout:.0f} s; see {log_path}\n{tail}")
    raise EngineError(f"the engine exited with status {code} while starting; "
                      f"last lines of {log_path}:\n{tail}")


def _exit_status(pid: int) -> int | None:
    """The exit status of our child ``pid`` if it has exited (reaping it), else ``None``."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def _read_ready(fd: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break  # the engine closed the pipe without a word: it exited
        data += chunk
    return data


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("  " + line for line in lines[-n:])
