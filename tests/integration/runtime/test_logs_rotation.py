"""Logs captured by the supervisor rotate by size and read back in order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from pycompose.runtime.client import Runtime
from pycompose.runtime.logs import log_files, read_logs
from pycompose.runtime.spec import LogConfig

from .test_container_support import TEST_TIMEOUT, spec

pytestmark = pytest.mark.root


async def test_logs_rotate_and_read_back(rt: Runtime, busybox_rootfs: Path) -> None:
    script = "i=0; while [ $i -lt 2000 ]; do echo line-$i; echo err-$i >&2; i=$((i+1)); done"
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", script,
                                    log=LogConfig(max_size=20_000, max_file=3)))
        await rt.start(info.id)
        assert (await rt.wait(info.id)).code == 0
    path = rt.log_path(info.id)
    files = log_files(str(path))
    assert files == [f"{path}.2", f"{path}.1", str(path)]
    assert all(os.path.getsize(f) <= 20_000 for f in files)  # noqa: ASYNC240
    assert not os.path.exists(f"{path}.3")  # noqa: ASYNC240
    entries = read_logs(path)
    # Oldest lines rotated away; what is kept is contiguous and ends with the last line.
    out = [e.text for e in entries if e.stream == "stdout"]
    err = [e.text for e in entries if e.stream == "stderr"]
    # (stdout and stderr are separate pipes, read in separate batches: the
    # newest 60 kB may hold only one of them.)
    last = out or err
    assert last[-1] in ("line-1999\n", "err-1999\n")
    first = int(out[0][5:]) if out else 2000
    assert out == [f"line-{i}\n" for i in range(first, 2000)]
    first_err = int(err[0][4:]) if err else 2000
    assert err == [f"err-{i}\n" for i in range(first_err, 2000)]
    assert min(first, first_err) > 0
    # Each line is one json-file object with an RFC 3339 nano timestamp.
    obj = json.loads(Path(path).read_text().splitlines()[0])  # noqa: ASYNC240
    assert set(obj) == {"log", "stream", "time"}
    assert obj["time"].endswith("Z")
    assert len(obj["time"].split(".")[1]) == 10
    tail = read_logs(path, tail=3)
    assert [e.text for e in tail][-1] in ("line-1999\n", "err-1999\n")
    assert len(tail) == 3


async def test_follow_ends_when_container_is_removed(rt: Runtime, busybox_rootfs: Path) -> None:
    from contextlib import aclosing

    from pycompose.runtime.logs import follow

    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", "echo up; sleep 300"))
        await rt.start(info.id)
        seen: list[str] = []
        async with aclosing(follow(rt.log_path(info.id))) as entries:
            async for entry in entries:
                seen.append(entry.text)
                if entry.text == "up\n":
                    await rt.remove(info.id, force=True)
        assert seen == ["up\n"]
