"""A pull does not wait for the image config before its layers: it knows from the blobs
its store recorded which ones to skip, and checks every layer against the config before
it commits. Against the real registry."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.images.config import ImageConfig
from pycompose.runtime.images.digest import sha256_digest
from pycompose.runtime.registry import BlobVerificationError, pull, pull_image, push_image
from pycompose.runtime.registry.client import RegistryClient
from pycompose.runtime.registry.events import ProgressEvent
from pycompose.runtime.registry.http import HttpClient
from tests.helpers.registry import RegistryServer
from tests.integration.registry.test_failures import store_is_empty

FetchConfig = Callable[[pull.ResolvedImage], Awaitable[tuple[bytes, ImageConfig]]]


def config_held_until(monkeypatch: pytest.MonkeyPatch, release: trio.Event) -> None:
    """The pull's config request answers only once ``release`` is set."""
    original: FetchConfig = pull.fetch_config

    async def held(res: pull.ResolvedImage) -> tuple[bytes, ImageConfig]:
        await release.wait()
        return await original(res)

    monkeypatch.setattr(pull, "fetch_config", held)


async def test_layers_start_before_the_config_arrives(
        registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ref = f"{registry.host}/pc{run_id}/early:1"
    await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    extracting = trio.Event()

    def on_event(event: ProgressEvent) -> None:
        if event.status == "Extracting":
            extracting.set()

    config_held_until(monkeypatch, extracting)
    with trio.fail_after(60):  # a pull that waits for the config first never gets here
        result = await pull_image(dest_store, ref, work_dir=tmp_path / "d", progress=on_event)
    assert result.image.id == multilayer.id
    assert result.downloaded == 3
    assert (result.image.layers[0].path / "bin" / "busybox").is_file()
    # Each blob's diff-id is on record for the next pull.
    blobs = _blob_digests(await _manifest(registry, f"pc{run_id}/early", "1"))
    assert [dest_store.blob_diff_id(d) for d in blobs] == [
        layer.diff_id for layer in multilayer.layers]


async def test_a_recorded_layer_is_skipped_before_the_config_arrives(
        registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    base_ref = f"{registry.host}/pc{run_id}/rec:base"
    app_ref = f"{registry.host}/pc{run_id}/rec:app"
    await push_image(store, base_ref, source="base:1", work_dir=tmp_path / "w")
    await push_image(store, app_ref, source="app:1", work_dir=tmp_path / "w")
    await pull_image(dest_store, base_ref, work_dir=tmp_path / "d")
    skipped = trio.Event()
    events: list[ProgressEvent] = []

    def on_event(event: ProgressEvent) -> None:
        events.append(event)
        if event.status == "Already exists":
            skipped.set()

    config_held_until(monkeypatch, skipped)
    with trio.fail_after(60):
        result = await pull_image(dest_store, app_ref, work_dir=tmp_path / "d",
                                  progress=on_event)
    assert (result.existed, result.downloaded) == (1, 2)
    assert [e.status for e in events].count("Already exists") == 1
    assert result.image.id == multilayer.id


async def test_layers_that_do_not_match_the_config_are_rejected(
        registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str) -> None:
    """A manifest whose config names the diff-ids in another order than its blobs give
    them: refused whether the layers were downloaded or found by their record."""
    repo = f"pc{run_id}/swapped"
    good = await push_image(store, f"{registry.host}/{repo}:good", source="app:1",
                            work_dir=tmp_path / "w")
    config = json.loads((store.root / "blobs" / "sha256" /
                         multilayer.id.partition(":")[2]).read_bytes())
    ids = config["rootfs"]["diff_ids"]
    config["rootfs"]["diff_ids"] = [ids[0], ids[2], ids[1]]
    config_bytes = json.dumps(config).encode()
    config_digest = sha256_digest(config_bytes)
    manifest = json.loads(await _manifest(registry, repo, "good"))
    manifest["config"] = {**manifest["config"], "digest": config_digest,
                          "size": len(config_bytes)}
    async with HttpClient() as http:
        client = RegistryClient(http, registry.host)

        async def chunks():  # type: ignore[no-untyped-def]
            yield config_bytes

        await client.upload_blob(repo, config_digest, len(config_bytes), chunks)
        await client.put_manifest(repo, "bad", manifest["mediaType"],
                                  json.dumps(manifest).encode())
    bad_ref = f"{registry.host}/{repo}:bad"
    work = tmp_path / "d"
    with trio.fail_after(60), pytest.raises(
            BlobVerificationError, match="does not match the image config's diff_id"):
        await pull_image(dest_store, bad_ref, work_dir=work)
    assert store_is_empty(dest_store)
    assert not [p for p in work.iterdir() if p.name.endswith((".layer", ".partial"))]

    result = await pull_image(dest_store, f"{registry.host}/{repo}:good", work_dir=work)
    assert result.image.id == good.manifest.config_digest
    with trio.fail_after(60), pytest.raises(
            BlobVerificationError, match="does not match the image config's diff_id"):
        await pull_image(dest_store, bad_ref, work_dir=work)  # all three found by record
    assert [i.id for i in dest_store.list()] == [good.manifest.config_digest]


async def _manifest(registry: RegistryServer, repo: str, tag: str) -> bytes:
    async with HttpClient() as http:
        _, body, _ = await RegistryClient(http, registry.host).get_manifest(repo, tag)
    return body


def _blob_digests(manifest: bytes) -> list[str]:
    return [layer["digest"] for layer in json.loads(manifest)["layers"]]


async def test_a_blob_listed_twice_is_fetched_and_counted_once(
        registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str) -> None:
    repo = f"pc{run_id}/twice"
    await push_image(store, f"{registry.host}/{repo}:src", source="app:1",
                     work_dir=tmp_path / "w")
    config = json.loads((store.root / "blobs" / "sha256" /
                         multilayer.id.partition(":")[2]).read_bytes())
    ids = config["rootfs"]["diff_ids"]
    config["rootfs"]["diff_ids"] = [ids[0], ids[1], ids[1]]
    config.pop("history", None)
    config_bytes = json.dumps(config).encode()
    manifest = json.loads(await _manifest(registry, repo, "src"))
    manifest["layers"] = [manifest["layers"][0], manifest["layers"][1], manifest["layers"][1]]
    manifest["config"] = {**manifest["config"], "digest": sha256_digest(config_bytes),
                          "size": len(config_bytes)}
    async with HttpClient() as http:
        client = RegistryClient(http, registry.host)

        async def chunks():  # type: ignore[no-untyped-def]
            yield config_bytes

        await client.upload_blob(repo, sha256_digest(config_bytes), len(config_bytes), chunks)
        await client.put_manifest(repo, "1", manifest["mediaType"],
                                  json.dumps(manifest).encode())
    ref = f"{registry.host}/{repo}:1"
    first = await pull_image(dest_store, ref, work_dir=tmp_path / "d")
    assert (first.downloaded, first.existed) == (2, 0)
    assert [layer.diff_id for layer in first.image.layers] == [ids[0], ids[1], ids[1]]
    events: list[ProgressEvent] = []
    again = await pull_image(dest_store, ref, work_dir=tmp_path / "d", progress=events.append)
    assert (again.downloaded, again.existed) == (0, 2)
    assert [e.status for e in events].count("Already exists") == 2
