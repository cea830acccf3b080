"""cgroups through the one interface, on this host's real hierarchies.

Backends under test:

* ``v1``: the real v1 controller hierarchies of this (hybrid) host, below the
  test process's own cgroup in each (the memory one is nested here).
* ``v2``: the real cgroup2 hierarchy mounted at /sys/fs/cgroup/unified. It has
  no memory/cpu/pids controllers here, but cgroup.procs, cgroup.events,
  cgroup.freeze and cgroup.kill are real.
* ``v2-layout``: a temporary directory laid out like a cgroup2 tree with
  every controller enabled, for the controller files this host lacks.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycompose.runtime.cgroups import (
    CGROUP2_SUPER_MAGIC,
    Cgroup,
    CgroupLayout,
    CgroupV1,
    CgroupV2,
    Resources,
    cgroup_from_record,
    detect_layout,
    device_rules,
    gc,
    open_cgroup,
    remove_parent,
    statfs_magic,
)
from pycompose.runtime.errors import CgroupError

MIB = 1 << 20
BUSYBOX = "/bin/busybox"

Factory = Callable[[str], Cgroup]

V2_LEAF_FILES = {
    "cgroup.controllers": "cpuset cpu io memory pids\n",
    "cgroup.subtree_control": "\n",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.procs": "",
    "cgroup.type": "domain\n",
    "cpu.max": "max 100000\n",
    "cpu.weight": "100\n",
    "cpu.stat": "usage_usec 254031\nuser_usec 180211\nsystem_usec 73820\n"
                "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "cpuset.cpus": "\n",
    "cpuset.mems": "\n",
    "memory.current": "3145728\n",
    "memory.peak": "5242880\n",
    "memory.max": "max\n",
    "memory.low": "0\n",
    "memory.swap.max": "max\n",
    "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
    "memory.stat": "anon 1048576\nfile 2097152\nactive_file 1048576\n"
                   "inactive_file 1048576\n",
    "pids.current": "2\n",
    "pids.max": "max\n",
}
V2_ROOT_FILES = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
    "cgroup.subtree_control": "\n",
    "cgroup.procs": "1\n",
}


def _write_files(d: Path, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


@pytest.fixture(scope="module")
def layout() -> CgroupLayout:
    return detect_layout()


@pytest.fixture
def parent_name(run_id: str) -> str:
    return f"pycompose_{run_id}"


def _factory(make: Callable[[str], Cgroup], cleanup: Callable[[], None],
             before_remove: Callable[[Cgroup], None] = lambda cg: None) -> Iterator[Factory]:
    made: list[Cgroup] = []

    def new(name: str) -> Cgroup:
        cg = make(name)
        made.append(cg)
        return cg

    try:
        yield new
    finally:
        errors = []
        for cg in made:
            try:
                before_remove(cg)
                cg.remove(kill=True)
            except CgroupError as exc:
                errors.append(exc)
        cleanup()
        assert not errors, errors


@pytest.fixture
def v1_cgroups(layout: CgroupLayout, parent_name: str) -> Iterator[Factory]:
    if not layout.v1:
        pytest.skip("no cgroup v1 hierarchies on this host")
    yield from _factory(lambda n: CgroupV1(layout.v1, parent_name, n),
                        lambda: remove_parent(CgroupLayout("legacy", layout.v1), parent_name))


@pytest.fixture
def v2_cgroups(layout: CgroupLayout, parent_name: str) -> Iterator[Factory]:
    if layout.v2 is None or statfs_magic(layout.v2) != CGROUP2_SUPER_MAGIC:
        pytest.skip("no cgroup2 hierarchy on this host")
    base = layout.v2
    yield from _factory(lambda n: CgroupV2(base, parent_name, n),
                        lambda: remove_parent(CgroupLayout("unified", {}, base), parent_name))


@pytest.fixture
def v2_layout_cgroups(tmp_path: Path, parent_name: str) -> Iterator[Factory]:
    base = tmp_path / "cgroup2"
    _write_files(base, V2_ROOT_FILES)
    _write_files(base / parent_name, V2_LEAF_FILES)

    def make(name: str) -> Cgroup:
        # The kernel fills a new cgroup directory; here the test does.
        _write_files(base / parent_name / name, V2_LEAF_FILES)
        return CgroupV2(base, parent_name, name)

    def drop_files(cg: Cgroup) -> None:
        # On cgroupfs the interface files vanish with rmdir; plain files do not.
        for f in cg.path.glob("*"):
            if f.is_file():
                f.unlink()
            elif f.name.startswith("cpuset."):
                f.rmdir()

    yield from _factory(make, lambda: None, drop_files)


@pytest.fixture(params=[pytest.param("v1", marks=pytest.mark.root), "v2-layout"])
def limits_backend(request: pytest.FixtureRequest) -> Factory:
    """Backends where every resource controller is available."""
    name = {"v1": "v1_cgroups", "v2-layout": "v2_layout_cgroups"}[request.param]
    factory: Factory = request.getfixturevalue(name)
    return factory


@pytest.fixture(params=[pytest.param("v1", marks=pytest.mark.root),
                        pytest.param("v2", marks=pytest.mark.root)])
def process_backend(request: pytest.FixtureRequest) -> Factory:
    """Real kernel hierarchies, where processes can join, freeze and die."""
    name = {"v1": "v1_cgroups", "v2": "v2_cgroups"}[request.param]
    factory: Factory = request.getfixturevalue(name)
    return factory


def _spawn(cg: Cgroup, script: str, **kw: object) -> subprocess.Popen[bytes]:
    """A busybox shell that joins ``cg`` before exec, the way the spawner's child does."""
    proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
        [BUSYBOX, "sh", "-c", script], preexec_fn=cg.join, **kw)
    return proc


