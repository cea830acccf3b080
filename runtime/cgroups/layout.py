"""Which cgroup layout the host runs, and where this process sits in it.

Three layouts exist in the wild:

* ``unified``: only cgroup2 (``/sys/fs/cgroup`` has the cgroup2 magic); most
  current distributions.
* ``hybrid``: the v1 controller hierarchies plus a cgroup2 mount (usually at
  ``/sys/fs/cgroup/unified``) that holds no or few controllers; these VMs.
* ``legacy``: only v1 hierarchies.

Resource control uses v2 on ``unified`` hosts and v1 otherwise. The layout is
read from ``/proc/self/mountinfo`` (mount points and, for v1, which
controllers each hierarchy carries) and ``/proc/self/cgroup`` (the cgroup this
process runs in, per hierarchy), so pycompose's cgroups are created below the
caller's own cgroup and never assumed to start at ``/``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import CgroupError

CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270

#: The v1 controllers pycompose manages; each container gets a cgroup in each.
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices")

Mode = Literal["unified", "hybrid", "legacy"]


@dataclass(frozen=True)
class CgroupLayout:
    """The host's cgroup mounts and the caller's place in them.

    ``v1`` maps each mounted v1 controller to the directory of the caller's own
    cgroup in that controller's hierarchy (mount point joined with the path
    from ``/proc/self/cgroup``); co-mounted controllers (``cpu,cpuacct``) map
    to the same directory. ``v2`` is the caller's own cgroup directory in the
    cgroup2 hierarchy, when one is mounted.
    """

    mode: Mode
    v1: Mapping[str, Path] = field(default_factory=dict)
    v2: Path | None = None

    def v1_dirs(self) -> list[Path]:
        """The distinct v1 hierarchy directories of the managed controllers."""
        seen: list[Path] = []
        for ctrl in V1_CONTROLLERS:
            p = self.v1.get(ctrl)
            if p is not None and p not in seen:
                seen.append(p)
        return seen


class _Statfs(ctypes.Structure):
    # Only f_type is read; the rest of struct statfs is padding for the kernel.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 120)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def statfs_magic(path: str | os.PathLike[str]) -> int:
    """The filesystem magic number of ``path`` (statfs(2) ``f_type``)."""
    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise CgroupError(f"statfs {os.fspath(path)}: {os.strerror(err)}")
    return int(buf.f_type) & 0xFFFFFFFF


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field_):
        if field_[i] == "\\" and i + 4 <= len(field_) and field_[i + 1:i + 4].isdigit():
            out.append(chr(int(field_[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Mount:
    root: str
    point: str
    fstype: str
    options: frozenset[str]


def _parse_mountinfo(text: str) -> list[_Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        mounts.append(_Mount(root=_unescape(lf[3]), point=_unescape(lf[4]), fstype=rf[0],
                             options=frozenset(rf[2].split(","))))
    return mounts


def _parse_proc_cgroup(text: str) -> tuple[dict[str, str], str | None]:
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, ctrls, path = parts
        if ctrls == "":
            v2 = path
        else:
            for c in ctrls.split(","):
                v1[c] = path
    return v1, v2


def _join(point: str, mount_root: str, own: str) -> Path:
    # Inside a cgroup namespace or a bind mount, the mount's root may be a
    # subtree: the caller's path is shown relative to the hierarchy root.
    rel = own
    if mount_root not in ("", "/") and (own == mount_root or own.startswith(mount_root + "/")):
        rel = own[len(mount_root):]
    return Path(point) / rel.lstrip("/")


def parse_layout(mountinfo: str, proc_cgroup: str) -> CgroupLayout:
    """Build the layout from the text of ``/proc/self/mountinfo`` and ``/proc/self/cgroup``."""
    own_v1, own_v2 = _parse_proc_cgroup(proc_cgroup)
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for m in _parse_mountinfo(mountinfo):
        if m.fstype == "cgroup2" and v2 is None:
            v2 = _join(m.point, m.root, own_v2 or "/")
        elif m.fstype == "cgroup":
            for ctrl in V1_CONTROLLERS:
                if ctrl in m.options and ctrl not in v1:
                    v1[ctrl] = _join(m.point, m.root, own_v1.get(ctrl, "/"))
    if v1 and v2 is not None:
        mode: Mode = "hybrid"
    elif v1:
        mode = "legacy"
    elif v2 is not None:
        mode = "unified"
    else:
        raise CgroupError("no cgroup filesystem is mounted (see /proc/self/mountinfo)")
    return CgroupLayout(mode=mode, v1=v1, v2=v2)


def detect_layout() -> CgroupLayout:
    """Probe this host: statfs on ``/sys/fs/cgroup`` for the quick answer, then mountinfo."""
    try:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
        with open("/proc/self/cgroup") as f:
            proc_cgroup = f.read()
    except OSError as exc:
        raise CgroupError(f"read /proc/self/mountinfo or /proc/self/cgroup: {exc}") from exc
    layout = parse_layout(mountinfo, proc_cgroup)
    # A cgroup2 mount at /sys/fs/cgroup itself means a unified host, whatever
    # stray v1 named hierarchies (name=systemd) might also be mounted.
    if os.path.isdir("/sys/fs/cgroup") and statfs_magic("/sys/fs/cgroup") == CGROUP2_SUPER_MAGIC:
        return CgroupLayout(mode="unified", v1={}, v2=layout.v2)
    return layout
