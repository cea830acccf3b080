"""Restart policies (``no``, ``always``, ``on-failure[:N]``, ``unless-stopped``) and
Docker's back-off: 100 ms, doubling after each restart, capped at one minute, back
to 100 ms once a run lasted at least ten seconds."""

from __future__ import annotations

from dataclasses import dataclass

from pycompose.compose.model import Service
from pycompose.errors import EngineError

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
STABLE_RUN = 10.0


class RestartPolicyError(EngineError):
    """A restart policy that cannot be parsed."""


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"  # no | always | on-failure | unless-stopped
    max_retries: int | None = None  # on-failure:N

    @classmethod
    def parse(cls, text: str | None) -> RestartPolicy:
        if not text or text == "no":
            return cls()
        name, _, count = text.partition(":")
        if name not in ("always", "on-failure", "unless-stopped"):
            raise RestartPolicyError(f"invalid restart policy {text!r}: use no, always, "
                                     "on-failure[:N] or unless-stopped")
        if count:
            if name != "on-failure" or not count.isdigit():
                raise RestartPolicyError(f"invalid restart policy {text!r}: only on-failure "
                                         "takes a retry count")
            return cls(name, int(count))
        return cls(name)

    @classmethod
    def of(cls, service: Service) -> RestartPolicy:
        """``restart:``, else ``deploy.restart_policy`` (condition none/on-failure/any)."""
        if service.restart:
            return cls.parse(service.restart)
        rp = service.deploy.restart_policy if service.deploy else None
        if rp is None:
            return cls()
        condition = rp.condition or "any"
        if condition == "none":
            return cls()
        if condition == "on-failure":
            return cls("on-failure", rp.max_attempts)
        return cls("always") if rp.max_attempts is None else cls("on-failure", rp.max_attempts)

    def should_restart(self, exit_code: int, restart_count: int, *,
                       stopped_by_user: bool) -> bool:
        """After an exit: restart? A container stopped by the user never is."""
        if stopped_by_user or self.name == "no":
            return False
        if self.name == "on-failure":
            if exit_code == 0:
                return False
            return self.max_retries is None or restart_count < self.max_retries
        return True

    @property
    def survives_engine_restart(self) -> bool:
        """``always`` and ``unless-stopped`` containers come back when the engine does."""
        return self.name in ("always", "unless-stopped")

    def __str__(self) -> str:
        return f"{self.name}:{self.max_retries}" if self.max_retries is not None else self.name


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart, given the previous wait and how long the last run
    lasted (0 before the first restart)."""
    if previous <= 0 or ran_for >= STABLE_RUN:
        return BACKOFF_START
    return min(previous * 2, BACKOFF_MAX)
