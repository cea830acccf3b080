"""Restart policies and Docker's back-off."""

from __future__ import annotations

import pytest

from pycompose.compose.model import Deploy, Service
from pycompose.compose.model import RestartPolicy as DeployRestart
from pycompose.engine.restart import RestartPolicy, RestartPolicyError, next_delay


def test_parse_and_decide() -> None:
    on_failure = RestartPolicy.parse("on-failure:3")
    assert on_failure == RestartPolicy("on-failure", 3)
    assert on_failure.should_restart(1, 2, stopped_by_user=False)
    assert not on_failure.should_restart(1, 3, stopped_by_user=False)  # gave up after three
    assert not on_failure.should_restart(0, 0, stopped_by_user=False)
    always = RestartPolicy.parse("always")
    assert always.should_restart(0, 100, stopped_by_user=False)
    assert not always.should_restart(1, 0, stopped_by_user=True)
    assert RestartPolicy.parse("unless-stopped").survives_engine_restart
    assert not RestartPolicy.parse(None).should_restart(1, 0, stopped_by_user=False)
    with pytest.raises(RestartPolicyError, match="invalid restart policy 'sometimes'"):
        RestartPolicy.parse("sometimes")
    with pytest.raises(RestartPolicyError):
        RestartPolicy.parse("always:3")


def test_deploy_restart_policy() -> None:
    svc = Service(name="s", deploy=Deploy(restart_policy=DeployRestart(
        condition="on-failure", max_attempts=2)))
    assert RestartPolicy.of(svc) == RestartPolicy("on-failure", 2)
    assert RestartPolicy.of(Service(name="s", restart="always")) == RestartPolicy("always")


def test_backoff_doubles_caps_and_resets() -> None:
    delays = []
    d = 0.0
    for _ in range(12):
        d = next_delay(d, ran_for=0.5)
        delays.append(d)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0
    assert next_delay(60.0, ran_for=10.0) == 0.1
