"""Which device nodes a container may create and open (the devices controller).

Without this, a container's root — which holds CAP_MKNOD by default — could
``mknod`` the host's disk and read it. Docker (through runc) therefore denies
every device but a short list; :data:`DEFAULT_DEVICE_RULES` is that list:
any character or block node may be *created* (``m``) so images that ship
device nodes unpack, but only ``null``, ``zero``, ``full``, ``random``,
``urandom``, ``tty``, ``console``, ``ptmx``, the pty slaves and ``/dev/net/tun``
may be read or written.

* v1: rules are lines written to ``devices.deny`` / ``devices.allow``.
* v2: the controller is an eBPF program (``BPF_PROG_TYPE_CGROUP_DEVICE``)
  attached to the cgroup; :func:`build_program` assembles it from the rules
  (the last matching rule decides, as in v1; no rule matching = deny). It is
  attached with ``BPF_F_ALLOW_MULTI``: a second :meth:`~.Cgroup.apply` adds a
  program that must also allow, so on v2 rules can be tightened but not
  loosened after the first apply.
"""

from __future__ import annotations

import ctypes
import os
import platform
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CgroupError


@dataclass(frozen=True)
class DeviceRule:
    """``allow``/deny ``access`` (subset of ``rwm``) to devices of ``kind`` ``a``/``c``/``b``.

    ``major``/``minor`` ``None`` mean any (``*``). Kind ``a`` matches every
    device, whatever the numbers.
    """

    kind: str
    major: int | None
    minor: int | None
    access: str = "rwm"
    allow: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("a", "c", "b"):
            raise CgroupError(f"device rule: type must be a, c or b, not {self.kind!r}")
        if not self.access or set(self.access) - set("rwm"):
            raise CgroupError(f"device rule: access must be made of r, w, m, "
                              f"not {self.access!r}")

    def v1_line(self) -> str:
        """As written to ``devices.allow`` / ``devices.deny``: ``c 1:3 rwm``."""
        if self.kind == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.kind} {major}:{minor} {self.access}"

    def __str__(self) -> str:
        return f"{'allow' if self.allow else 'deny'} {self.v1_line()}"


def _c(major: int, minor: int | None, access: str = "rwm") -> DeviceRule:
    return DeviceRule("c", major, minor, access)


#: Docker's default: deny everything, then allow mknod of any node and the usual devices.
DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    DeviceRule("a", None, None, "rwm", allow=False),
    DeviceRule("c", None, None, "m"),
    DeviceRule("b", None, None, "m"),
    _c(1, 3),     # /dev/null
    _c(1, 5),     # /dev/zero
    _c(1, 7),     # /dev/full
    _c(1, 8),     # /dev/random
    _c(1, 9),     # /dev/urandom
    _c(5, 0),     # /dev/tty
    _c(5, 1),     # /dev/console
    _c(5, 2),     # /dev/ptmx
    _c(136, None),  # /dev/pts/*
    _c(10, 200),  # /dev/net/tun
)

#: ``privileged``: every device.
ALLOW_ALL_DEVICES: tuple[DeviceRule, ...] = (DeviceRule("a", None, None, "rwm"),)


def parse_device_rule(text: str) -> DeviceRule:
    """A Compose ``device_cgroup_rules`` entry (``c 1:3 mr``, ``a *:* rwm``) as an allow rule."""
    parts = text.split()
    try:
        if len(parts) not in (2, 3):
            raise ValueError(text)
        kind, numbers = parts[0], parts[1]
        access = parts[2] if len(parts) > 2 else "rwm"
        major_s, minor_s = numbers.split(":")
        major = None if major_s == "*" else int(major_s)
        minor = None if minor_s == "*" else int(minor_s)
    except (IndexError, ValueError):
        raise CgroupError(f"device cgroup rule {text!r}: expected 'TYPE MAJOR:MINOR ACCESS' "
                          "such as 'c 1:3 rwm'") from None
    return DeviceRule(kind, major, minor, access)


def host_device_rule(path: str | os.PathLike[str], access: str = "rwm") -> DeviceRule:
    """The rule that lets a container use host device ``path`` (Compose ``devices:``)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise CgroupError(f"device {os.fspath(path)}: {exc.strerror}") from exc
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise CgroupError(f"device {os.fspath(path)}: not a character or block device")
    return DeviceRule(kind, os.major(st.st_rdev), os.minor(st.st_rdev), access)


def device_rules(privileged: bool = False,
                 extra: Iterable[DeviceRule] = ()) -> tuple[DeviceRule, ...]:
    """The rules for a container: Docker's default plus ``extra``, or all for ``privileged``."""
    if privileged:
        return ALLOW_ALL_DEVICES
    return (*DEFAULT_DEVICE_RULES, *extra)


# -- v2: an eBPF program ----------------------------------------------------------------

_TYPE = {"b": 1, "c": 2}                 # BPF_DEVCG_DEV_BLOCK / _CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}       # BPF_DEVCG_ACC_MKNOD / _READ / _WRITE

