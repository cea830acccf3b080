"""One engine per state root: an exclusive ``flock`` on ``<root>/engine.lock``.

The lock is held by an open file descriptor for the engine's whole life, so
the kernel releases it however the engine ends (even ``kill -9``); there is no
stale pid file to clean up. The file holds the holder's pid, for messages.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pycompose.errors import EngineError


class EngineAlreadyRunning(EngineError):
    """Another engine holds the lock of this state root."""


def lock_path(root: Path) -> Path:
    return root / "engine.lock"


def acquire(root: Path) -> int:
    """Take the lock (non-blocking) and return its fd; raise if another engine holds it."""
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    path = lock_path(root)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise EngineAlreadyRunning(
            f"an engine is already running for state root {root} (pid {holder}); "
            f"stop it first or use another PYCOMPOSE_ROOT"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def holder_pid(root: Path) -> int | None:
    """The pid written by the engine that holds (or last held) the lock."""
    try:
        text = lock_path(root).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
