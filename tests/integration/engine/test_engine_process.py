"""The engine process itself: one per state root, readiness, socket mode, SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.engine.conftest import (
    remove_cgroup_parent,
    stop_supervisor,
    wait_gone,
)

pytestmark = pytest.mark.root


def test_one_engine_per_root_and_clean_sigterm(state_root: Path, run_id: str) -> None:
    from pycompose.client import connect, start_engine
    from pycompose.engine.lock import holder_pid
    from pycompose.paths import host_paths

    instance = "p" + run_id
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYCOMPOSE_")},
           "PYCOMPOSE_ROOT": str(state_root), "PYCOMPOSE_INSTANCE": instance}
    paths = host_paths(env)
    pid = start_engine(paths)
    try:
        assert holder_pid(state_root) == pid
        assert stat.S_IMODE(os.stat(paths.socket).st_mode) == 0o600
        # A second engine for the same root refuses, saying who holds it.
        second = subprocess.run([sys.executable, "-m", "pycompose", "engine"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"an engine is already running for state root {state_root} (pid {pid})" \
            in second.stderr
        # Starting again while one runs just finds the running one.
        with connect(paths) as c:
            assert c.get("/info")["Pid"] == pid
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        stop_supervisor(state_root, instance)
        remove_cgroup_parent(instance)
    assert not paths.socket.exists()  # removed on a clean stop
    log = (state_root / "engine.log").read_text()
    assert "received SIGTERM" in log
    assert "engine stopped" in log
