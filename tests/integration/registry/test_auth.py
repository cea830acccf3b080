"""Basic auth (htpasswd) and Bearer tokens (the registry's token auth with a test issuer),
credentials read from a Docker config.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.registry import RegistryAuthError, RegistryConfig, pull_image, push_image
from pycompose.runtime.registry.http import HttpClient
from tests.helpers.registry import (
    PASSWORD,
    USER,
    RegistryServer,
    TokenIssuer,
    write_docker_config,
)


def docker_config(tmp_path: Path, host: str, *, password: str = PASSWORD) -> RegistryConfig:
    return RegistryConfig(
        docker_config=write_docker_config(tmp_path / "docker", host, password=password))


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


class _Recording(HttpClient):
    """An HttpClient that notes the URL of every request (``request`` goes through
    ``stream``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def stream(self, method: str, url: str, **kw: Any) -> Any:
        self.urls.append(url)
        return super().stream(method, url, **kw)


async def test_one_client_keeps_scheme_and_tokens(
        token_registry: tuple[RegistryServer, TokenIssuer], store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str) -> None:
    """Pulls through one HttpClient (the engine's) ping a registry once and reuse a
    token until it expires, but never across credentials."""
    server, issuer = token_registry
    ref = f"{server.host}/pc{run_id}/kept:1"
    cfg = docker_config(tmp_path, server.host)
    await push_image(store, ref, source="app:1", config=cfg, work_dir=tmp_path / "w")
    async with _Recording() as http:
        # Anonymous first: refused, and its (empty) grant is not used for the user.
        with pytest.raises(RegistryAuthError):
            await pull_image(ImageStore(tmp_path / "a" / "images"), ref, http=http,
                             work_dir=tmp_path / "a" / "d")
        before = len(issuer.requests)
        for n in range(3):
            pulled = await pull_image(ImageStore(tmp_path / f"s{n}" / "images"), ref,
                                      config=cfg, http=http, work_dir=tmp_path / f"d{n}")
            assert pulled.downloaded == len(multilayer.layers)
    user_tokens = [r for r in issuer.requests[before:] if r["user"] == USER]
    assert len(user_tokens) == 1, issuer.requests[before:]
    assert [u for u in http.urls if u.endswith("/v2/")] == [f"http://{server.host}/v2/"]