# eBPF opcodes used below.
_LDX_W = 0x61      # dst = *(u32 *)(src + off)
_AND32_K = 0x54
_RSH32_K = 0x74
_MOV32_X = 0xBC
_MOV64_K = 0xB7
_JNE_K = 0x55
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def build_program(rules: Sequence[DeviceRule]) -> bytes:
    """The eBPF device program for ``rules``: 1 = allow, 0 = deny (the default).

    Context (``struct bpf_cgroup_dev_ctx``): ``access_type`` = access << 16 |
    type, then ``major``, ``minor``. Rules are checked last to first; the first
    that matches answers. The verifier refuses unreachable code, so nothing is
    emitted after a rule that matches every device.
    """
    head = [
        _insn(_LDX_W, dst=2, src=1, off=0), _insn(_AND32_K, dst=2, imm=0xFFFF),  # type
        _insn(_LDX_W, dst=3, src=1, off=0), _insn(_RSH32_K, dst=3, imm=16),      # access
        _insn(_LDX_W, dst=4, src=1, off=4),                                      # major
        _insn(_LDX_W, dst=5, src=1, off=8),                                      # minor
    ]
    blocks: list[list[tuple[str, int, int, int]]] = []
    for rule in reversed(rules):
        # (kind of instruction, dst, imm, ...) with jumps resolved once sizes are known
        block: list[tuple[str, int, int, int]] = []
        if rule.kind != "a":
            block.append(("jne", 2, _TYPE[rule.kind], 0))
            mask = sum(_ACCESS[a] for a in set(rule.access))
            if mask != 7:
                block.append(("mov", 1, 3, 0))
                block.append(("and", 1, 7 & ~mask, 0))
                block.append(("jne", 1, 0, 0))
            if rule.major is not None:
                block.append(("jne", 4, rule.major, 0))
            if rule.minor is not None:
                block.append(("jne", 5, rule.minor, 0))
        block.append(("ret", 0, 1 if rule.allow else 0, 0))
        blocks.append(block)
        if len(block) == 1:
            break  # matches everything: earlier rules and the default are unreachable
    out = list(head)
    for block in blocks:
        size = sum(2 if kind == "ret" else 1 for kind, *_ in block)
        pos = 0
        for kind, reg, imm, _ in block:
            if kind == "jne":
                # jump to the first instruction after this block
                out.append(_insn(_JNE_K, dst=reg, off=size - pos - 1, imm=imm))
                pos += 1
            elif kind == "mov":
                out.append(_insn(_MOV32_X, dst=reg, src=imm))
                pos += 1
            elif kind == "and":
                out.append(_insn(_AND32_K, dst=reg, imm=imm))
                pos += 1
            else:
                out.append(_insn(_MOV64_K, dst=0, imm=imm))
                out.append(_insn(_EXIT))
                pos += 2
    if not blocks or len(blocks[-1]) > 1:
        out.append(_insn(_MOV64_K, dst=0, imm=0))  # no rule matched: deny
        out.append(_insn(_EXIT))
    return b"".join(out)


_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361,
            "s390x": 351}.get(platform.machine(), 321)
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]


class _ProgAttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    res = int(_libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_long(cmd),
                            ctypes.c_void_p(ctypes.addressof(attr)),
                            ctypes.c_long(ctypes.sizeof(attr))))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def attach_device_program(cgroup_dir: Path, rules: Sequence[DeviceRule]) -> None:
    """Load the program for ``rules`` and attach it to the v2 cgroup ``cgroup_dir``."""
    code = build_program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(16384)
    attr = _ProgLoadAttr(prog_type=_BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(code) // 8,
                         insns=ctypes.addressof(insns), license=ctypes.addressof(license_),
                         prog_name=b"pycompose_dev",
                         expected_attach_type=_BPF_CGROUP_DEVICE)
    try:
        prog = _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        # Load again with the verifier's log, to say why.
        attr.log_level, attr.log_size, attr.log_buf = 1, len(log), ctypes.addressof(log)
        try:
            prog = _bpf(_BPF_PROG_LOAD, attr)
        except OSError:
            detail = log.value.decode(errors="replace").strip().splitlines()[-3:]
            raise CgroupError(f"load the device program for {cgroup_dir}: {exc.strerror} "
                              f"{' / '.join(detail)}".rstrip()) from exc
    try:
        dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(prog)
        raise CgroupError(f"open {cgroup_dir}: {exc.strerror}") from exc
    try:
        _bpf(_BPF_PROG_ATTACH, _ProgAttachAttr(target_fd=dirfd, attach_bpf_fd=prog,
                                               attach_type=_BPF_CGROUP_DEVICE,
                                               attach_flags=_BPF_F_ALLOW_MULTI))
    except OSError as exc:
        raise CgroupError(f"attach the device program to {cgroup_dir}: {exc.strerror}"
                          ) from exc
    finally:
        os.close(dirfd)
        os.close(prog)  # the cgroup holds its own reference
