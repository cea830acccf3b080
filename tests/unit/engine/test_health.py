"""Health probe timing and status on trio's MockClock (autojump): no real waiting."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from pycompose.compose.model import Healthcheck, Service
from pycompose.engine.health import HealthConfig, ProbeResult, health_config, monitor


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class Probe:
    """Fails until ``ok_after`` probes have run; each probe takes ``takes`` seconds."""

    def __init__(self, ok_after: int | None, takes: float = 0.0) -> None:
        self.ok_after = ok_after
        self.takes = takes
        self.times: list[float] = []

    async def __call__(self, argv: tuple[str, ...]) -> tuple[int, str]:
        self.times.append(trio.current_time())
        await trio.sleep(self.takes)
        ok = self.ok_after is not None and len(self.times) >= self.ok_after
        return (0, "ok\n") if ok else (1, f"not yet {len(self.times)}\n")


async def run_until(config: HealthConfig, probe: Probe, want: str
                    ) -> tuple[float, list[ProbeResult]]:
    seen: dict[str, object] = {}
    t0 = trio.current_time()

    async def report(status: str, log: list[ProbeResult]) -> None:
        if status == want and "t" not in seen:
            seen["t"] = trio.current_time() - t0
            seen["log"] = log
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(monitor, config, probe, report)
    return seen["t"], seen["log"]  # type: ignore[return-value]


async def test_fast_probes_until_first_success_then_interval(
        autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe(ok_after=4)
    config = HealthConfig(argv=("true",), interval=30, start_interval=0.5, retries=3)
    t, log = await run_until(config, probe, "healthy")
    assert t == pytest.approx(2.0)  # four probes 0.5 s apart, not 30 s apart
    assert [r.exit_code for r in log] == [1, 1, 1, 0]
    assert log[0].output == "not yet 1\n"


async def test_fast_probing_does_not_hasten_unhealthy(
        autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe(ok_after=None)
    config = HealthConfig(argv=("true",), interval=10, start_interval=1, retries=3)
    t, log = await run_until(config, probe, "unhealthy")
    # counted failures at most once per interval: 10 s, 20 s, 30 s
    assert t == pytest.approx(30, abs=1)
    assert len(log) == 5  # only the last probes are kept


async def test_start_period_failures_do_not_count(autojump_clock: trio.testing.MockClock
                                                  ) -> None:
    probe = Probe(ok_after=None)
    config = HealthConfig(argv=("true",), interval=2, start_interval=1, start_period=20,
                          retries=2)
    t, _ = await run_until(config, probe, "unhealthy")
    assert t >= 20


async def test_hanging_probe_is_cut_at_timeout(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe(ok_after=1, takes=100)  # would succeed, but far too late
    config = HealthConfig(argv=("true",), interval=5, start_interval=1, timeout=3, retries=1)
    t, log = await run_until(config, probe, "unhealthy")
    assert "timed out after 3s" in log[-1].output
    assert log[-1].exit_code == -1


def test_health_config_merges_service_over_image() -> None:
    class ImageHC:
        test = ("CMD-SHELL", "curl -f localhost")
        interval = 5_000_000_000
        timeout = 0
        start_period = 0
        start_interval = 0
        retries = 7

    svc = Service(name="web", image="x", healthcheck=Healthcheck(timeout=2.0))
    hc = health_config(svc, ImageHC())
    assert hc == HealthConfig(argv=("/bin/sh", "-c", "curl -f localhost"), interval=5.0,
                              timeout=2.0, retries=7)
    disabled = Service(name="web", image="x", healthcheck=Healthcheck(disable=True))
    assert health_config(disabled, ImageHC()) is None
    none_test = Service(name="web", image="x", healthcheck=Healthcheck(test=("NONE",)))
    assert health_config(none_test, ImageHC()) is None
    assert health_config(Service(name="web", image="x"), None) is None