def _reap(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.communicate()  # waits and closes the pipes


def _read_back(cg: Cgroup, key: str) -> str:
    """Read a limit back from the backend's own file for ``key``."""
    if isinstance(cg, CgroupV1):
        files = {"cpu": ("cpu", "cpu.cfs_quota_us"), "period": ("cpu", "cpu.cfs_period_us"),
                 "weight": ("cpu", "cpu.shares"), "cpus": ("cpuset", "cpuset.cpus"),
                 "mems": ("cpuset", "cpuset.mems"), "low": ("memory", "memory.soft_limit_in_bytes"),
                 "swap": ("memory", "memory.memsw.limit_in_bytes")}
        ctrl, fname = files[key]
        return str((cg.controller_dir(ctrl) / fname).read_text().strip())
    v2 = {"cpu": "cpu.max", "period": "cpu.max", "weight": "cpu.weight", "cpus": "cpuset.cpus",
          "mems": "cpuset.mems", "low": "memory.low", "swap": "memory.swap.max"}
    return str((cg.path / v2[key]).read_text().strip())


# -- shared interface tests: limits ---------------------------------------------------------


def test_apply_limits_and_read_them_back(limits_backend: Factory) -> None:
    cg = limits_backend("limits")
    cg.create()
    assert cg.exists()
    cg.apply(Resources(memory=64 * MIB, memory_reservation=32 * MIB, cpus=1.5, cpu_shares=512,
                       cpuset_cpus="0", cpuset_mems="0", pids_limit=100))
    st = cg.stats()
    assert st.memory_limit == 64 * MIB
    assert st.pids_limit == 100
    assert _read_back(cg, "low") == str(32 * MIB)
    assert _read_back(cg, "cpus") == "0"
    assert _read_back(cg, "mems") == "0"
    if cg.version == 1:
        assert _read_back(cg, "cpu") == "150000"
        assert _read_back(cg, "period") == "100000"
        assert _read_back(cg, "weight") == "512"
        assert _read_back(cg, "swap") == str(128 * MIB)  # Docker: memory+swap = 2 × memory
    else:
        assert _read_back(cg, "cpu") == "150000 100000"
        assert _read_back(cg, "weight") == "20"  # runc's shares → weight
        assert _read_back(cg, "swap") == str(64 * MIB)  # v2 limits swap alone


def test_lowering_and_raising_memory_with_swap(limits_backend: Factory) -> None:
    cg = limits_backend("memsw")
    cg.create()
    cg.apply(Resources(memory=64 * MIB, memory_swap=64 * MIB))
    cg.apply(Resources(memory=256 * MIB, memory_swap=512 * MIB))
    assert cg.stats().memory_limit == 256 * MIB
    cg.apply(Resources(memory=16 * MIB, memory_swap=-1))
    assert cg.stats().memory_limit == 16 * MIB
    unlimited = _read_back(cg, "swap")
    assert unlimited == "max" or int(unlimited) >= 1 << 62


def test_unlimited_values(limits_backend: Factory) -> None:
    cg = limits_backend("unlimited")
    cg.create()
    cg.apply(Resources(pids_limit=10, cpus=0.5))
    cg.apply(Resources(pids_limit=0, cpus=0))
    assert cg.stats().pids_limit is None
    assert _read_back(cg, "cpu") in ("-1", "max 100000")


def test_write_error_names_path_and_value(limits_backend: Factory) -> None:
    cg = limits_backend("badvalue")
    cg.create()
    if cg.version == 2:
        # A plain file takes any value: make the write fail the way EISDIR does.
        (cg.path / "cpuset.cpus").unlink()
        (cg.path / "cpuset.cpus").mkdir()
    with pytest.raises(CgroupError, match=r"write '0-4096' to .*cpuset\.cpus"):
        cg.apply(Resources(cpuset_cpus="0-4096"))


def test_v2_stats_read_the_v2_files(v2_layout_cgroups: Factory) -> None:
    cg = v2_layout_cgroups("stats")
    cg.create()
    st = cg.stats()
    assert st.cpu_usage_ns == 254031 * 1000
    assert st.memory_usage == 3 * MIB
    assert st.memory_working_set == 2 * MIB
    assert st.memory_max_usage == 5 * MIB
    assert st.memory_limit is None
    assert st.pids_current == 2
    assert st.oom_kills == 1
    assert cg.oom_killed()
    assert not cg.oom_killed(since=1)


def test_v2_create_enables_controllers_along_the_path(v2_layout_cgroups: Factory,
                                                      parent_name: str) -> None:
    cg = v2_layout_cgroups("enable")
    cg.create()
    base = cg.path.parent.parent
    for d in (base, base / parent_name):
        written = (d / "cgroup.subtree_control").read_text().split()
        assert written == ["+cpu", "+cpuset", "+io", "+memory", "+pids"]


def test_v2_missing_controller_is_named(v2_cgroups: Factory) -> None:
    cg = v2_cgroups("nomem")
    cg.create()
    available = (cg.path / "cgroup.controllers").read_text().split()
    if "memory" in available:
        pytest.skip("this host's cgroup2 hierarchy has the memory controller")
    with pytest.raises(CgroupError, match="needs the memory controller"):
        cg.apply(Resources(memory=64 * MIB))


def test_v1_missing_controller_is_named(layout: CgroupLayout, parent_name: str) -> None:
    cg = CgroupV1({"freezer": Path("/nonexistent")}, parent_name, "x")
    with pytest.raises(CgroupError, match="the pids controller is not mounted"):
        cg.apply(Resources(pids_limit=5))


@pytest.mark.parametrize("bad", ["", "..", "a/b"])
def test_bad_names_are_refused(layout: CgroupLayout, bad: str) -> None:
    with pytest.raises(CgroupError, match="one path component"):
        open_cgroup(layout, "pycompose", bad)


# -- shared interface tests: processes (real hierarchies) ---------------------------------


def test_a_process_joins_before_exec(process_backend: Factory) -> None:
    cg = process_backend("join")
    cg.create()
    proc = _spawn(cg, "exec sleep 1000")
    try:
        assert cg.pids() == [proc.pid]
        own = Path(f"/proc/{proc.pid}/cgroup").read_text()
        assert f"/{cg.parent}/{cg.name}\n" in own
    finally:
        _reap(proc)


def test_add_pid_moves_a_running_process(process_backend: Factory) -> None:
    cg = process_backend("addpid")
    cg.create()
    proc = subprocess.Popen([BUSYBOX, "sleep", "1000"])
    try:
        assert cg.pids() == []
        cg.add_pid(proc.pid)
        assert cg.pids() == [proc.pid]
    finally:
        _reap(proc)


def test_freeze_and_thaw(process_backend: Factory) -> None:
    cg = process_backend("freeze")
    cg.create()
    proc = _spawn(cg, "echo ready; while :; do :; done", stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        assert not cg.frozen()
        cg.freeze()
        assert cg.frozen()
        cg.thaw()
        assert not cg.frozen()
    finally:
        _reap(proc)


def test_kill_all_reaches_double_forked_daemons(process_backend: Factory) -> None:
    cg = process_backend("killall")
    cg.create()
    # The subshell forks a sleep and exits: the sleep is re-parented away from us.
    proc = _spawn(cg, "(sleep 1000 &); echo ready; exec sleep 1001", stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        members = cg.pids()
        assert proc.pid in members
        assert len(members) == 2
        orphan = next(p for p in members if p != proc.pid)
        assert os.getppid() != orphan
        cg.kill_all()
        assert cg.pids() == []
        assert proc.wait() == -signal.SIGKILL
        assert not _alive(orphan)
    finally:
        _reap(proc)


def test_kill_all_with_another_signal(process_backend: Factory) -> None:
    cg = process_backend("term")
    cg.create()
    proc = _spawn(cg, "echo ready; exec sleep 1000", stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        cg.kill_all(signal.SIGTERM)
        assert proc.wait() == -signal.SIGTERM
        assert not cg.frozen()
    finally:
        _reap(proc)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_remove_refuses_while_processes_remain(process_backend: Factory) -> None:
    cg = process_backend("busy")
    cg.create()
    proc = _spawn(cg, "exec sleep 1000")
    try:
        with pytest.raises(CgroupError, match="still has processes"):
            cg.remove()
        assert cg.exists()
        cg.remove(kill=True)
        assert not cg.exists()
        assert proc.wait() == -signal.SIGKILL
        cg.remove()  # already gone: fine
    finally:
        _reap(proc)


def test_remove_takes_child_cgroups_too(process_backend: Factory) -> None:
    cg = process_backend("nested")
    cg.create()
    for d in cg.dirs():
        (d / "inner").mkdir()
    cg.remove()
    assert not cg.exists()


def test_gc_removes_only_stale_cgroups(process_backend: Factory, layout: CgroupLayout,
                                       parent_name: str) -> None:
    live, stale = process_backend("live"), process_backend("stale")
    live.create()
    stale.create()
    proc = _spawn(stale, "exec sleep 1000")
    try:
        gc_layout = (CgroupLayout("unified", {}, layout.v2) if live.version == 2
                     else CgroupLayout("legacy", layout.v1))
        assert gc(gc_layout, parent_name, ["live"]) == ["stale"]
        assert live.exists()
        assert not stale.exists()
        assert proc.wait() == -signal.SIGKILL
        assert gc(gc_layout, parent_name, ["live"]) == []
    finally:
        _reap(proc)


# -- v1 controllers for real ----------------------------------------------------------------


@pytest.mark.root
def test_memory_hog_is_oom_killed_and_reported(v1_cgroups: Factory) -> None:
    cg = v1_cgroups("oom")
    cg.create()
    cg.apply(Resources(memory=32 * MIB, memory_swap=32 * MIB))
    assert not cg.oom_killed()
    with cg.open_oom_watch() as watch:
        proc = subprocess.Popen([sys.executable, "-c", "b = b'x' * (256 << 20)"],
                                preexec_fn=cg.join, stderr=subprocess.DEVNULL)  # noqa: PLW1509
        assert proc.wait() == -signal.SIGKILL
        readable, _, _ = select.select([watch.fileno()], [], [], 10)
        assert readable == [watch.fileno()]
        watch.drain()
    assert cg.oom_killed()
    st = cg.stats()
    assert st.oom_kills >= 1
    assert st.memory_limit == 32 * MIB
    assert st.memory_max_usage is not None
    assert st.memory_max_usage > 16 * MIB


@pytest.mark.root
def test_pids_limit_stops_a_fork(v1_cgroups: Factory) -> None:
    cg = v1_cgroups("pids")
    cg.create()
    cg.apply(Resources(pids_limit=4))
    # Only the shell holds the pipes: EOF on stdout means it gave up or finished forking.
    script = ("for i in 1 2 3 4 5 6 7 8; do sleep 1000 </dev/null >/dev/null 2>&1 & done;"
              "echo done; exec >/dev/null; wait")
    proc = _spawn(cg, script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.read()
        st = cg.stats()
        assert st.pids_limit == 4
        assert st.pids_current is not None
        assert st.pids_current <= 4
        events = (cg.controller_dir("pids") if isinstance(cg, CgroupV1) else cg.path)
        assert int((events / "pids.events").read_text().split()[1]) > 0
    finally:
        cg.kill_all()
        _, err = proc.communicate()
    assert b"fork" in err.lower()


@pytest.mark.root
def test_cpu_time_is_accounted(v1_cgroups: Factory) -> None:
    cg = v1_cgroups("cpu")
    cg.create()
    before = cg.stats().cpu_usage_ns
    proc = _spawn(cg, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")
    assert proc.wait() == 0
    after = cg.stats().cpu_usage_ns
    assert before is not None
    assert after is not None
    assert after > before


def test_v2_oom_watch_wakes_on_memory_events(v2_layout_cgroups: Factory) -> None:
    cg = v2_layout_cgroups("oomwatch")
    cg.create()
    with cg.open_oom_watch() as watch:
        assert select.select([watch.fileno()], [], [], 0)[0] == []
        # What the kernel does on an OOM kill: memory.events changes (IN_MODIFY).
        events = cg.path / "memory.events"
        events.write_text(events.read_text().replace("oom_kill 1", "oom_kill 2"))
        assert select.select([watch.fileno()], [], [], 10)[0] == [watch.fileno()]
        watch.drain()
        assert select.select([watch.fileno()], [], [], 0)[0] == []
    assert cg.oom_kill_count() == 2
    assert cg.oom_killed(since=1)


def test_v2_oom_watch_needs_the_memory_controller(v2_cgroups: Factory) -> None:
    cg = v2_cgroups("nomemwatch")
    cg.create()
    if "memory" in (cg.path / "cgroup.controllers").read_text().split():
        pytest.skip("this host's cgroup2 hierarchy has the memory controller")
    with pytest.raises(CgroupError, match="needs the memory controller"):
        cg.open_oom_watch()


def test_device_rules_allow_only_the_default_devices(process_backend: Factory,
                                                     tmp_path: Path) -> None:
    cg = process_backend("devices")
    cg.create()
    cg.apply(Resources(devices=device_rules()))
    node = tmp_path / "kmsg"
    script = (f"head -c 3 /dev/zero | wc -c; echo x >/dev/null && echo null-ok;"
              f"mknod {node} c 1 11 && echo mknod-ok;"
              f"head -c 1 {node} >/dev/null 2>&1 || echo node-denied;"
              f"head -c 1 /dev/kmsg >/dev/null 2>&1 || echo kmsg-denied")
    proc = _spawn(cg, script, stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    assert out.decode().split() == ["3", "null-ok", "mknod-ok", "node-denied", "kmsg-denied"]


def test_privileged_devices(process_backend: Factory) -> None:
    cg = process_backend("privdevices")
    cg.create()
    cg.apply(Resources(devices=device_rules(privileged=True)))
    proc = _spawn(cg, "head -c 1 /dev/kmsg >/dev/null && echo kmsg-ok", stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    assert out == b"kmsg-ok\n"


def test_a_record_finds_the_cgroup_again(process_backend: Factory) -> None:
    cg = process_backend("record")
    cg.create()
    proc = _spawn(cg, "exec sleep 1000")
    try:
        record = json.loads(json.dumps(cg.to_record()))  # as stored with the container
        again = cgroup_from_record(record)
        assert type(again) is type(cg)
        assert again.dirs() == cg.dirs()
        assert again.pids() == [proc.pid]
        again.remove(kill=True)
        assert not cg.exists()
    finally:
        _reap(proc)


def test_bad_records_are_refused() -> None:
    with pytest.raises(CgroupError, match="unknown version"):
        cgroup_from_record({"version": 3, "parent": "p", "name": "n"})
    with pytest.raises(CgroupError, match="missing or bad"):
        cgroup_from_record({"version": 1, "parent": "p", "name": "n"})
