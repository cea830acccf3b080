"""Task-group failures as one error: callers of pull/push see the root cause, not a group."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in leaves(sub)]
    return [exc]


def root_cause(exc: BaseException, *, knock_on: tuple[str, ...] = ()) -> BaseException | None:
    """The first leaf that is neither a ``Cancelled`` nor a knock-on error (a message
    containing one of ``knock_on``: another task failing because this one did)."""
    found = [e for e in leaves(exc) if not isinstance(e, trio.Cancelled)]
    for leaf in found:
        if not any(text in str(leaf) for text in knock_on):
            return leaf
    return found[0] if found else None


@contextmanager
def single_error(*knock_on: str) -> Iterator[None]:
    """Re-raise an exception group from a nursery as its root cause."""
    try:
        yield
    except BaseExceptionGroup as group:
        cause = root_cause(group, knock_on=knock_on)
        if cause is None:
            raise
        raise cause from None
