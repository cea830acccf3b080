"""Masked and read-only paths over a fresh /proc and /sys, in a forked child's mount namespace.

The kernel decides which of Docker's paths exist (this one has no /proc/kcore,
for one): each test checks every listed path that the fresh /proc or /sys has.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from pycompose.runtime import syscalls
from pycompose.runtime.hardening import MASKED_PATHS, READONLY_PATHS, apply_paths, paths_for
from tests.helpers.forked import Result, in_child

pytestmark = pytest.mark.root


def _errno_of(fn: Callable[[], object]) -> int:
    try:
        fn()
    except OSError as exc:
        return exc.errno or -1
    return 0


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _mount_fresh(root: Path) -> None:
    syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    for d in ("proc", "sys"):
        (root / d).mkdir()
    nosuid = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
    syscalls.mount("proc", root / "proc", "proc", nosuid)
    syscalls.mount("sysfs", root / "sys", "sysfs", syscalls.MS_RDONLY | nosuid)


def _inspect(root: Path, masked: Iterable[str], readonly: Iterable[str]) -> Result:
    null_rdev = os.stat("/dev/null").st_rdev
    out: Result = {}
    for p in masked:
        path = root / p.lstrip("/")
        if not path.exists():
            continue
        if path.is_dir():
            out[p] = {"entries": os.listdir(path), "ro": bool(os.statvfs(path).f_flag
                                                              & os.ST_RDONLY),
                      "mkdir": _errno_of((path / "x").mkdir)}
        else:
            out[p] = {"null": os.stat(path).st_rdev == null_rdev,
                      "content": path.read_bytes()[:16].decode(errors="replace")}
    for p in readonly:
        path = root / p.lstrip("/")
        if path.exists():
            flags = os.statvfs(path).f_flag
            out[p] = {"ro": bool(flags & os.ST_RDONLY), "nosuid": bool(flags & os.ST_NOSUID),
                      "noexec": bool(flags & os.ST_NOEXEC)}
    domainname = root / "proc/sys/kernel/domainname"
    out["write_proc_sys"] = _errno_of(lambda: _write(domainname, b"pc-test"))
    out["read_proc_sys"] = (root / "proc/sys/kernel/ostype").read_text().strip()
    out["read_uptime"] = (root / "proc/uptime").read_text() != ""
    return out


def _hardened(root: Path, privileged: bool) -> Result:
    masked, readonly = paths_for(privileged=privileged)

    def run() -> Result:
        _mount_fresh(root)
        apply_paths(str(root), masked, readonly)
        return _inspect(root, MASKED_PATHS, READONLY_PATHS)

    return in_child(run)


def test_masked_and_readonly_paths(tmp_path: Path) -> None:
    out = _hardened(tmp_path, privileged=False)
    checked_masked = [p for p in MASKED_PATHS if p in out]
    assert "/proc/keys" in checked_masked  # present on every kernel with keys support
    assert "/sys/firmware" in checked_masked
    for p in checked_masked:
        info = out[p]
        assert isinstance(info, dict)
        if "null" in info:
            assert info == {"null": True, "content": ""}, p
        else:
            assert info == {"entries": [], "ro": True, "mkdir": errno.EROFS}, p
    checked_ro = [p for p in READONLY_PATHS if p in out]
    assert "/proc/sys" in checked_ro
    for p in checked_ro:
        assert out[p] == {"ro": True, "nosuid": True, "noexec": True}, p
    assert out["write_proc_sys"] == errno.EROFS
    assert out["read_proc_sys"] == "Linux"
    assert out["read_uptime"] is True


def test_privileged_is_not_hardened(tmp_path: Path) -> None:
    assert paths_for(privileged=True) == ((), ())
    assert paths_for(privileged=False, unmask_system_paths=True) == ((), ())
    out = _hardened(tmp_path, privileged=True)
    firmware = out["/sys/firmware"]
    assert isinstance(firmware, dict)
    assert firmware["entries"] != []
    keys = out["/proc/keys"]
    assert isinstance(keys, dict)
    assert keys["null"] is False
    # the child's own UTS namespace: writing its domainname through /proc/sys works
    assert out["write_proc_sys"] == 0


def test_missing_paths_are_skipped(tmp_path: Path) -> None:
    def run() -> Result:
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        apply_paths(str(tmp_path), ("/proc/nothing-here",), ("/proc/nor-here",))
        return {"ok": True}

    assert in_child(run) == {"ok": True}
