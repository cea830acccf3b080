"""The one interface both cgroup backends implement, and what they share.

Blocking calls: every method here does file I/O on cgroupfs and some wait
(freeze, kill_all, remove) for the kernel to settle, bounded by ``timeout``.
The trio engine calls them through ``trio.to_thread.run_sync``; the spawner
calls them directly. Nothing here forks or starts threads.
"""

from __future__ import annotations

import contextlib
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ..errors import CgroupError
from ._io import read_pids, remove_dir, tree_bottom_up, write_value
from .resources import CgroupStats, Resources


def check_name(what: str, value: str) -> None:
    """Cgroup names are single path components."""
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise CgroupError(f"invalid cgroup {what} {value!r}: must be one path component")


def join_cgroup(procs_files: Sequence[str]) -> None:
    """Move the *calling* process into a cgroup: write ``0`` to each of the files.

    Meant for the forked, single-threaded child before exec, with the files
    of :meth:`Cgroup.procs_files` (``0`` means "the writer", on v1 and v2
    alike), so the container's first instruction already runs limited.
    Cheap: one open+write+close per hierarchy, about 0.1 ms for the six v1
    hierarchies here.
    """
    for path in procs_files:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        except OSError as exc:
            raise CgroupError(f"write '0' to {path}: {exc.strerror}") from exc


class OomWatch(ABC):
    """An fd that becomes readable when the cgroup sees an OOM event.

    Wait on :meth:`fileno` (``trio.lowlevel.wait_readable``), call
    :meth:`drain`, then ask :meth:`Cgroup.oom_kill_count` — the fd says
    "something happened", the counter says what. Close it before removing the cgroup.
    """

    @abstractmethod
    def fileno(self) -> int: ...

    @abstractmethod
    def drain(self) -> None:
        """Consume pending notifications (non-blocking)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> OomWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cgroup(ABC):
    """One container's cgroup, named ``<caller's cgroup>/<parent>/<name>``.

    On v1 that is one directory per managed controller hierarchy; on v2 one
    directory. ``parent`` is ``pycompose`` or ``pycompose_<instance>``.
    """

    version: ClassVar[int]

    def __init__(self, parent: str, name: str) -> None:
        check_name("parent", parent)
        check_name("name", name)
        self.parent = parent
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    # -- where it lives -------------------------------------------------------------

    @abstractmethod
    def dirs(self) -> list[Path]:
        """Every directory of this cgroup (one per hierarchy on v1)."""

    @property
    def path(self) -> Path:
        """The main directory (v2's only one; v1's freezer or first hierarchy)."""
        return self.dirs()[0]

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs())

    @abstractmethod
    def to_record(self) -> dict[str, object]:
        """Where this cgroup lives, as JSON-able data (see :func:`cgroup_from_record`).

        Store it with the container: an engine restarted in another cgroup
        finds the container's cgroup from the record, not from its own place.
        """

    def procs_files(self) -> tuple[str, ...]:
        """The files a forked, single-threaded child writes ``0`` to, to join.

        v2: ``cgroup.procs``. v1: ``tasks``, which moves the writing thread
        alone and so skips the kernel's thread-group lock, which waits for an
        RCU grace period: joining the six v1 hierarchies here took 2.2 ms
        (median) through ``cgroup.procs`` and 0.1 ms through ``tasks``. Use
        :meth:`add_pid` to move a whole multi-threaded process.
        """
        return tuple(str(d / self._join_file) for d in self.dirs())

    #: See :meth:`procs_files`.
    _join_file: ClassVar[str] = "cgroup.procs"

    # -- lifecycle ------------------------------------------------------------------

    @abstractmethod
    def create(self) -> None:
        """Create the parent and the cgroup (idempotent)."""

    @abstractmethod
    def apply(self, resources: Resources) -> None:
        """Write the limits; a controller the host lacks is a ``CgroupError`` naming it."""

    def add_pid(self, pid: int) -> None:
        """Move process ``pid`` (with all its threads) into the cgroup."""
        for d in self.dirs():
            write_value(d / "cgroup.procs", str(pid))

    def join(self) -> None:
        """Move the calling process in (for a forked child; see :func:`join_cgroup`)."""
        join_cgroup(self.procs_files())

    def pids(self) -> list[int]:
        """Every process in the cgroup and its descendants (sorted)."""
        out: set[int] = set()
        for d in tree_bottom_up(self.path):
            out.update(read_pids(d / "cgroup.procs"))
        return sorted(out)

    # -- freezer --------------------------------------------------------------------

    @abstractmethod
    def freeze(self, timeout: float = 5.0) -> None:
        """Freeze every process and return once the kernel reports the cgroup frozen."""

    @abstractmethod
    def thaw(self) -> None: ...

    @abstractmethod
    def frozen(self) -> bool: ...

    # -- signals --------------------------------------------------------------------

    def kill_all(self, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        """Signal every process in the cgroup, including double-forked daemons.

        Freezing first means no process can fork a new one between reading
        the list and signalling it; the thaw then lets SIGKILL take effect.
        With SIGKILL this returns once the cgroup is empty.
        """
        self.freeze(timeout)
        try:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        finally:
            self.thaw()
        if sig == signal.SIGKILL:
            self.wait_empty(timeout)

    @abstractmethod
    def wait_empty(self, timeout: float = 5.0) -> None:
        """Return once no process is left; ``CgroupError`` after ``timeout`` seconds."""

    # -- usage ------------------------------------------------------------------------

    @abstractmethod
    def stats(self) -> CgroupStats: ...

    @abstractmethod
    def oom_kill_count(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup so far."""

    def oom_killed(self, since: int = 0) -> bool:
        """True when an OOM kill happened (after ``since``, an earlier count)."""
        return self.oom_kill_count() > since

    @abstractmethod
    def open_oom_watch(self) -> OomWatch:
        """An fd to wait on for OOM events (see :class:`OomWatch`)."""

    # -- removal ----------------------------------------------------------------------

    def remove(self, kill: bool = False, timeout: float = 5.0) -> None:
        """Remove the cgroup and any child cgroups below it (deepest first).

        Already gone is fine. With processes still inside it refuses, unless
        ``kill`` is set: then everything inside is SIGKILLed first.
        """
        if not self.exists():
            return
        live = self.pids()
        if live:
            if not kill:
                shown = " ".join(map(str, live[:8])) + (" …" if len(live) > 8 else "")
                raise CgroupError(f"cgroup {self.path} still has processes ({shown}); "
                                  "stop them first or remove with kill=True")
            self.kill_all(signal.SIGKILL, timeout)
        for d in self.dirs():
            for sub in tree_bottom_up(d):
                remove_dir(sub)
