"""What a container asks of its cgroup, what it reads back, and the v1 ↔ v2 conversions."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CgroupError
from .devices import DeviceRule

#: CFS period used when only ``cpus`` is given (Docker's default, 100 ms).
DEFAULT_CPU_PERIOD_US = 100_000

#: v1 ``memory.limit_in_bytes`` reads back as this (PAGE_COUNTER_MAX pages) when unlimited.
V1_UNLIMITED_THRESHOLD = 1 << 62


@dataclass(frozen=True)
class Resources:
    """Resource limits in Docker's units; ``None`` leaves the kernel default.

    * ``memory``: hard limit in bytes (Compose ``mem_limit``).
    * ``memory_swap``: memory **plus** swap in bytes, as Docker's
      ``--memory-swap`` / Compose ``memswap_limit``; ``-1`` = unlimited swap.
      Left ``None`` with ``memory`` set, it becomes ``2 * memory`` as Docker
      does (when the host accounts swap).
    * ``memory_reservation``: soft limit in bytes (v1 soft limit, v2 ``memory.low``).
    * ``cpus``: fractional CPUs, turned into quota over ``cpu_period``;
      ``cpu_quota`` / ``cpu_period`` (µs) may be given directly instead.
    * ``cpu_shares``: v1 shares (2…262144, default 1024); on v2 converted to
      ``cpu.weight`` with runc's formula.
    * ``cpuset_cpus`` / ``cpuset_mems``: list syntax (``0-1,3``).
    * ``pids_limit``: maximum number of tasks; ``0`` or ``-1`` = unlimited.
    * ``devices``: device access rules (see :mod:`.devices`; use
      ``device_rules(privileged, extra)``); ``None`` leaves the parent's
      (normally: every device).
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    devices: tuple[DeviceRule, ...] | None = None

    def validate(self) -> None:
        """Reject values the kernel would refuse with a less helpful message."""
        for name in ("memory", "memory_reservation"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise CgroupError(f"{name}: must be a positive number of bytes, got {v}")
        if self.memory_swap is not None and self.memory_swap != -1:
            if self.memory_swap <= 0:
                raise CgroupError(f"memory_swap: must be positive or -1, got {self.memory_swap}")
            if self.memory is None:
                raise CgroupError("memory_swap: set only together with memory")
            if self.memory_swap < self.memory:
                raise CgroupError(f"memory_swap ({self.memory_swap}) must not be smaller "
                                  f"than memory ({self.memory})")
        if self.cpus is not None and self.cpus < 0:
            raise CgroupError(f"cpus: must not be negative, got {self.cpus}")
        if self.cpus is not None and self.cpu_quota is not None:
            raise CgroupError("cpus and cpu_quota are mutually exclusive")
        if self.cpu_period is not None and not 1000 <= self.cpu_period <= 1_000_000:
            raise CgroupError(f"cpu_period: must be 1000…1000000 µs, got {self.cpu_period}")
        if self.cpu_shares is not None and not 2 <= self.cpu_shares <= 262144:
            raise CgroupError(f"cpu_shares: must be 2…262144, got {self.cpu_shares}")

    def swap_total(self, swap_accounted: bool) -> int | None:
        """The memory+swap limit to apply (Docker's defaulting), or ``None``."""
        if self.memory_swap is not None:
            return self.memory_swap
        if self.memory is not None and swap_accounted:
            return 2 * self.memory
        return None

    def quota_period(self) -> tuple[int | None, int | None]:
        """``(quota_us, period_us)``; quota ``None`` = leave, ``-1`` = unlimited."""
        period = self.cpu_period
        if self.cpus is not None:
            period = period or DEFAULT_CPU_PERIOD_US
            if self.cpus == 0:
                return -1, period
            return max(1000, round(self.cpus * period)), period
        return self.cpu_quota, period

    def pids_max(self) -> int | None:
        """``None`` = leave, ``-1`` = unlimited, else the limit."""
        if self.pids_limit is None:
            return None
        return -1 if self.pids_limit <= 0 else self.pids_limit


def shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` → v2 ``cpu.weight``, as runc converts (2…262144 → 1…10000)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


@dataclass(frozen=True)
class CgroupStats:
    """Usage read back for ``stats``. ``None`` = not available on this host/backend.

    ``memory_limit`` / ``pids_limit`` are ``None`` when unlimited.
    ``memory_working_set`` is usage minus inactive file cache, the figure
    ``docker stats`` shows.
    """

    cpu_usage_ns: int | None
    memory_usage: int | None
    memory_working_set: int | None
    memory_limit: int | None
    memory_max_usage: int | None
    pids_current: int | None
    pids_limit: int | None
    oom_kills: int
