"""Seccomp filters loaded in forked children: what fails with EPERM and what still works."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pycompose.runtime import syscalls
from pycompose.runtime.capabilities import DEFAULT_CAPABILITIES, resolve_capabilities
from pycompose.runtime.errors import SecurityError
from pycompose.runtime.seccomp import (
    DEFAULT_PROFILE,
    compile_profile,
    load_docker_profile,
    load_profile,
    resolve_profile,
)
from pycompose.runtime.seccomp_profile import Profile
from tests.helpers.forked import Result, in_child

pytestmark = pytest.mark.root

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_seccomp = ctypes.CDLL("libseccomp.so.2")
_seccomp.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]

SIGCHLD = 17
ADDR_NO_RANDOMIZE = 0x0040000
AF_VSOCK = 40


def nr(name: str) -> int:
    return int(_seccomp.seccomp_syscall_resolve_name(name.encode()))


def raw(name: str, *args: int) -> int:
    """Call a system call by name; return 0 on success or the errno (child side)."""
    ctypes.set_errno(0)
    res = _libc.syscall(nr(name), *[ctypes.c_long(a) for a in args])
    if res == 0 and name == "clone":
        os._exit(0)  # a clone that was not blocked: the new child leaves at once
    if res > 0 and name == "clone":
        os.waitpid(res, 0)
    return ctypes.get_errno() if res < 0 else 0


def probe() -> Result:
    """Try what a container must not do, and what it must still be able to do."""
    out: Result = {}
    with tempfile.TemporaryDirectory() as d:
        try:
            syscalls.mount("tmpfs", d, "tmpfs")
            syscalls.umount(d)
            out["mount"] = 0
        except OSError as exc:
            out["mount"] = exc.errno
        # file I/O
        p = Path(d) / "f"
        p.write_text("data")
        out["file_io"] = p.read_text() == "data"
    try:
        syscalls.unshare(syscalls.CLONE_NEWNS)
        out["unshare"] = 0
    except OSError as exc:
        out["unshare"] = exc.errno
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
    try:
        syscalls.setns(fd, syscalls.CLONE_NEWUTS)  # joining its own namespace: harmless
        out["setns"] = 0
    except OSError as exc:
        out["setns"] = exc.errno
    finally:
        os.close(fd)
    try:
        syscalls.umount("/proc/self/fd")  # not a mount point: EINVAL when let through
        out["umount2"] = 0
    except OSError as exc:
        out["umount2"] = exc.errno
    out["init_module"] = raw("init_module", 0, 0, 0)
    out["keyctl"] = raw("keyctl", 0, -3, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring
    out["clone_newuts"] = raw("clone", syscalls.CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0)
    out["personality_unsafe"] = raw("personality", ADDR_NO_RANDOMIZE)
    out["personality_query"] = raw("personality", 0xFFFFFFFF)
    out["personality_linux"] = raw("personality", 0)
    out["vsock"] = raw("socket", AF_VSOCK, 1, 0)
    out["getpid"] = os.getpid() > 0
    # threads (clone3 → ENOSYS → glibc falls back to clone) and fork still work
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(1))
    t.start()
    t.join()
    out["thread"] = seen == [1]
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
    return out


def confined(profile: Profile | None, caps: frozenset[str]) -> Callable[[], Result]:
    def run() -> Result:
        # A private mount namespace first (unshare itself is filtered later), so
        # a mount that the filter lets through never reaches the host.
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        load_profile(profile, caps)
        return probe()
    return run


def test_default_profile_blocks_the_dangerous_calls() -> None:
    out = in_child(confined(DEFAULT_PROFILE, DEFAULT_CAPABILITIES))
    for call in ("mount", "unshare", "setns", "umount2", "init_module", "keyctl",
                 "clone_newuts", "personality_unsafe", "vsock"):
        assert out[call] == errno.EPERM, (call, out[call])
    assert out["personality_query"] == 0
    assert out["personality_linux"] == 0
    for ok in ("file_io", "getpid", "thread", "fork"):
        assert out[ok] is True, ok


def test_unconfined_leaves_them_allowed() -> None:
    profile = resolve_profile("unconfined")
    assert profile is None
    out = in_child(confined(profile, DEFAULT_CAPABILITIES))
    assert out["mount"] == 0
    assert out["unshare"] == 0
    assert out["setns"] == 0
    assert out["umount2"] == errno.EINVAL
    assert out["clone_newuts"] == 0
    assert out["personality_unsafe"] == 0
    assert out["init_module"] != errno.EPERM  # EFAULT: the kernel got to look at it
    assert out["keyctl"] != errno.EPERM


def test_sys_admin_lifts_the_mount_and_namespace_rules_only() -> None:
    caps = resolve_capabilities(cap_add=["SYS_ADMIN"])
    out = in_child(confined(DEFAULT_PROFILE, caps))
    assert out["mount"] == 0
    assert out["unshare"] == 0
    assert out["clone_newuts"] == 0
    assert out["keyctl"] == errno.EPERM
    assert out["init_module"] == errno.EPERM


def test_non_root_needs_no_new_privs_to_load() -> None:
    flt = compile_profile(DEFAULT_PROFILE, DEFAULT_CAPABILITIES)

    def as_user(nnp: bool) -> Callable[[], Result]:
        def run() -> Result:
            os.setresgid(1000, 1000, 1000)
            os.setresuid(1000, 1000, 1000)
            if nnp:
                syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
            try:
                flt.load()
            except SecurityError as exc:
                return {"loaded": False, "message": str(exc)}
            return {"loaded": True, "keyctl": raw("keyctl", 0, -3, 0)}
        return run

    refused = in_child(as_user(nnp=False))
    assert refused["loaded"] is False
    assert "no-new-privileges" in str(refused["message"])
    loaded = in_child(as_user(nnp=True))
    assert loaded == {"loaded": True, "keyctl": errno.EPERM}


def test_docker_format_profile(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO",
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }))
    profile = resolve_profile(str(path))
    assert profile == load_docker_profile(path)

    def run() -> Result:
        syscalls.unshare(syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        load_profile(profile, DEFAULT_CAPABILITIES)
        try:
            os.getcwd()
            cwd = 0
        except OSError as exc:
            cwd = exc.errno or -1
        out = probe()
        return {"getcwd": cwd, "per_linux32": raw("personality", 8),
                "per_linux": raw("personality", 0), "mount": out["mount"],
                "unshare": out["unshare"]}

    assert in_child(run) == {"getcwd": errno.EACCES, "per_linux32": errno.EPERM,
                             "per_linux": 0, "mount": errno.EPERM, "unshare": 0}


def test_compiled_filters_are_cached_per_capability_set() -> None:
    a = compile_profile(DEFAULT_PROFILE, DEFAULT_CAPABILITIES)
    assert compile_profile(DEFAULT_PROFILE, DEFAULT_CAPABILITIES) is a
    b = compile_profile(DEFAULT_PROFILE, DEFAULT_CAPABILITIES | {"SYS_ADMIN"})
    assert b is not a
    assert len(b) < len(a)  # the SYS_ADMIN group is left out


PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")


@pytest.mark.skipif(not PODMAN_PROFILE.exists(),
                    reason="needs a real Docker-format profile (Debian golang-github-containers-"
                           "common ships /usr/share/containers/seccomp.json)")
def test_a_real_allowlist_profile_in_docker_format() -> None:
    profile = load_docker_profile(PODMAN_PROFILE)
    flt = compile_profile(profile, DEFAULT_CAPABILITIES)

    def run() -> Result:
        flt.load()
        out = probe_basics()
        # invalid flags: EINVAL from the kernel, EPERM from the profile's rule
        out["kexec_load"] = raw("kexec_load", 0, 0, 0, 0xFFFF0000)
        # fchmodat2 (Linux 6.6, x86_64 number 452) is newer than the profile:
        # the default action answers, with the profile's defaultErrnoRet
        ctypes.set_errno(0)
        res = _libc.syscall(452, ctypes.c_long(-100), b"/nonexistent-pc", 0, 0)
        out["fchmodat2"] = ctypes.get_errno() if res < 0 else 0
        out["exec"] = subprocess.run(["/bin/busybox", "sh", "-c", "echo $((6*7))"],
                                     capture_output=True, text=True).stdout.strip()
        return out

    out = in_child(run)
    assert out["kexec_load"] == errno.EPERM
    if platform.machine() == "x86_64":
        assert out["fchmodat2"] == errno.ENOSYS
    assert out["exec"] == "42"
    for ok in ("file_io", "thread", "fork"):
        assert out[ok] is True, ok


def probe_basics() -> Result:
    out: Result = {}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f"
        p.write_text("data")
        out["file_io"] = p.read_text() == "data"
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(1))
    t.start()
    t.join()
    out["thread"] = seen == [1]
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
    return out


def _spawn_order(uid: int, cap_drop: list[str], no_new_privs: bool) -> Callable[[], Result]:
    """The child's privilege steps in the order documented for the spawner, then execve."""
    from pycompose.runtime.capabilities import after_user_switch, before_user_switch

    caps = resolve_capabilities(cap_drop=cap_drop)
    flt = compile_profile(DEFAULT_PROFILE, caps)  # in the parent, before fork

    def run() -> Result:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            before_user_switch(caps)
            if not no_new_privs:
                flt.load()
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            after_user_switch(caps, uid)
            if no_new_privs:
                syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
                flt.load()
            os.dup2(w, 1)
            os.execv("/bin/busybox", ["busybox", "sh", "-c",
                                      "grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "
                                      "/proc/self/status; mount -t tmpfs x /proc 2>&1"])
        os.close(w)
        with os.fdopen(r) as f:
            text = f.read()
        os.waitpid(pid, 0)
        out: Result = {line.split(":")[0]: line.split(":", 1)[1].split()[0]
                       for line in text.splitlines() if ":" in line}
        out["raw"] = text
        return out
    return run


@pytest.mark.parametrize(("uid", "cap_drop", "nnp"), [
    (0, [], False), (0, ["SETUID", "SETGID"], True), (1000, [], False), (1000, ["ALL"], True),
])
def test_the_documented_order_works_end_to_end(uid: int, cap_drop: list[str], nnp: bool) -> None:
    from pycompose.runtime.capabilities import to_mask

    out = in_child(_spawn_order(uid, cap_drop, nnp))
    caps = resolve_capabilities(cap_drop=cap_drop)
    assert out["Uid"] == str(uid)
    assert int(str(out["CapBnd"]), 16) == to_mask(caps)
    assert int(str(out["CapEff"]), 16) == (to_mask(caps) if uid == 0 else 0)
    assert out["NoNewPrivs"] == ("1" if nnp else "0")
    assert out["Seccomp"] == "2"  # filter mode, inherited across execve
    assert "mount: permission denied" in str(out["raw"])  # EPERM (seccomp and no SYS_ADMIN)
