"""The engine's event bus: every state change is published once, any number of readers.

Events are plain JSON objects shaped like Docker's (``Type``, ``Action``,
``Actor: {ID, Attributes}``, ``time``, ``timeNano``) so ``pycompose events``
and the API stream them unchanged. Each subscriber has its own bounded memory
channel; a subscriber that falls behind by more than its buffer is dropped
(its iteration ends with :class:`Lagged`) rather than slowing the engine down.
A short history lets ``events --since`` replay what happened just before.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

Event = dict[str, Any]


class Lagged(Exception):
    """The subscriber did not keep up and lost events."""


def make_event(type_: str, action: str, actor_id: str, **attributes: Any) -> Event:
    now = time.time_ns()
    return {
        "Type": type_,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": {k: v for k, v in attributes.items()
                                                 if v is not None}},
        "time": now // 1_000_000_000,
        "timeNano": now,
    }


class _Subscriber:
    def __init__(self, send: trio.MemorySendChannel[Event],
                 accept: Callable[[Event], bool]) -> None:
        self.send = send
        self.accept = accept
        self.lagged = False


class _Iterator:
    def __init__(self, backlog: list[Event], receive: trio.MemoryReceiveChannel[Event],
                 sub: _Subscriber) -> None:
        self._backlog = deque(backlog)
        self._receive = receive
        self._sub = sub

    def __aiter__(self) -> _Iterator:
        return self

    async def __anext__(self) -> Event:
        if self._backlog:
            return self._backlog.popleft()
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self._sub.lagged:
                raise Lagged("event subscriber fell behind") from None
            raise StopAsyncIteration from None


class EventBus:
    def __init__(self, *, history: int = 1000, buffer: int = 4096) -> None:
        self._subscribers: set[_Subscriber] = set()
        self._history: deque[Event] = deque(maxlen=history)
        self._buffer = buffer

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber now; never blocks."""
        self._history.append(event)
        for sub in list(self._subscribers):
            if not sub.accept(event):
                continue
            try:
                sub.send.send_nowait(event)
            except trio.WouldBlock:
                sub.lagged = True
                sub.send.close()
                self._subscribers.discard(sub)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(sub)

    def emit(self, type_: str, action: str, actor_id: str, **attributes: Any) -> Event:
        event = make_event(type_, action, actor_id, **attributes)
        self.publish(event)
        return event

    def history(self, since_ns: int = 0) -> list[Event]:
        return [e for e in self._history if e["timeNano"] >= since_ns]

    @asynccontextmanager
    async def subscribe(
        self, accept: Callable[[Event], bool] = lambda _e: True, *, since_ns: int | None = None
    ) -> AsyncIterator[AsyncIterator[Event]]:
        """``async with bus.subscribe(f) as events: async for e in events`` — events after now
        (and, with ``since_ns``, the remembered ones from then on first)."""
        send, receive = trio.open_memory_channel[Event](self._buffer)
        sub = _Subscriber(send, accept)
        backlog = [e for e in self.history(since_ns) if accept(e)] if since_ns is not None else []
        self._subscribers.add(sub)

        try:
            yield _Iterator(backlog, receive, sub)
        finally:
            self._subscribers.discard(sub)
            send.close()
            receive.close()
