"""Basic auth (htpasswd) and Bearer tokens (the registry's token auth with a test issuer),
credentials read from a Docker config.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.registry import RegistryAuthError, RegistryConfig, pull_image, push_image
from tests.helpers.registry import PASSWORD, USER, RegistryServer, TokenIssuer


def docker_config(tmp_path: Path, host: str, *, password: str = PASSWORD) -> RegistryConfig:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return RegistryConfig(docker_config=path)


async def test_basic_auth(basic_registry: RegistryServer, store: ImageStore,
                          dest_store: ImageStore, multilayer: Image, tmp_path: Path,
                          run_id: str) -> None:
    ref = f"{basic_registry.host}/pc{run_id}/basic:1"
    with pytest.raises(RegistryAuthError, match="user name and password"):
        await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    wrong = docker_config(tmp_path / "wrong", basic_registry.host, password="nope")
    with pytest.raises(RegistryAuthError, match="denied"):
        await push_image(store, ref, source="app:1", config=wrong, work_dir=tmp_path / "w")
    cfg = docker_config(tmp_path, basic_registry.host)
    pushed = await push_image(store, ref, source="app:1", config=cfg, work_dir=tmp_path / "w")
    result = await pull_image(dest_store, ref, config=cfg, work_dir=tmp_path / "d")
    assert result.image.id == pushed.manifest.config_digest


async def test_token_auth(token_registry: tuple[RegistryServer, TokenIssuer],
                          store: ImageStore, dest_store: ImageStore, multilayer: Image,
                          tmp_path: Path, run_id: str) -> None:
    server, issuer = token_registry
    ref = f"{server.host}/pc{run_id}/private:1"
    cfg = docker_config(tmp_path, server.host)
    # Anonymous: the issuer grants nothing outside public/, the registry refuses.
    with pytest.raises(RegistryAuthError):
        await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    pushed = await push_image(store, ref, source="app:1", config=cfg, work_dir=tmp_path / "w")
    assert any(r["user"] == USER and f"repository:pc{run_id}/private:pull,push" in r["scope"]
               for r in issuer.requests)
    with pytest.raises(RegistryAuthError):
        await pull_image(dest_store, ref, work_dir=tmp_path / "d")
    assert dest_store.list() == []
    result = await pull_image(dest_store, ref, config=cfg, work_dir=tmp_path / "d")
    assert result.image.id == pushed.manifest.config_digest

    # Anonymous pulls of public/ get a pull-only token.
    public = f"{server.host}/public/pc{run_id}:1"
    await push_image(store, public, source="app:1", config=cfg, work_dir=tmp_path / "w")
    other = ImageStore(tmp_path / "other" / "images")
    anon = await pull_image(other, public, work_dir=tmp_path / "o")
    assert anon.image.id == result.image.id
    assert any(r["user"] is None for r in issuer.requests)
