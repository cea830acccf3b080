"""Per-container verbs through the CLI: pause, unpause, kill."""

from __future__ import annotations

import pytest

from tests.integration.engine.conftest import Engine

pytestmark = pytest.mark.root


def _state(engine: Engine) -> dict[str, str]:
    return {c["Service"]: c["State"] for c in engine.ps()}


def test_pause_unpause_and_kill_reach_every_container(engine: Engine) -> None:
    engine.compose("""
services:
  app:
    image: busybox
    command: ["sleep", "1000"]
  side:
    image: busybox
    command: ["sleep", "1000"]
""")
    engine.cli("up", "-d")
    out = engine.cli("pause")
    assert "project-app-1  Paused" in out.stderr
    assert "project-side-1  Paused" in out.stderr
    assert _state(engine) == {"app": "paused", "side": "paused"}

    out = engine.cli("unpause", "app")
    assert "project-app-1  Unpaused" in out.stderr
    assert _state(engine) == {"app": "running", "side": "paused"}
    engine.cli("unpause", "side")

    out = engine.cli("kill", "-s", "SIGKILL", "side")
    assert "project-side-1  Killed" in out.stderr
    engine.cli("wait", "side", check=False)
    states = {c["Service"]: (c["State"], c.get("ExitCode")) for c in engine.ps()}
    assert states["app"][0] == "running"
    assert states["side"] == ("exited", 137)
    engine.cli("down")
