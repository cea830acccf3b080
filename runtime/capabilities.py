"""Linux capabilities for a container process, the way Docker sets them.

Which set: :func:`resolve_capabilities` applies Compose's ``cap_add`` /
``cap_drop`` / ``privileged`` over Docker's default set, with Docker's rules
(``cap_add: [ALL]`` = everything but the drops; ``cap_drop: [ALL]`` = only the
adds; otherwise default − drops + adds; ``privileged`` = every capability the
kernel knows). Names are case-insensitive, with or without ``CAP_``.

How Docker hands them to the process (moby ``oci.SetCapabilities``):

* uid 0: bounding = effective = permitted = the set; inheritable and ambient empty;
* any other uid: only the bounding set; effective, permitted, inheritable
  and ambient are empty (as after a plain ``execve`` by a non-root user), so
  a non-root process has no capabilities unless its binary has file caps.

Order in the forked child (the spawner)::

    capabilities.before_user_switch(caps)     # bounding drop, PR_SET_KEEPCAPS=1
    [seccomp.load(...) here when no_new_privileges is off — needs CAP_SYS_ADMIN]
    os.setgroups(...); os.setresgid(...); os.setresuid(...)
    capabilities.after_user_switch(caps, uid) # capset, clear ambient, KEEPCAPS=0
    [prctl(PR_SET_NO_NEW_PRIVS); seccomp.load(...) when no_new_privileges is on]
    execve

Dropping the bounding set needs CAP_SETPCAP, so it comes first; KEEPCAPS lets
setresuid work even when SETUID/SETGID are being dropped and keeps the
permitted set across the uid change for the final capset. For uid 0 the
bounding set is what matters most: ``execve`` by root recomputes permitted
from it.

A capability this process does not hold itself (here root lacks
CAP_SYS_RESOURCE) cannot be given to a container: the apply functions
leave it out, and :func:`unavailable` names such capabilities so the caller
can warn.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
from collections.abc import Iterable

from . import syscalls
from .errors import SecurityError

#: Capability numbers (linux/capability.h); names without the ``CAP_`` prefix.
CAPABILITIES: dict[str, int] = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4,
    "KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "LINUX_IMMUTABLE": 9,
    "NET_BIND_SERVICE": 10, "NET_BROADCAST": 11, "NET_ADMIN": 12, "NET_RAW": 13,
    "IPC_LOCK": 14, "IPC_OWNER": 15, "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18,
    "SYS_PTRACE": 19, "SYS_PACCT": 20, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23,
    "SYS_RESOURCE": 24, "SYS_TIME": 25, "SYS_TTY_CONFIG": 26, "MKNOD": 27, "LEASE": 28,
    "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30, "SETFCAP": 31, "MAC_OVERRIDE": 32,
    "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35, "BLOCK_SUSPEND": 36, "AUDIT_READ": 37,
    "PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}
_NAMES = {num: name for name, num in CAPABILITIES.items()}

#: Docker's default set for a container (moby ``caps.DefaultCapabilities``).
DEFAULT_CAPABILITIES: frozenset[str] = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})

PR_SET_KEEPCAPS = 8
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@functools.cache
def last_cap() -> int:
    """The highest capability number the running kernel knows.

    Read once per process (so a forked child, where /proc may not be mounted
    yet, uses the parent's answer).
    """
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def all_capabilities() -> frozenset[str]:
    """Every capability the kernel knows (what ``privileged`` gets)."""
    top = last_cap()
    return frozenset(name for name, num in CAPABILITIES.items() if num <= top)


def normalize(name: str) -> str:
    """``cap_net_admin`` / ``NET_ADMIN`` / ``CAP_NET_ADMIN`` → ``NET_ADMIN``; ``all`` → ``ALL``."""
    up = name.strip().upper()
    if up.startswith("CAP_"):
        up = up[4:]
    if up != "ALL" and up not in CAPABILITIES:
        raise SecurityError(f"unknown capability {name!r}")
    return up


def resolve_capabilities(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = (),
                         privileged: bool = False,
                         default: frozenset[str] = DEFAULT_CAPABILITIES) -> frozenset[str]:
    """The capability set of a container, with Docker's rules (see the module doc)."""
    adds = {normalize(c) for c in cap_add}
    drops = {normalize(c) for c in cap_drop}
    if privileged:
        return all_capabilities()
    if "ALL" in adds:
        return frozenset(all_capabilities() - drops)
    if "ALL" in drops:
        return frozenset(adds - {"ALL"})
    return frozenset((default - drops) | adds)


def to_mask(caps: Iterable[str]) -> int:
    """A capability set as the kernel's bit mask."""
    mask = 0
    for c in caps:
        mask |= 1 << CAPABILITIES[c]
    return mask


def from_mask(mask: int) -> frozenset[str]:
    """Names of the bits set in ``mask`` (unknown bits are left out)."""
    return frozenset(name for num, name in _NAMES.items() if mask >> num & 1)


def read_status_masks(pid: int | str = "self") -> dict[str, int]:
    """``CapInh``/``CapPrm``/``CapEff``/``CapBnd``/``CapAmb`` of a process, as integers."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, _, value = line.partition(":")
                out[key] = int(value.strip(), 16)
    return out


def unavailable(caps: Iterable[str]) -> frozenset[str]:
    """The capabilities in ``caps`` this process cannot pass on (not in its bounding set)."""
    return frozenset(caps) - from_mask(read_status_masks()["CapBnd"])


# -- applying them in the forked child ----------------------------------------------------


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.capset.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]
_libc.capget.argtypes = [ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData)]


def _capget() -> tuple[int, int, int]:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise SecurityError(f"capget: {os.strerror(err)}")
    eff = data[0].effective | data[1].effective << 32
    prm = data[0].permitted | data[1].permitted << 32
    inh = data[0].inheritable | data[1].inheritable << 32
    return eff, prm, inh


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise SecurityError(f"capset effective={effective:#x} permitted={permitted:#x} "
                            f"inheritable={inheritable:#x}: {os.strerror(err)}")


def drop_bounding(caps: Iterable[str]) -> None:
    """Drop every capability not in ``caps`` from the bounding set (needs CAP_SETPCAP)."""
    keep = to_mask(caps)
    for num in range(last_cap() + 1):
        if keep >> num & 1:
            continue
        try:
            if syscalls.prctl(syscalls.PR_CAPBSET_READ, num) == 0:
                continue
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, num)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                break  # beyond what this kernel knows
            name = _NAMES.get(num, str(num))
            raise SecurityError(f"drop CAP_{name} from the bounding set: {exc.strerror}"
                                ) from exc


def before_user_switch(caps: Iterable[str]) -> None:
    """Step 1 in the child: bounding drop, then keep the permitted set across setuid."""
    drop_bounding(caps)
    try:
        syscalls.prctl(PR_SET_KEEPCAPS, 1)
    except OSError as exc:
        raise SecurityError(f"prctl PR_SET_KEEPCAPS: {exc.strerror}") from exc


def after_user_switch(caps: Iterable[str], uid: int) -> None:
    """Step 2, after setgroups/setresgid/setresuid: the final capset, as Docker does.

    uid 0: effective = permitted = ``caps`` (what this process holds of them);
    any other uid: all empty. Inheritable and ambient are always emptied.
    """
    _eff, permitted, _inh = _capget()
    target = to_mask(caps) & permitted if uid == 0 else 0
    _capset(target, target, 0)
    try:
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
        syscalls.prctl(PR_SET_KEEPCAPS, 0)
    except OSError as exc:
        raise SecurityError(f"prctl (clear ambient / keepcaps): {exc.strerror}") from exc


def apply_capabilities(caps: Iterable[str], uid: int = 0) -> None:
    """Both steps for a process that does not change its uid (uid stays ``uid``)."""
    caps = frozenset(caps)
    before_user_switch(caps)
    after_user_switch(caps, uid)
