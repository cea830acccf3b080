"""Device rules: parsing, v1 lines, and the v2 eBPF program checked by a small interpreter."""

from __future__ import annotations

import itertools
import struct

import pytest

from pycompose.runtime.cgroups import (
    ALLOW_ALL_DEVICES,
    DEFAULT_DEVICE_RULES,
    DeviceRule,
    device_rules,
    host_device_rule,
    parse_device_rule,
)
from pycompose.runtime.cgroups.devices import build_program
from pycompose.runtime.errors import CgroupError

TYPES = {"b": 1, "c": 2}
ACCESS = {"m": 1, "r": 2, "w": 4}


def run_program(code: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """Interpret the handful of eBPF instructions build_program emits."""
    ctx = [sum(ACCESS[a] for a in access) << 16 | TYPES[kind], major, minor]
    regs = [0] * 11
    pc = 0
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    steps = 0
    while True:
        steps += 1
        assert steps < 10_000
        op, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if op == 0x61:
            assert src == 1
            regs[dst] = ctx[off // 4]
        elif op == 0x54:
            regs[dst] &= imm & 0xFFFFFFFF
        elif op == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == 0xB7:
            regs[dst] = imm
        elif op == 0x55:
            if regs[dst] != imm:
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")


def reference(rules: tuple[DeviceRule, ...], kind: str, major: int, minor: int,
              access: str) -> int:
    """v1's semantics: the last matching rule decides; nothing matching denies."""
    verdict = 0
    for r in rules:
        if r.kind not in ("a", kind):
            continue
        if r.kind != "a" and not set(access) <= set(r.access):
            continue
        if r.kind != "a" and r.major is not None and r.major != major:
            continue
        if r.kind != "a" and r.minor is not None and r.minor != minor:
            continue
        verdict = 1 if r.allow else 0
    return verdict


RULE_SETS = [
    DEFAULT_DEVICE_RULES,
    ALLOW_ALL_DEVICES,
    device_rules(extra=[DeviceRule("c", 10, 229, "rw"), DeviceRule("b", 8, None, "r")]),
    (DeviceRule("c", 1, None, "rw"), DeviceRule("c", 1, 11, "rwm", allow=False)),
    (),
]


@pytest.mark.parametrize("rules", RULE_SETS)
def test_program_matches_v1_semantics(rules: tuple[DeviceRule, ...]) -> None:
    code = build_program(rules)
    for kind, major, minor, access in itertools.product(
            "cb", (1, 5, 8, 10, 136), (0, 1, 3, 11, 229), ("r", "w", "m", "rw", "rwm", "mr")):
        got = run_program(code, kind, major, minor, access)
        assert got == reference(rules, kind, major, minor, access), (kind, major, minor, access)


def test_default_rules_are_dockers() -> None:
    lines = [str(r) for r in DEFAULT_DEVICE_RULES]
    assert lines[:3] == ["deny a", "allow c *:* m", "allow b *:* m"]
    assert "allow c 1:3 rwm" in lines
    assert "allow c 136:* rwm" in lines
    assert device_rules(privileged=True) == ALLOW_ALL_DEVICES


def test_parse_and_host_rules() -> None:
    assert parse_device_rule("c 1:3 mr") == DeviceRule("c", 1, 3, "mr")
    assert parse_device_rule("a *:* rwm") == DeviceRule("a", None, None, "rwm")
    assert parse_device_rule("b 8:* r").v1_line() == "b 8:* r"
    assert host_device_rule("/dev/null") == DeviceRule("c", 1, 3, "rwm")
    with pytest.raises(CgroupError, match="not a character or block device"):
        host_device_rule("/etc/hostname")
    for bad in ("c 1:x rwm", "q 1:3 rwm", "c 1:3 rwx", "c"):
        with pytest.raises(CgroupError):
            parse_device_rule(bad)
