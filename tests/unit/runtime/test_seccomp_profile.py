"""The default profile's data and the Docker-format parser (no root needed)."""

from __future__ import annotations

import errno

import pytest

from pycompose.runtime.errors import SecurityError
from pycompose.runtime.seccomp import parse_docker_profile
from pycompose.runtime.seccomp_profile import (
    ACT_ALLOW,
    CMP_EQ,
    CMP_MASKED_EQ,
    DEFAULT_PROFILE,
    ArgCmp,
    act_errno,
    blocked_names,
)


def test_default_profile_lists_the_dangerous_calls() -> None:
    names = set(blocked_names())
    for call in ("kexec_load", "kexec_file_load", "init_module", "finit_module",
                 "delete_module", "mount", "umount2", "pivot_root", "move_mount", "fsopen",
                 "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "unshare",
                 "setns", "clone", "clone3", "reboot", "swapon", "swapoff", "acct",
                 "settimeofday", "clock_settime", "adjtimex", "open_by_handle_at",
                 "userfaultfd", "personality"):
        assert call in names, call
    assert "ptrace" not in names  # allowed since Linux 4.8, as Docker does
    assert DEFAULT_PROFILE.default_action == ACT_ALLOW


@pytest.mark.parametrize(("persona", "unsafe"), [
    (0x0, False), (0x8, False), (0x20000, False), (0x20008, False), (0xFFFFFFFF, False),
    (0x0040000, True), (0x0400000, True), (0x1, True), (0x80000000, True),
    (0xFFFFFFFE, True), (0x80020008, True),
])
def test_personality_rule_matches_exactly_the_unsafe_values(persona: int, unsafe: bool) -> None:
    rule = next(r for r in DEFAULT_PROFILE.rules if r.names == ("personality",))

    def matches(alt: tuple[ArgCmp, ...]) -> bool:
        return all(c.op == CMP_MASKED_EQ and persona & c.value == c.value_two for c in alt)

    assert any(matches(alt) for alt in rule.when) is unsafe


def test_docker_profile_parsing() -> None:
    profile = parse_docker_profile({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.ENOSYS,
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }, "p.json")
    assert profile.default_action == act_errno(errno.ENOSYS)
    read, persona, bpf = profile.rules
    assert read.names == ("read", "write")
    assert read.action == ACT_ALLOW
    # same argument compared twice → separate alternatives (OR), as runc does
    assert persona.when == ((ArgCmp(0, CMP_EQ, 0),), (ArgCmp(0, CMP_EQ, 8),))
    assert bpf.only_with == {"SYS_ADMIN"}
    assert not bpf.applies(frozenset({"CHOWN"}), "x86_64")
    assert bpf.applies(frozenset({"SYS_ADMIN"}), "x86_64")


@pytest.mark.parametrize(("data", "message"), [
    ([], "expected a JSON object"),
    ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown action 'SCMP_ACT_NOPE'"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read",
                                                       "action": "SCMP_ACT_ERRNO"}]},
     r"syscalls\[0\]: names must be a list"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0}]}]},
     r"syscalls\[0\].args\[0\]"),
])
def test_bad_profiles_are_named(data: object, message: str) -> None:
    with pytest.raises(SecurityError, match=message):
        parse_docker_profile(data, "p.json")


def test_min_kernel_and_arches() -> None:
    profile = parse_docker_profile({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "4.8"}},
            {"names": ["b"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99.0"}},
            {"names": ["c"], "action": "SCMP_ACT_ERRNO", "excludes": {"arches": ["amd64",
                                                                                 "arm64"]}},
            {"names": ["d"], "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["s390x"]}},
        ],
    })
    assert [r.names for r in profile.rules] == [("a",), ("d",)]
    assert not profile.rules[1].applies(frozenset(), "x86_64")
    with pytest.raises(SecurityError, match="minKernel"):
        parse_docker_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "new"}}]})
