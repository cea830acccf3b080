"""cgroups v1 and v2 behind one interface.

::

    layout = detect_layout()                       # unified / hybrid / legacy
    cg = open_cgroup(layout, "pycompose", cid)     # CgroupV2 on unified, else CgroupV1
    cg.create()
    cg.apply(Resources(memory=64 << 20, pids_limit=100,
                       devices=device_rules(privileged, extra=[host_device_rule("/dev/fuse")])))
    files = cg.procs_files()                       # hand to the spawner …
    join_cgroup(files)                             # … which calls this in the child
    cg.stats(); cg.oom_killed(); cg.freeze(); cg.thaw()
    cg.kill_all(); cg.remove()
    gc(layout, "pycompose", live_ids)              # at engine start

All errors are :class:`~pycompose.runtime.errors.CgroupError` naming the path
and the value written. See :mod:`.base` for what blocks and for how long.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import CgroupError
from ._io import remove_dir, subdirs
from .base import Cgroup, OomWatch, check_name, join_cgroup
from .devices import (
    ALLOW_ALL_DEVICES,
    DEFAULT_DEVICE_RULES,
    DeviceRule,
    device_rules,
    host_device_rule,
    parse_device_rule,
)
from .layout import (
    CGROUP2_SUPER_MAGIC,
    CGROUP_SUPER_MAGIC,
    CgroupLayout,
    detect_layout,
    parse_layout,
    statfs_magic,
)
from .resources import CgroupStats, Resources, shares_to_weight
from .v1 import CgroupV1
from .v2 import CgroupV2

__all__ = [
    "ALLOW_ALL_DEVICES",
    "CGROUP2_SUPER_MAGIC",
    "CGROUP_SUPER_MAGIC",
    "DEFAULT_DEVICE_RULES",
    "Cgroup",
    "CgroupLayout",
    "CgroupStats",
    "CgroupV1",
    "CgroupV2",
    "DeviceRule",
    "OomWatch",
    "Resources",
    "cgroup_from_record",
    "detect_layout",
    "device_rules",
    "gc",
    "host_device_rule",
    "join_cgroup",
    "open_cgroup",
    "parent_dirs",
    "parse_device_rule",
    "parse_layout",
    "remove_parent",
    "shares_to_weight",
    "statfs_magic",
]


def open_cgroup(layout: CgroupLayout, parent: str, name: str) -> Cgroup:
    """The container cgroup ``parent/name`` below the caller's own cgroup.

    v2 on a unified host; v1 on hybrid and legacy hosts (where the
    controllers live). Nothing is created until :meth:`Cgroup.create`.
    """
    if layout.mode == "unified":
        assert layout.v2 is not None
        return CgroupV2(layout.v2, parent, name)
    return CgroupV1(layout.v1, parent, name)


def cgroup_from_record(record: Mapping[str, object]) -> Cgroup:
    """The cgroup described by :meth:`Cgroup.to_record` (``CgroupError`` if malformed)."""
    try:
        parent, name = str(record["parent"]), str(record["name"])
        if record["version"] == 1:
            bases = record["bases"]
            if not isinstance(bases, Mapping):
                raise TypeError("bases")
            return CgroupV1({str(k): Path(str(v)) for k, v in bases.items()}, parent, name)
        if record["version"] == 2:
            return CgroupV2(Path(str(record["base"])), parent, name)
    except (KeyError, TypeError) as exc:
        raise CgroupError(f"cgroup record {dict(record)!r}: missing or bad {exc}") from None
    raise CgroupError(f"cgroup record {dict(record)!r}: unknown version")


def parent_dirs(layout: CgroupLayout, parent: str) -> list[Path]:
    """The directories of the ``parent`` cgroup (one per v1 hierarchy, or one on v2)."""
    return _parent_dirs(layout, parent)


def _parent_dirs(layout: CgroupLayout, parent: str) -> list[Path]:
    if layout.mode == "unified":
        assert layout.v2 is not None
        return [layout.v2 / parent]
    return [base / parent for base in layout.v1_dirs()]


def gc(layout: CgroupLayout, parent: str, live_names: Iterable[str],
       timeout: float = 5.0) -> list[str]:
    """Remove the cgroups under ``parent`` whose name is not in ``live_names``.

    For leftovers of containers that no longer exist (a crash between
    creating a cgroup and recording it, an engine killed mid-removal). Any
    process still inside such a cgroup is SIGKILLed: the engine has no record
    of it. Safe at every engine start; returns the names removed.
    """
    check_name("parent", parent)
    live = set(live_names)
    stale: set[str] = set()
    for d in _parent_dirs(layout, parent):
        stale.update(n for n in subdirs(d) if n not in live)
    for name in sorted(stale):
        open_cgroup(layout, parent, name).remove(kill=True, timeout=timeout)
    return sorted(stale)


def remove_parent(layout: CgroupLayout, parent: str) -> None:
    """Remove the (empty) ``parent`` cgroup itself; ``CgroupError`` while it has children."""
    check_name("parent", parent)
    for d in _parent_dirs(layout, parent):
        remove_dir(d)
