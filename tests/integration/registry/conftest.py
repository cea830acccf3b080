"""Fixtures: a real registry on loopback (session-scoped, killed by PID), image stores,
and small multi-layer images made from the busybox rootfs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.registry.config import RegistryConfig
from tests.helpers.images import make_rootfs_tar
from tests.helpers.registry import RegistryServer, TokenIssuer, registry_available


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    if not registry_available():
        pytest.skip("needs Debian's docker-registry")
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[RegistryServer, TokenIssuer]]:
    if not registry_available():
        pytest.skip("needs Debian's docker-registry")
    work = tmp_path_factory.mktemp("token-registry")
    issuer = TokenIssuer(work)
    issuer.start()
    server = RegistryServer(work, auth="token", issuer=issuer)
    try:
        server.start()
        yield server, issuer
    finally:
        server.kill()
        issuer.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    if not registry_available():
        pytest.skip("needs Debian's docker-registry")
    server = RegistryServer(tmp_path_factory.mktemp("basic-registry"), auth="htpasswd")
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture
def reg_config() -> RegistryConfig:
    return RegistryConfig()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    """The store images are pushed from."""
    return ImageStore(tmp_path / "src" / "images")


@pytest.fixture
def dest_store(tmp_path: Path) -> ImageStore:
    """An empty store to pull into."""
    return ImageStore(tmp_path / "dst" / "images")


def add_layer(store: ImageStore, parent: Image, tmp: Path, files: dict[str, bytes],
              ref: str) -> Image:
    diff = tmp / f"diff-{len(parent.layers)}-{os.urandom(3).hex()}"
    for name, data in files.items():
        path = diff / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return store.commit(diff, parent=parent, ref=ref, created_by=f"add {sorted(files)}")


@pytest.fixture
def multilayer(store: ImageStore, busybox_rootfs: Path, tmp_path: Path) -> Image:
    """busybox + two small layers, named ``app:1`` in ``store``."""
    tar = make_rootfs_tar(busybox_rootfs, tmp_path / "rootfs.tar")
    base = store.import_rootfs(tar, "base:1", changes=['CMD ["sh"]', "ENV A=1"])
    one = add_layer(store, base, tmp_path, {"etc/app.conf": b"answer=42\n"}, "app:tmp")
    return add_layer(store, one, tmp_path, {"srv/data/hello.txt": b"hello from layer 3\n",
                                            "srv/data/empty": b""}, "app:1")
