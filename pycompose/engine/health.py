"""Health checks, run by the engine inside the container (exec), not by the container.

Better than Docker's timing where it matters for ``up``: until the first
success, probes run every ``start_interval`` (default 1 s) instead of every
``interval`` (default 30 s), so a healthy-gated chain starts as soon as each
link is ready. The fast probing changes only how soon "healthy" is seen, not
how soon "unhealthy" is declared: before the first success a failure counts
at most once per ``interval`` (as Docker would have probed), and failures
inside ``start_period`` do not count. ``retries`` counted failures in a row
make the container unhealthy; one success makes it healthy again. A probe that
outlives ``timeout`` is killed and counts as a failure. Every (re)start resets
the status to ``starting``. The last :data:`LOG_SIZE` probe results are kept for
``inspect`` and error messages.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from pycompose.compose.model import Healthcheck, Service

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 1.0
DEFAULT_RETRIES = 3
LOG_SIZE = 5
OUTPUT_LIMIT = 4096

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


@dataclass(frozen=True)
class HealthConfig:
    argv: tuple[str, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    start_period: float = 0.0
    start_interval: float = DEFAULT_START_INTERVAL
    retries: int = DEFAULT_RETRIES

    def to_json(self) -> dict[str, Any]:
        return self.__dict__ | {"argv": list(self.argv)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HealthConfig:
        return cls(**{**data, "argv": tuple(data["argv"])})


def _argv(test: tuple[str, ...]) -> tuple[str, ...] | None:
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return tuple(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return ("/bin/sh", "-c", " ".join(test[1:]))
    return ("/bin/sh", "-c", " ".join(test))  # a bare string, as the loader may keep it


def health_config(service: Service, image_healthcheck: Any | None = None) -> HealthConfig | None:
    """The service's healthcheck over the image's (``image_healthcheck`` has the image
    config's fields in nanoseconds); ``None`` when there is none or it is disabled."""
    own: Healthcheck | None = service.healthcheck
    if own is not None and own.disable:
        return None
    img_test = tuple(getattr(image_healthcheck, "test", ()) or ())

    def img(name: str) -> float | None:
        ns = getattr(image_healthcheck, name, 0) or 0
        return ns / 1e9 if ns else None

    test = own.test if own is not None and own.test else img_test
    argv = _argv(tuple(test)) if test else None
    if argv is None:
        return None

    def pick(name: str, default: float) -> float:
        value = getattr(own, name, None) if own is not None else None
        if value is None:
            value = img(name)
        return default if value is None or value <= 0 else float(value)

    retries = own.retries if own is not None and own.retries else (
        getattr(image_healthcheck, "retries", 0) or DEFAULT_RETRIES)
    return HealthConfig(
        argv=argv,
        interval=pick("interval", DEFAULT_INTERVAL),
        timeout=pick("timeout", DEFAULT_TIMEOUT),
        start_period=pick("start_period", 0.0),
        start_interval=pick("start_interval", DEFAULT_START_INTERVAL),
        retries=int(retries),
    )


@dataclass(frozen=True)
class ProbeResult:
    exit_code: int
    output: str
    start: float
    end: float

    def to_json(self) -> dict[str, Any]:
        from datetime import UTC, datetime  # noqa: PLC0415

        def iso(t: float) -> str:
            return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")

        return {"Start": iso(self.start), "End": iso(self.end), "ExitCode": self.exit_code,
                "Output": self.output}


RunProbe = Callable[[tuple[str, ...]], Awaitable[tuple[int, str]]]
"""Run argv in the container; return (exit code, combined output). Cancellable."""
Report = Callable[[str, list[ProbeResult]], Awaitable[None]]
"""Called after every probe with the status and the kept log (newest last)."""


async def monitor(config: HealthConfig, run_probe: RunProbe, report: Report) -> None:
    """Probe until cancelled (the container stopped). See the module docstring."""
    started = trio.current_time()
    log: list[ProbeResult] = []
    status = STARTING
    failures = 0
    ever_healthy = False
    next_counted = started + max(config.interval, config.start_period)
    await report(status, log)
    while True:
        await trio.sleep(config.interval if ever_healthy else config.start_interval)
        t0, w0 = trio.current_time(), time.time()
        code, output = -1, ""
        with trio.move_on_after(config.timeout) as scope:
            code, output = await run_probe(config.argv)
        if scope.cancelled_caught:
            code = -1
            output = f"health check timed out after {config.timeout:g}s"
        log.append(ProbeResult(code, output[-OUTPUT_LIMIT:], w0,
                               w0 + trio.current_time() - t0))
        del log[:-LOG_SIZE]
        now = trio.current_time()
        if code == 0:
            status, failures, ever_healthy = HEALTHY, 0, True
        elif ever_healthy or now >= next_counted:
            next_counted = now + config.interval
            failures += 1
            if failures >= config.retries:
                status = UNHEALTHY
        await report(status, list(log))
