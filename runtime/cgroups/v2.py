"""cgroup v2 backend: one directory in the unified hierarchy.

The container's cgroup is ``<caller's cgroup>/<parent>/<name>``. Controllers
reach it only when enabled in ``cgroup.subtree_control`` of every ancestor
below the caller's own cgroup, which :meth:`CgroupV2.create` does. v2 forbids
enabling controllers for the children of a non-root cgroup that itself holds
processes ("no internal processes"): on a unified host the engine must run
in a cgroup of its own (e.g. a systemd unit with ``Delegate=yes``), and a
failure to enable says so. An engine started from a login shell can instead
place its containers elsewhere by handing a layout with another base, e.g.
``dataclasses.replace(layout, v2=Path("/sys/fs/cgroup"))`` for the root.

Waiting: ``cgroup.events`` (``populated``, ``frozen``) raises a poll
notification on change, so ``freeze`` and ``wait_empty`` block in ``poll(2)``
instead of re-reading; the OOM watch is an inotify watch on ``memory.events``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import signal
import time
from pathlib import Path

from ..errors import CgroupError
from ._io import (
    make_dir,
    read_int,
    read_keyed,
    read_optional,
    write_value,
)
from .base import Cgroup, OomWatch
from .devices import attach_device_program
from .resources import CgroupStats, Resources, shares_to_weight

#: Controllers pycompose enables for its cgroups when the host offers them.
V2_CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_IN_MODIFY = 0x00000002


class _InotifyOomWatch(OomWatch):
    """v2 OOM notification: inotify IN_MODIFY on ``memory.events``."""

    def __init__(self, events_file: Path) -> None:
        fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise CgroupError(f"inotify_init1 for {events_file}: {os.strerror(err)}")
        if _libc.inotify_add_watch(fd, os.fsencode(events_file), _IN_MODIFY) < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise CgroupError(f"inotify watch {events_file}: {os.strerror(err)}")
        self._fd = fd

    def fileno(self) -> int:
        return int(self._fd)

    def drain(self) -> None:
        try:
            while os.read(self._fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _controllers(path: Path) -> set[str]:
    return set((read_optional(path) or "").split())


class CgroupV2(Cgroup):
    """A container cgroup in the unified hierarchy.

    ``base`` is the caller's own cgroup directory (``CgroupLayout.v2``).
    """

    version = 2

    def __init__(self, base: Path, parent: str, name: str) -> None:
        super().__init__(parent, name)
        self._base = base

    def dirs(self) -> list[Path]:
        return [self._base / self.parent / self.name]

    def to_record(self) -> dict[str, object]:
        return {"version": 2, "parent": self.parent, "name": self.name, "base": str(self._base)}

    def create(self) -> None:
        parent_dir = self._base / self.parent
        make_dir(parent_dir)
        self._enable_controllers(self._base)
        self._enable_controllers(parent_dir)
        make_dir(self.path)

    @staticmethod
    def _enable_controllers(d: Path) -> None:
        available = _controllers(d / "cgroup.controllers")
        enabled = _controllers(d / "cgroup.subtree_control")
        missing = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
        if not missing:
            return
        try:
            write_value(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
        except CgroupError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EBUSY:
                raise CgroupError(
                    f"{exc}: cgroup v2 cannot enable controllers below a cgroup that holds "
                    f"processes; run the engine in a cgroup of its own") from cause
            raise

    def _need(self, controller: str, what: str) -> None:
        available = _controllers(self.path / "cgroup.controllers")
        if controller not in available:
            raise CgroupError(
                f"{what} needs the {controller} controller, which is not available in "
                f"{self.path} (cgroup.controllers: {' '.join(sorted(available)) or 'none'})")

    def apply(self, resources: Resources) -> None:
        resources.validate()
        r = resources
        d = self.path
        if r.memory is not None or r.memory_swap is not None or r.memory_reservation is not None:
            self._need("memory", "a memory limit")
            swap_file = d / "memory.swap.max"
            accounted = swap_file.exists()
            if r.memory_swap is not None and not accounted:
                raise CgroupError(f"memory_swap: this host does not account swap "
                                  f"({swap_file} is missing)")
            total = r.swap_total(accounted)
            if r.memory is not None:
                write_value(d / "memory.max", str(r.memory))
                if total is not None:
                    # v2 limits swap alone; Docker's value is memory + swap.
                    swap = "max" if total == -1 else str(total - r.memory)
                    write_value(swap_file, swap)
            if r.memory_reservation is not None:
                write_value(d / "memory.low", str(r.memory_reservation))
        quota, period = r.quota_period()
        if quota is not None or period is not None:
            self._need("cpu", "a CPU quota")
            cur = (read_optional(d / "cpu.max") or "max 100000").split()
            q = cur[0] if quota is None else ("max" if quota < 0 else str(quota))
            p = cur[1] if period is None else str(period)
            write_value(d / "cpu.max", f"{q} {p}")
        if r.cpu_shares is not None:
            self._need("cpu", "cpu_shares")
            write_value(d / "cpu.weight", str(shares_to_weight(r.cpu_shares)))
        if r.cpuset_cpus is not None or r.cpuset_mems is not None:
            self._need("cpuset", "a cpuset")
            if r.cpuset_cpus is not None:
                write_value(d / "cpuset.cpus", r.cpuset_cpus)
            if r.cpuset_mems is not None:
                write_value(d / "cpuset.mems", r.cpuset_mems)
        pids_max = r.pids_max()
        if pids_max is not None:
            self._need("pids", "a pids limit")
            write_value(d / "pids.max", "max" if pids_max < 0 else str(pids_max))
        if r.devices is not None:
            # No controller to enable: device control on v2 is an eBPF program.
            attach_device_program(d, r.devices)

    # -- waiting on cgroup.events -----------------------------------------------------

    def _wait_event(self, key: str, want: int, timeout: float) -> None:
        events = self.path / "cgroup.events"
        deadline = time.monotonic() + timeout
        try:
            fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CgroupError(f"open {events}: {exc.strerror}") from exc
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI)
            while True:
                text = os.pread(fd, 4096, 0).decode()
                values = dict(line.split() for line in text.splitlines() if line.count(" ") == 1)
                if values.get(key) == str(want):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CgroupError(f"{events}: {key} did not become {want} "
                                      f"within {timeout} s")
                ready = poller.poll(remaining * 1000)
                if ready and not ready[0][1] & select.POLLPRI:
                    # Not a kernfs file (a copy of the layout): no notification.
                    time.sleep(min(0.01, remaining))
        finally:
            os.close(fd)

    def freeze(self, timeout: float = 5.0) -> None:
        write_value(self.path / "cgroup.freeze", "1")
        self._wait_event("frozen", 1, timeout)

    def thaw(self) -> None:
        write_value(self.path / "cgroup.freeze", "0")

    def frozen(self) -> bool:
        return read_keyed(self.path / "cgroup.events").get("frozen", 0) == 1

    def wait_empty(self, timeout: float = 5.0) -> None:
        self._wait_event("populated", 0, timeout)

    def kill_all(self, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        """``cgroup.kill`` (Linux 5.14+) for SIGKILL; freeze → signal → thaw otherwise."""
        kill_file = self.path / "cgroup.kill"
        if sig == signal.SIGKILL and kill_file.exists():
            write_value(kill_file, "1")
            self.wait_empty(timeout)
            return
        super().kill_all(sig, timeout)

    # -- usage ------------------------------------------------------------------------

    def stats(self) -> CgroupStats:
        d = self.path
        usage_us = read_keyed(d / "cpu.stat").get("usage_usec")
        mem_usage = read_int(d / "memory.current")
        inactive = read_keyed(d / "memory.stat").get("inactive_file", 0)
        return CgroupStats(
            cpu_usage_ns=None if usage_us is None else usage_us * 1000,
            memory_usage=mem_usage,
            memory_working_set=None if mem_usage is None else max(0, mem_usage - inactive),
            memory_limit=read_int(d / "memory.max"),
            memory_max_usage=read_int(d / "memory.peak"),
            pids_current=read_int(d / "pids.current"),
            pids_limit=read_int(d / "pids.max"),
            oom_kills=self.oom_kill_count(),
        )

    def oom_kill_count(self) -> int:
        # memory.events is hierarchical: it counts kills in child cgroups too.
        return read_keyed(self.path / "memory.events").get("oom_kill", 0)

    def open_oom_watch(self) -> OomWatch:
        self._need("memory", "an OOM watch")
        return _InotifyOomWatch(self.path / "memory.events")
