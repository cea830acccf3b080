"""Container logs in Docker's json-file format: writing (supervisor) and reading.

One JSON object a line, ``{"log": "text\\n", "stream": "stdout", "time":
"2026-11-22T02:41:00.123456789Z"}``. A line longer than 16 KiB is split into
several entries, as Docker does (only the last one ends in ``\\n``).

Rotation by size: when the current file would pass ``max_size`` it becomes
``<file>.1`` (older ones shift to ``.2`` … ``.<max_file-1>``, the oldest is
dropped); with ``max_file == 1`` the file is truncated instead.

Readers: :func:`read_logs` (tail, since, until) for ``logs``, and the async
:func:`follow` for ``logs -f``, which waits on inotify (never a sleep loop)
and follows the file across rotations.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as _dt
import json
import os
import struct
import time
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

SPLIT_AT = 16 * 1024


def rfc3339_nano(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    sec, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z"


def parse_time(value: str | float | _dt.datetime) -> int:
    """RFC 3339 (nanoseconds allowed), a datetime or Unix seconds → Unix nanoseconds."""
    if isinstance(value, (int, float)):
        return int(value * 1_000_000_000)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    frac_ns = 0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac_ns = int((digits + "000000000")[:9])
        text = head + rest
    parsed = _dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + frac_ns


class LogWriter:
    """Appends a container's output to its json-file log (used by the supervisor)."""

    def __init__(self, path: str, max_size: int | None = None, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def feed(self, stream: str, data: bytes) -> None:
        """Output read from ``stream``; complete lines are written at once."""
        buf = self._partial[stream] + data
        lines = buf.split(b"\n")
        self._partial[stream] = lines.pop()
        now = rfc3339_nano()
        out = [self._entry(stream, line + b"\n", now) for line in lines]
        rest = self._partial[stream]
        while len(rest) >= SPLIT_AT:
            out.append(self._entry(stream, rest[:SPLIT_AT], now))
            rest = rest[SPLIT_AT:]
        self._partial[stream] = rest
        if out:
            self._write_entries(out)

    def flush(self, stream: str | None = None) -> None:
        """Write a pending partial line (at EOF of the stream)."""
        for name in [stream] if stream else list(self._partial):
            if self._partial[name]:
                self._write(self._entry(name, self._partial[name], rfc3339_nano()))
                self._partial[name] = b""

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def _entry(stream: str, text: bytes, now: str) -> bytes:
        return (json.dumps({"log": text.decode("utf-8", "replace"), "stream": stream,
                            "time": now}, ensure_ascii=False, separators=(",", ":"))
                + "\n").encode()

    def _write_entries(self, entries: list[bytes]) -> None:
        """One write per batch, cut where the file must rotate."""
        batch: list[bytes] = []
        size = self._size
        for entry in entries:
            if self.max_size and size and size + len(entry) > self.max_size:
                if batch:
                    self._write(b"".join(batch))
                    batch = []
                self._rotate()
                size = 0
            batch.append(entry)
            size += len(entry)
        if batch:
            self._write(b"".join(batch))

    def _write(self, data: bytes) -> None:
        if self.max_size and self._size and self._size + len(data) > self.max_size:
            self._rotate()
        os.write(self._fd, data)
        self._size += len(data)

    def _rotate(self) -> None:
        if self.max_file == 1:
            os.ftruncate(self._fd, 0)
            self._size = 0
            return
        os.close(self._fd)
        for n in range(self.max_file - 1, 0, -1):
            src = self.path if n == 1 else f"{self.path}.{n - 1}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{n}")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                           0o640)
        self._size = 0


@dataclass(frozen=True)
class LogEntry:
    stream: str
    time: str  #: RFC 3339 nano, as written
    text: str  #: with its trailing newline when the line was complete

    @property
    def time_ns(self) -> int:
        return parse_time(self.time)

    def format(self, timestamps: bool = False) -> str:
        return f"{self.time} {self.text}" if timestamps else self.text


def log_files(path: str) -> list[str]:
    """The rotated files then the current one, oldest first."""
    files = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        files.append(f"{path}.{n}")
        n += 1
    files.reverse()
    if os.path.exists(path):
        files.append(path)
    return files


def _parse(lines: Iterable[bytes]) -> Iterable[LogEntry]:
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            yield LogEntry(obj["stream"], obj["time"], obj["log"])
        except (ValueError, KeyError):
            continue  # a torn line at the end of a crash: skip, as Docker does


