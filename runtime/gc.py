"""Remove what containers that no longer exist left on the host.

Safe at every engine start: only touches names the runtime owns under the
state root (container directories without a valid record, the trash), cgroups
under the ``pycompose[_<instance>]`` parent with no container, and mounts
below the state root (none exist in normal operation: container mounts live
in private mount namespaces; a crash of an older layout could leave some).
"""

from __future__ import annotations

import contextlib
import os
import shutil

from pycompose.runtime import cgroups, syscalls
from pycompose.runtime.spec import GcReport
from pycompose.runtime.state import load


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def mounts_below(root: str) -> list[str]:
    """Mount points at or below ``root`` in this mount namespace, deepest first."""
    root = os.path.abspath(root).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = _unescape(line.split()[4])
            if (point + "/").startswith(root):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def collect(root: str, layout: cgroups.CgroupLayout | None, parent_cgroup: str,
            live: set[str]) -> GcReport:
    unmounted = []
    for point in mounts_below(root):
        with contextlib.suppress(OSError):
            syscalls.umount(point, syscalls.MNT_DETACH)
            unmounted.append(point)
    removed = []
    base = os.path.join(root, "containers")
    for cid in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if cid in live:
            continue
        path = os.path.join(base, cid)
        if load(path) is None:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    trash = os.path.join(root, "trash")
    for name in sorted(os.listdir(trash)) if os.path.isdir(trash) else []:
        path = os.path.join(trash, name)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    removed_cg: list[str] = []
    if layout is not None:
        removed_cg = cgroups.gc(layout, parent_cgroup, live)
    return GcReport(removed_dirs=tuple(removed), removed_cgroups=tuple(removed_cg),
                    unmounted=tuple(unmounted))
