"""examples/stacks/queue: a setup job, a producer and two consumers through Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Engine, Footprint, eventually, get_json, ps, stack

pytestmark = [pytest.mark.root, pytest.mark.slow]

NAME = "queue"


def test_queue_jobs_are_shared_by_both_consumers_after_setup(stack_engine: Engine) -> None:
    eng = stack_engine
    url = f"http://127.0.0.1:{eng.env['QUEUE_PORT']}/"
    stack(eng, NAME, "up", "-d", "--wait")
    states = {c["Name"]: c for c in ps(eng, NAME)}
    for job in ("queue-setup-1", "queue-producer-1"):
        assert states[job]["State"] == "exited"
        assert states[job]["ExitCode"] == 0
    consumers = {c["ID"][:12] for c in states.values() if c["Service"] == "consumer"}
    assert len(consumers) == 2

    def finished() -> dict[str, Any] | None:
        res = get_json(url)
        return res if res["complete"] else None

    res = eventually(finished, "the consumers to finish the batch")
    assert res["expected"] == 20
    assert res["done"] == 20
    assert res["waiting"] == 0
    assert res["sum_of_squares"] == sum(n * n for n in range(1, 21))
    assert set(res["done_by"]) == consumers
    assert sum(res["done_by"].values()) == 20
    assert all(n > 0 for n in res["done_by"].values())

    # setup ran before anything that depends on it started.
    logs = stack(eng, NAME, "logs", "setup", "producer").stdout
    assert "queue reset" in logs
    assert "2 consumers ready, queueing 20 jobs" in logs

    # Another batch, without running setup again: both batches add up.
    more = stack(eng, NAME, "run", "--rm", "--no-deps", "producer")
    assert "2 consumers ready, queueing 20 jobs" in more.stdout
    res = eventually(finished, "the consumers to finish the second batch")
    assert res["expected"] == 40
    assert res["done"] == 40
    assert res["sum_of_squares"] == res["want_sum"] == 2 * sum(n * n for n in range(1, 21))
    assert set(res["done_by"]) == consumers

    footprint = Footprint(eng, NAME, ["default"])
    stack(eng, NAME, "down", "-v")
    footprint.assert_gone()
