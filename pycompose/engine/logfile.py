"""The engine's own log, ``<root>/engine.log``, rotated by size.

An engine started on demand has its stdout and stderr on that file (the CLI
opened it before spawning it). Log records go through a rotating handler; after
each rotation fds 1 and 2 are moved onto the new file, so stray output (a crash
traceback, a library's print) follows instead of growing a renamed file forever.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MAX_SIZE = 10 << 20  #: bytes per file
DEFAULT_KEEP = 3  #: rotated files kept: engine.log.1 … engine.log.3


class EngineLogHandler(logging.handlers.RotatingFileHandler):
    """A :class:`RotatingFileHandler` that also points ``fds`` at the current file."""

    def __init__(self, path: str | os.PathLike[str], max_size: int, keep: int,
                 fds: Sequence[int] = (1, 2)) -> None:
        super().__init__(os.fspath(path), maxBytes=max_size, backupCount=keep,
                         encoding="utf-8")
        self._fds = tuple(fds)

    def doRollover(self) -> None:  # noqa: N802 - logging's name
        super().doRollover()
        if self.stream is None:  # pragma: no cover - only with delay=True
            self.stream = self._open()
        self.stream.flush()
        for fd in self._fds:
            os.dup2(self.stream.fileno(), fd)


def writes_to(fd: int, path: Path) -> bool:
    """Whether ``fd`` is open on ``path`` (the engine was started with its log there)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def handler_for(path: Path, environ: dict[str, str] | os._Environ[str]) -> logging.Handler:
    """The rotating handler for ``path``; ``PYCOMPOSE_ENGINE_LOG_MAX_SIZE`` (bytes) and
    ``PYCOMPOSE_ENGINE_LOG_KEEP`` override the size and the number of old files."""
    max_size = int(environ.get("PYCOMPOSE_ENGINE_LOG_MAX_SIZE") or DEFAULT_MAX_SIZE)
    keep = int(environ.get("PYCOMPOSE_ENGINE_LOG_KEEP") or DEFAULT_KEEP)
    return EngineLogHandler(path, max_size, keep)
