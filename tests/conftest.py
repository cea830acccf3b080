"""Test-wide fixtures and markers.

* ``@pytest.mark.root`` tests need root and real kernel features; a non-root
  run skips them with that reason. CI runs as root, so they run there.
* Every test that touches the host uses ``run_id`` in the names it creates, and
  a temporary ``PYCOMPOSE_ROOT`` (``state_root``), so a developer's running
  engine and leftovers of a crashed run never collide with it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.images import busybox_available, make_busybox_rootfs

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, cgroups, overlayfs, netlink)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short random tag for this test run, used in every host object name it creates."""
    return secrets.token_hex(2)


@pytest.fixture
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private ``PYCOMPOSE_ROOT`` for one test."""
    root = tmp_path / "state"
    root.mkdir()
    monkeypatch.setenv("PYCOMPOSE_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention busybox root filesystem shared by the session."""
    if not busybox_available():
        pytest.skip("needs Debian's busybox-static (/bin/busybox)")
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
