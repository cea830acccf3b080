"""cgroup v1 backend: one directory per controller hierarchy.

The container's cgroup is ``<caller's cgroup in that hierarchy>/<parent>/<name>``
in each of cpu, cpuacct, cpuset, memory, pids and freezer (co-mounted
controllers share a directory). Quirks handled here:

* a new cpuset cgroup starts with empty ``cpuset.cpus``/``cpuset.mems`` and
  refuses tasks, so both are copied down from the parent at creation;
* ``memory.memsw.limit_in_bytes`` must never be below ``memory.limit_in_bytes``,
  so the two are written in the order that keeps that true;
* the v1 freezer has no change notification: ``freeze`` re-reads
  ``freezer.state`` with a short, bounded back-off (1 ms doubling to 20 ms)
  until it says ``FROZEN``; ``wait_empty`` does the same on ``cgroup.procs``.
  Both normally settle in well under a millisecond.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from ..errors import CgroupError
from ._io import (
    make_dir,
    read_int,
    read_keyed,
    read_optional,
    read_text,
    write_value,
    write_values,
)
from .base import Cgroup, OomWatch
from .resources import (
    V1_UNLIMITED_THRESHOLD,
    CgroupStats,
    Resources,
)


def _backoff(timeout: float) -> list[float]:
    """Sleep intervals for a bounded re-check: 1 ms doubling to 20 ms, ``timeout`` in all."""
    out, total, step = [], 0.0, 0.001
    while total < timeout:
        out.append(step)
        total += step
        step = min(step * 2, 0.02)
    return out


class _EventfdOomWatch(OomWatch):
    """v1 OOM notification: an eventfd registered through ``cgroup.event_control``."""

    def __init__(self, memdir: Path) -> None:
        self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        control = memdir / "memory.oom_control"
        try:
            ofd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            os.close(self._efd)
            raise CgroupError(f"open {control}: {exc.strerror}") from exc
        try:
            # The kernel keeps its own reference to the oom_control file.
            write_value(memdir / "cgroup.event_control", f"{self._efd} {ofd}")
        except CgroupError:
            os.close(self._efd)
            raise
        finally:
            os.close(ofd)

    def fileno(self) -> int:
        return self._efd

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._efd)

    def close(self) -> None:
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1


class CgroupV1(Cgroup):
    """A container cgroup on v1 hierarchies.

    ``hierarchies`` maps each mounted controller to the caller's own cgroup
    directory in it (``CgroupLayout.v1``).
    """

    version = 1
    _join_file = "tasks"

    def __init__(self, hierarchies: Mapping[str, Path], parent: str, name: str) -> None:
        super().__init__(parent, name)
        self._bases = dict(hierarchies)
        if not self._bases:
            raise CgroupError("no cgroup v1 controller hierarchy is mounted")

    def to_record(self) -> dict[str, object]:
        return {"version": 1, "parent": self.parent, "name": self.name,
                "bases": {ctrl: str(base) for ctrl, base in sorted(self._bases.items())}}

    def _unique_bases(self) -> list[Path]:
        # freezer first: it is the hierarchy used for listing and freezing.
        order = sorted(self._bases.items(), key=lambda kv: (kv[0] != "freezer", kv[0]))
        out: list[Path] = []
        for _ctrl, base in order:
            if base not in out:
                out.append(base)
        return out

    def dirs(self) -> list[Path]:
        return [b / self.parent / self.name for b in self._unique_bases()]

    def controller_dir(self, controller: str) -> Path:
        """This cgroup's directory in ``controller``'s hierarchy."""
        base = self._bases.get(controller)
        if base is None:
            raise CgroupError(f"the {controller} controller is not mounted on this host "
                              f"(cgroup v1; mounted: {', '.join(sorted(self._bases))})")
        return base / self.parent / self.name

    def create(self) -> None:
        # The leaf first: its parents normally exist already (one mkdir per hierarchy
        # instead of three on the container start path).
        cpuset_base = self._bases.get("cpuset")
        for base in self._unique_bases():
            parent = base / self.parent
            leaf = parent / self.name
            try:
                made = make_dir(leaf)
            except CgroupError:
                if parent.is_dir():
                    raise
                make_dir(base)
                if make_dir(parent) and base == cpuset_base:
                    self._inherit_cpuset(base, parent)
                    # Children of the parent copy its cpuset when they are made.
                    write_value(parent / "cgroup.clone_children", "1")
                made = make_dir(leaf)
            if made and base == cpuset_base:
                self._inherit_cpuset(parent, leaf)

    @staticmethod
    def _inherit_cpuset(upper: Path, lower: Path) -> None:
        """A new cpuset cgroup admits no task until it has cpus and mems."""
        for key in ("cpuset.cpus", "cpuset.mems"):
            if read_text(lower / key).strip() == "":
                write_value(lower / key, read_text(upper / key).strip() or "\n")

    def apply(self, resources: Resources) -> None:
        resources.validate()
        r = resources
        if r.memory is not None or r.memory_swap is not None or r.memory_reservation is not None:
            mem = self.controller_dir("memory")
            swap_file = mem / "memory.memsw.limit_in_bytes"
            accounted = swap_file.exists()
            total = r.swap_total(accounted)
            if r.memory_swap is not None and not accounted:
                raise CgroupError(f"memory_swap: this host does not account swap "
                                  f"({swap_file} is missing; boot with swapaccount=1)")
            if r.memory is not None:
                self._write_memory(mem, r.memory, total)
            if r.memory_reservation is not None:
                write_value(mem / "memory.soft_limit_in_bytes", str(r.memory_reservation))
        quota, period = r.quota_period()
        if quota is not None or period is not None or r.cpu_shares is not None:
            cpu = self.controller_dir("cpu")
            if period is not None:
                write_value(cpu / "cpu.cfs_period_us", str(period))
            if quota is not None:
                write_value(cpu / "cpu.cfs_quota_us", str(quota))
            if r.cpu_shares is not None:
                write_value(cpu / "cpu.shares", str(r.cpu_shares))
        if r.cpuset_cpus is not None or r.cpuset_mems is not None:
            cs = self.controller_dir("cpuset")
            if r.cpuset_cpus is not None:
                write_value(cs / "cpuset.cpus", r.cpuset_cpus)
            if r.cpuset_mems is not None:
                write_value(cs / "cpuset.mems", r.cpuset_mems)
        pids_max = r.pids_max()
        if pids_max is not None:
            write_value(self.controller_dir("pids") / "pids.max",
                        "max" if pids_max < 0 else str(pids_max))
        if r.devices is not None:
            dev = self.controller_dir("devices")
            # One write(2) per rule; consecutive rules for one file share its fd.
            batch: list[str] = []
            target = ""
            for rule in r.devices:
                name = "devices.allow" if rule.allow else "devices.deny"
                if name != target and batch:
                    write_values(dev / target, batch)
                    batch = []
                target = name
                batch.append(rule.v1_line())
            if batch:
                write_values(dev / target, batch)

    @staticmethod
    def _write_memory(mem: Path, limit: int, total: int | None) -> None:
        limit_file = mem / "memory.limit_in_bytes"
        swap_file = mem / "memory.memsw.limit_in_bytes"
        if total is None:
            write_value(limit_file, str(limit))
            return
        # memsw >= memory must hold after every single write.
        current_swap = read_int(swap_file)
        raising = total == -1 or current_swap is None or total >= current_swap
        if raising:
            write_value(swap_file, str(total))
            write_value(limit_file, str(limit))
        else:
            write_value(limit_file, str(limit))
            write_value(swap_file, str(total))

    # -- freezer ----------------------------------------------------------------------

    def _state_file(self) -> Path:
        return self.controller_dir("freezer") / "freezer.state"

    def freeze(self, timeout: float = 5.0) -> None:
        state = self._state_file()
        write_value(state, "FROZEN")
        for pause in _backoff(timeout):
            if read_text(state).strip() == "FROZEN":
                return
            # FREEZING: a task is still on its way to the refrigerator; asking
            # again nudges tasks that were busy in the kernel.
            time.sleep(pause)
            write_value(state, "FROZEN")
        if read_text(state).strip() != "FROZEN":
            raise CgroupError(f"freeze {state}: still not FROZEN after {timeout} s")

    def thaw(self) -> None:
        write_value(self._state_file(), "THAWED")

    def frozen(self) -> bool:
        return read_text(self._state_file()).strip() == "FROZEN"

    def wait_empty(self, timeout: float = 5.0) -> None:
        for pause in _backoff(timeout):
            if not self.pids():
                return
            time.sleep(pause)
        left = self.pids()
        if left:
            raise CgroupError(f"cgroup {self.path} still has processes {left} "
                              f"after {timeout} s")

    # -- usage ------------------------------------------------------------------------

    def _dir_if(self, controller: str) -> Path | None:
        base = self._bases.get(controller)
        return None if base is None else base / self.parent / self.name

    def stats(self) -> CgroupStats:
        cpu_ns = mem_usage = working = mem_limit = mem_max = pids_cur = pids_lim = None
        if (acct := self._dir_if("cpuacct")) is not None:
            cpu_ns = read_int(acct / "cpuacct.usage")
        if (mem := self._dir_if("memory")) is not None:
            mem_usage = read_int(mem / "memory.usage_in_bytes")
            mem_max = read_int(mem / "memory.max_usage_in_bytes")
            limit = read_int(mem / "memory.limit_in_bytes")
            mem_limit = None if limit is None or limit >= V1_UNLIMITED_THRESHOLD else limit
            inactive = read_keyed(mem / "memory.stat").get("total_inactive_file", 0)
            if mem_usage is not None:
                working = max(0, mem_usage - inactive)
        if (pids := self._dir_if("pids")) is not None:
            pids_cur = read_int(pids / "pids.current")
            pids_lim = read_int(pids / "pids.max")
        return CgroupStats(cpu_usage_ns=cpu_ns, memory_usage=mem_usage,
                           memory_working_set=working, memory_limit=mem_limit,
                           memory_max_usage=mem_max, pids_current=pids_cur,
                           pids_limit=pids_lim, oom_kills=self.oom_kill_count())

    def oom_kill_count(self) -> int:
        mem = self._dir_if("memory")
        if mem is None:
            return 0
        # ``oom_kill`` in memory.oom_control exists since Linux 4.13.
        return read_keyed(mem / "memory.oom_control").get("oom_kill", 0)

    def open_oom_watch(self) -> OomWatch:
        return _EventfdOomWatch(self.controller_dir("memory"))

    def oom_control(self) -> str | None:
        """Raw ``memory.oom_control`` (for diagnostics)."""
        mem = self._dir_if("memory")
        return None if mem is None else read_optional(mem / "memory.oom_control")
