"""Layout probing from mountinfo text, and the unit conversions (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.runtime.cgroups import Resources, parse_layout, shares_to_weight
from pycompose.runtime.errors import CgroupError

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_PROC = """\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
3:cpuset:/
2:cpu,cpuacct:/eng
0::/
"""


def test_hybrid_layout_places_cgroups_below_the_callers_own() -> None:
    layout = parse_layout(HYBRID_MOUNTINFO, HYBRID_PROC)
    assert layout.mode == "hybrid"
    assert layout.v1["memory"] == Path("/sys/fs/cgroup/memory/process_api/abc")
    assert layout.v1["cpu"] == layout.v1["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct/eng")
    assert layout.v2 == Path("/sys/fs/cgroup/unified")
    # co-mounted cpu,cpuacct is one directory, freezer first
    dirs = layout.v1_dirs()
    assert len(dirs) == 5
    assert len(set(dirs)) == 5


def test_unified_layout_with_namespaced_root() -> None:
    mountinfo = "30 23 0:26 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    layout = parse_layout(mountinfo, "0::/user.slice/session-1.scope\n")
    assert layout.mode == "unified"
    assert layout.v1 == {}
    assert layout.v2 == Path("/sys/fs/cgroup/session-1.scope")


def test_legacy_layout_and_escaped_mount_point() -> None:
    mountinfo = "32 31 0:29 / /cg\\040v1/memory rw - cgroup cgroup rw,memory\n"
    layout = parse_layout(mountinfo, "4:memory:/\n")
    assert layout.mode == "legacy"
    assert layout.v1["memory"] == Path("/cg v1/memory")
    assert layout.v2 is None


def test_no_cgroup_mounted_is_an_error() -> None:
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        parse_layout("22 1 0:5 / /proc rw - proc proc rw\n", "0::/\n")


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (512, 20), (262144, 10000)])
def test_shares_to_weight_matches_runc(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def test_docker_resource_defaults() -> None:
    mib = 1 << 20
    assert Resources(memory=64 * mib).swap_total(swap_accounted=True) == 128 * mib
    assert Resources(memory=64 * mib).swap_total(swap_accounted=False) is None
    assert Resources(memory=64 * mib, memory_swap=-1).swap_total(True) == -1
    assert Resources(cpus=1.5).quota_period() == (150_000, 100_000)
    assert Resources(cpus=0.5, cpu_period=50_000).quota_period() == (25_000, 50_000)
    assert Resources(pids_limit=0).pids_max() == -1
    assert Resources(pids_limit=-1).pids_max() == -1
    assert Resources(pids_limit=7).pids_max() == 7


@pytest.mark.parametrize(("resources", "message"), [
    (Resources(memory=-5), "memory: must be a positive"),
    (Resources(memory=10 << 20, memory_swap=5 << 20), "must not be smaller"),
    (Resources(memory_swap=5 << 20), "only together with memory"),
    (Resources(cpus=1, cpu_quota=5000), "mutually exclusive"),
    (Resources(cpu_shares=1), "cpu_shares"),
    (Resources(cpu_period=10), "cpu_period"),
])
def test_invalid_resources_are_named(resources: Resources, message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        resources.validate()
