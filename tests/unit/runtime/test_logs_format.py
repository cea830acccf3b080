"""json-file writing and reading, without containers."""

from __future__ import annotations

import json
from contextlib import aclosing
from pathlib import Path

import trio

from pycompose.runtime.logs import (
    SPLIT_AT,
    LogWriter,
    follow,
    parse_time,
    read_logs,
    rfc3339_nano,
)


def test_lines_partial_lines_and_split(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = LogWriter(str(path))
    w.feed("stdout", b"one\ntw")
    w.feed("stderr", b"e1\n")
    w.feed("stdout", b"o\n" + b"x" * (SPLIT_AT + 5))
    w.close()
    entries = read_logs(path)
    assert [(e.stream, e.text) for e in entries] == [
        ("stdout", "one\n"), ("stderr", "e1\n"), ("stdout", "two\n"),
        ("stdout", "x" * SPLIT_AT), ("stdout", "xxxxx")]


def test_since_until_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    times = ["2026-01-01T00:00:01.000000001Z", "2026-01-01T00:00:02.5Z",
             "2026-01-01T00:00:03.000000000Z"]
    path.write_text("".join(json.dumps({"log": f"{i}\n", "stream": "stdout", "time": t}) + "\n"
                            for i, t in enumerate(times)) + '{"torn')
    assert [e.text for e in read_logs(path, since="2026-01-01T00:00:02Z")] == ["1\n", "2\n"]
    assert [e.text for e in read_logs(path, until="2026-01-01T00:00:02.5Z")] == ["0\n", "1\n"]
    assert [e.text for e in read_logs(path, tail=1)] == ["2\n"]
    assert read_logs(path, tail=0) == []
    assert parse_time(times[0]) % 1_000_000_000 == 1
    assert read_logs(path)[0].format(timestamps=True) == f"{times[0]} 0\n"


def test_truncate_when_one_file(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = LogWriter(str(path), max_size=500, max_file=1)
    for i in range(100):
        w.feed("stdout", f"line {i}\n".encode())
    w.close()
    assert path.stat().st_size <= 500
    assert read_logs(path)[-1].text == "line 99\n"
    assert not Path(f"{path}.1").exists()


def test_rfc3339_nano_shape() -> None:
    t = rfc3339_nano(1_700_000_000_123_456_789)
    assert t == "2023-11-14T22:13:20.123456789Z"
    assert parse_time(t) == 1_700_000_000_123_456_789


async def test_follow_sees_new_lines_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = LogWriter(str(path), max_size=200, max_file=2)
    w.feed("stdout", b"old\n")
    got: list[str] = []
    with trio.fail_after(10):
        async with aclosing(follow(path)) as entries:
            async for entry in entries:
                got.append(entry.text)
                n = len(got) - 1
                if n == 10:
                    break
                w.feed("stdout", f"new {n}\n".encode())  # rotates every few lines
    w.close()
    assert Path(f"{path}.1").exists()  # noqa: ASYNC240
    assert got == ["old\n"] + [f"new {i}\n" for i in range(10)]