def read_logs(path: str | os.PathLike[str], *, tail: int | None = None,
              since: str | float | _dt.datetime | None = None,
              until: str | float | _dt.datetime | None = None) -> list[LogEntry]:
    """Entries of a container's log, oldest first (rotated files included)."""
    since_ns = parse_time(since) if since is not None else None
    until_ns = parse_time(until) if until is not None else None
    keep: deque[LogEntry] | list[LogEntry] = deque(maxlen=tail) if tail is not None else []
    if tail == 0:
        return []
    for name in log_files(os.fspath(path)):
        try:
            with open(name, "rb") as fh:
                for entry in _parse(fh):
                    if since_ns is not None or until_ns is not None:
                        t = entry.time_ns
                        if since_ns is not None and t < since_ns:
                            continue
                        if until_ns is not None and t > until_ns:
                            continue
                    keep.append(entry)
        except FileNotFoundError:
            continue  # rotated away while reading
    return list(keep)


# -- follow ----------------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
IN_MODIFY, IN_CREATE, IN_MOVED_TO, IN_DELETE_SELF, IN_MOVE_SELF = 0x2, 0x100, 0x80, 0x400, 0x800
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000


def _inotify(directory: str) -> int:
    fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"inotify_init1: {os.strerror(err)}")
    if _libc.inotify_add_watch(fd, os.fsencode(directory),
                               IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF
                               | IN_MOVE_SELF) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"inotify_add_watch {directory}: {os.strerror(err)}")
    return int(fd)


async def follow(path: str | os.PathLike[str], *, tail: int | None = None,
                 since: str | float | _dt.datetime | None = None) -> AsyncGenerator[LogEntry, None]:
    """Yield the existing entries (``tail``/``since``), then new ones as they are written.

    Runs until cancelled (or until the container's directory disappears). Waits
    on inotify for the log directory, so it wakes on writes and rotations only.
    Close it when done (``async with contextlib.aclosing(follow(p)) as it``).
    """
    import trio

    name = os.fspath(path)
    directory = os.path.dirname(name)
    ino = _inotify(directory)
    fh = None
    try:
        # Open the current file first, so nothing written after the backlog is
        # read can slip between the backlog and the live part.
        try:
            fh = open(name, "rb")  # noqa: ASYNC230,SIM115 - closed in the finally below
        except FileNotFoundError:
            fh = None
        backlog: list[LogEntry] = []
        for older in log_files(name)[:-1] if fh is not None else log_files(name):
            backlog.extend(read_logs(older))
        buf = b""
        if fh is not None:
            *complete, buf = fh.read().split(b"\n")
            backlog.extend(_parse(complete))
        since_ns = parse_time(since) if since is not None else None
        if since_ns is not None:
            backlog = [e for e in backlog if e.time_ns >= since_ns]
        if tail is not None:
            backlog = backlog[len(backlog) - tail:] if tail > 0 else []
        for entry in backlog:
            await trio.lowlevel.checkpoint_if_cancelled()
            yield entry
        while True:
            if fh is None:
                try:
                    fh = open(name, "rb")  # noqa: ASYNC230,SIM115 - a local file, closed below
                    buf = b""
                except FileNotFoundError:
                    pass
            if fh is not None:
                buf += fh.read()
                *complete, buf = buf.split(b"\n")
                for entry in _parse(complete):
                    yield entry
                # Rotated (or truncated): the name now points at a new file.
                try:
                    st = os.stat(name)
                    cur = os.fstat(fh.fileno())
                    if st.st_ino != cur.st_ino:
                        buf += fh.read()
                        *complete, buf = buf.split(b"\n")
                        for entry in _parse(complete):
                            yield entry
                        fh.close()
                        fh = None
                        continue
                    if st.st_size < fh.tell():
                        fh.seek(0)
                        buf = b""
                        continue
                except FileNotFoundError:
                    pass
            await trio.lowlevel.wait_readable(ino)
            try:
                events = os.read(ino, 65536)
            except BlockingIOError:
                events = b""
            off = 0
            while off + 16 <= len(events):
                _wd, mask, _cookie, length = struct.unpack_from("iIII", events, off)
                off += 16 + length
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                    return  # the container was removed
    finally:
        os.close(ino)
        if fh is not None:
            fh.close()
