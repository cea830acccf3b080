"""The CLI's engine client without an engine: clear errors, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.client import EngineNotRunning, connect
from pycompose.errors import NotRootError
from pycompose.paths import HostPaths


def paths(tmp_path: Path) -> HostPaths:
    return HostPaths(root=tmp_path, socket=tmp_path / "engine.sock", instance="")


def test_a_user_who_is_not_root_is_told_so(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(NotRootError, match="pycompose needs root"):
        connect(paths(tmp_path))


def test_without_autostart_the_missing_engine_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineNotRunning, match="start one with `pycompose engine`"):
        connect(paths(tmp_path), autostart=False)
