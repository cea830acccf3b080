"""The event bus: fan-out, filters, history replay, and dropping a subscriber that lags."""

from __future__ import annotations

import pytest
import trio

from pycompose.engine.bus import EventBus, Lagged


async def test_fanout_filter_and_history() -> None:
    bus = EventBus()
    early = bus.emit("container", "create", "c0", name="p-web-1")
    got_all: list[str] = []
    got_start: list[str] = []
    async with bus.subscribe() as everything, \
            bus.subscribe(lambda e: e["Action"] == "start", since_ns=0) as starts:
        bus.emit("container", "start", "c1")
        bus.emit("container", "die", "c1", exitCode="0")
        bus.emit("container", "start", "c2")
        with trio.fail_after(5):
            async for e in everything:
                got_all.append(e["Action"])
                if len(got_all) == 3:
                    break
            async for e in starts:
                got_start.append(e["Actor"]["ID"])
                if len(got_start) == 2:
                    break
    assert got_all == ["start", "die", "start"]
    assert got_start == ["c1", "c2"]
    assert early["Actor"]["Attributes"] == {"name": "p-web-1"}
    assert [e["Action"] for e in bus.history(since_ns=0)][:1] == ["create"]


async def test_lagging_subscriber_is_dropped_not_blocking() -> None:
    bus = EventBus(buffer=2)
    async with bus.subscribe() as events:
        for i in range(5):
            bus.emit("container", "start", f"c{i}")  # never blocks the publisher
        seen: list[str] = []

        async def drain() -> None:
            async for e in events:
                seen.append(e["Actor"]["ID"])

        with pytest.raises(Lagged):
            await drain()
    assert seen == ["c0", "c1"]
