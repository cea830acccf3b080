"""The engine log rotates by size, and stray output on its fds follows the new file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pycompose.engine.logfile import EngineLogHandler, handler_for, writes_to


def test_rotates_by_size_and_moves_the_fds(tmp_path: Path) -> None:
    path = tmp_path / "engine.log"
    stray = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # like stderr
    try:
        assert writes_to(stray, path)
        handler = EngineLogHandler(path, max_size=1000, keep=2, fds=(stray,))
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("test.engine.logfile")
        logger.propagate = False
        logger.addHandler(handler)
        try:
            for i in range(100):
                logger.warning("line %03d %s", i, "x" * 40)
        finally:
            logger.removeHandler(handler)
            handler.close()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["engine.log", "engine.log.1", "engine.log.2"]
        for p in tmp_path.iterdir():
            assert p.stat().st_size <= 1000
        # The newest lines are in engine.log, the ones before in .1: nothing interleaved.
        assert path.read_text().splitlines()[-1].startswith("line 099")
        # The fd (stderr, for the engine) now writes to the current file, not a rotated one.
        assert writes_to(stray, path)
        os.write(stray, b"traceback\n")
        assert path.read_text().endswith("traceback\n")
    finally:
        os.close(stray)


def test_size_and_count_from_the_environment(tmp_path: Path) -> None:
    h = handler_for(tmp_path / "engine.log", {"PYCOMPOSE_ENGINE_LOG_MAX_SIZE": "4096",
                                              "PYCOMPOSE_ENGINE_LOG_KEEP": "5"})
    try:
        assert isinstance(h, EngineLogHandler)
        assert (h.maxBytes, h.backupCount) == (4096, 5)
    finally:
        h.close()
