"""pycompose's default seccomp profile, as data.

A **denylist**: every system call is allowed except the groups below, which
fail with ``EPERM`` (``clone3`` with ``ENOSYS``, so that libc falls back to
``clone``, whose flags *can* be inspected). Docker's own profile is an
allowlist that denies the same calls by not listing them; a denylist keeps
the data short and lets new, harmless system calls work, at the price of
having to list new dangerous ones here (audit this file when the kernel adds
mount- or namespace-like calls). Groups that Docker opens up when the
container is granted a capability carry that capability in ``unless``: the
rule is left out when any of them is in the container's set.

Blocked, and why:

* kernel modules (``init_module`` …): unless SYS_MODULE
* rebooting and replacing the kernel (``reboot``, ``kexec_*``): unless SYS_BOOT
* mounts and the new mount API, ``pivot_root``, quotas, fanotify, namespaces
  (``unshare``, ``setns``, ``clone`` with any ``CLONE_NEW*`` flag, ``clone3``),
  host/domain name, swap: unless SYS_ADMIN
* the kernel keyring (``keyctl``, ``add_key``, ``request_key``): always, it is
  not namespaced
* ``bpf`` (unless SYS_ADMIN or BPF), ``perf_event_open`` (unless SYS_ADMIN or
  PERFMON): kernel attack surface and host-wide observation
* setting the clock (``settimeofday``, ``clock_settime``, ``adjtimex`` …):
  unless SYS_TIME — the clock is not namespaced
* ``acct`` (SYS_PACCT), ``syslog`` (SYSLOG), ``vhangup`` (SYS_TTY_CONFIG),
  ``iopl``/``ioperm`` (SYS_RAWIO), NUMA placement of other processes'
  memory (SYS_NICE), ``open_by_handle_at`` (DAC_READ_SEARCH; the "shocker"
  escape), ``name_to_handle_at``, ``kcmp``/``process_madvise`` (SYS_PTRACE)
* obsolete or unsafe calls: ``_sysctl``, ``sysfs``, ``uselib``, ``ustat``,
  ``nfsservctl``, ``vm86``, ``userfaultfd``, ``io_uring_*``, ``lookup_dcookie``
* ``personality`` with anything but ``PER_LINUX``, ``PER_LINUX32``,
  ``UNAME26`` and the query value ``0xffffffff`` (no ``ADDR_NO_RANDOMIZE``,
  ``READ_IMPLIES_EXEC`` …)
* ``socket(AF_VSOCK)``: talks to the hypervisor

``ptrace`` and ``process_vm_*`` stay allowed: since Linux 4.8 seccomp runs
after the ptrace checks, which is why Docker allows them too.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

# Comparison operators (libseccomp's enum scmp_compare).
CMP_NE, CMP_LT, CMP_LE, CMP_EQ, CMP_GE, CMP_GT, CMP_MASKED_EQ = 1, 2, 3, 4, 5, 6, 7

# Actions (libseccomp's SCMP_ACT_*).
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000


def act_errno(number: int) -> int:
    """The action "fail with ``number``"."""
    return 0x00050000 | (number & 0xFFFF)


def act_trace(msg: int) -> int:
    return 0x7FF00000 | (msg & 0xFFFF)


@dataclass(frozen=True)
class ArgCmp:
    """One comparison of a system call argument: ``arg[index] <op> value``.

    For ``CMP_MASKED_EQ``: ``(arg[index] & value) == value_two``.
    """

    index: int
    op: int
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Rule:
    """``action`` for the system calls ``names``.

    ``when`` lists alternatives (OR), each a tuple of comparisons (AND); the
    default ``((),)`` means "always". ``unless`` drops the rule when the
    container has any of those capabilities; ``only_with`` keeps it only when
    it has all of them (Docker's ``includes.caps``).
    """

    names: tuple[str, ...]
    action: int = act_errno(errno.EPERM)
    when: tuple[tuple[ArgCmp, ...], ...] = ((),)
    unless: frozenset[str] = frozenset()
    only_with: frozenset[str] = frozenset()
    arches: frozenset[str] = frozenset()  #: empty = every architecture

    def applies(self, caps: frozenset[str], arch: str) -> bool:
        if self.unless & caps:
            return False
        if not self.only_with <= caps:
            return False
        return not self.arches or arch in self.arches


@dataclass(frozen=True)
class Profile:
    name: str
    default_action: int
    rules: tuple[Rule, ...] = field(default_factory=tuple)


# -- the default profile's data --------------------------------------------------------------

_CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
_PERSONALITY_OK_BITS = 0x0008 | 0x0020000  # PER_LINUX32, UNAME26
_AF_VSOCK = 40


def _any_flag(index: int, flags: list[int]) -> tuple[tuple[ArgCmp, ...], ...]:
    """Alternatives matching when any one of ``flags`` is set in ``arg[index]``."""
    return tuple((ArgCmp(index, CMP_MASKED_EQ, f, f),) for f in flags)


def _unsafe_personality() -> tuple[tuple[ArgCmp, ...], ...]:
    """Alternatives matching a 32-bit persona other than the safe ones and 0xffffffff.

    libseccomp allows one comparison per argument in a rule, so "not one of
    these values" is spelled as bit tests on two bits at a time: a stray bit
    set while bit 31 is clear; or bit 31 set while some lower bit is clear
    (that is, anything with bit 31 but 0xffffffff).
    """
    alts: list[tuple[ArgCmp, ...]] = []
    top = 1 << 31
    for b in range(31):
        bit = 1 << b
        if not bit & _PERSONALITY_OK_BITS:
            alts.append((ArgCmp(0, CMP_MASKED_EQ, bit | top, bit),))
    for b in range(31):
        bit = 1 << b
        alts.append((ArgCmp(0, CMP_MASKED_EQ, bit | top, top),))
    return tuple(alts)


def _r(names: str, unless: str = "", **kw: object) -> Rule:
    return Rule(names=tuple(names.split()), unless=frozenset(unless.split()),
                **kw)  # type: ignore[arg-type]


DEFAULT_RULES: tuple[Rule, ...] = (
    _r("init_module finit_module delete_module create_module query_module get_kernel_syms",
       unless="SYS_MODULE"),
    _r("reboot kexec_load kexec_file_load", unless="SYS_BOOT"),
    _r("mount umount umount2 pivot_root move_mount open_tree fsopen fsconfig fsmount fspick "
       "mount_setattr quotactl quotactl_fd fanotify_init unshare setns sethostname "
       "setdomainname swapon swapoff", unless="SYS_ADMIN"),
    _r("clone", unless="SYS_ADMIN", when=_any_flag(0, list(_CLONE_NEW_FLAGS.values())),
       arches=frozenset({"x86_64", "x86", "x32", "aarch64", "arm", "ppc64le", "riscv64"})),
    _r("clone", unless="SYS_ADMIN", when=_any_flag(1, list(_CLONE_NEW_FLAGS.values())),
       arches=frozenset({"s390x", "s390"})),
    # clone3 passes its flags in memory, out of seccomp's reach: ENOSYS makes
    # libc fall back to clone(), which the rule above can inspect.
    Rule(names=("clone3",), action=act_errno(errno.ENOSYS), unless=frozenset({"SYS_ADMIN"})),
    _r("keyctl add_key request_key"),
    _r("bpf", unless="SYS_ADMIN BPF"),
    _r("perf_event_open", unless="SYS_ADMIN PERFMON"),
    _r("settimeofday stime clock_settime clock_settime64 adjtimex clock_adjtime "
       "clock_adjtime64", unless="SYS_TIME"),
    _r("acct", unless="SYS_PACCT"),
    _r("syslog", unless="SYSLOG"),
    _r("vhangup", unless="SYS_TTY_CONFIG"),
    _r("iopl ioperm", unless="SYS_RAWIO"),
    _r("mbind set_mempolicy get_mempolicy move_pages migrate_pages", unless="SYS_NICE"),
    _r("open_by_handle_at", unless="DAC_READ_SEARCH"),
    _r("name_to_handle_at", unless="SYS_ADMIN DAC_READ_SEARCH"),
    _r("kcmp process_madvise", unless="SYS_PTRACE"),
    _r("_sysctl sysfs uselib ustat nfsservctl vm86 vm86old userfaultfd lookup_dcookie "
       "io_uring_setup io_uring_enter io_uring_register"),
    _r("personality", when=_unsafe_personality()),
    _r("socket", when=((ArgCmp(0, CMP_EQ, _AF_VSOCK),),)),
)

DEFAULT_PROFILE = Profile(name="default", default_action=ACT_ALLOW, rules=DEFAULT_RULES)


def blocked_names() -> list[str]:
    """Every system call name the default profile restricts (for docs and tests)."""
    return sorted({n for r in DEFAULT_RULES for n in r.names})
