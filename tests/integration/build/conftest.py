"""Fixtures of the builder tests: a busybox image store, and a runtime whose teardown
checks that nothing (mounts, processes, cgroups, build work directories) is left."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from pycompose.runtime.bootstrap import bootstrap_busybox
from pycompose.runtime.client import Runtime, open_runtime
from pycompose.runtime.images import ImageStore
from tests.helpers.builds import leftovers
from tests.integration.runtime.test_container_support import cleanup


@pytest.fixture
def instance(run_id: str) -> str:
    return "b" + run_id


@pytest.fixture
async def rt(state_root: Path, instance: str) -> AsyncIterator[Runtime]:
    try:
        async with open_runtime(state_root, instance) as runtime:
            yield runtime
    finally:
        await cleanup(state_root, instance)
        assert leftovers(state_root) == []


@pytest.fixture
def store(state_root: Path) -> ImageStore:
    store = ImageStore(state_root / "images")
    bootstrap_busybox(store)
    return store


@pytest.fixture
def root(state_root: Path, instance: str) -> Iterator[Path]:
    """A state root with busybox, for the command line; what it ran is cleaned up after."""
    bootstrap_busybox(ImageStore(state_root / "images"))
    try:
        yield state_root
    finally:
        trio.run(cleanup, state_root, instance)
