"""Push images with pycompose's own push and pull them back from a real registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.registry import RegistryConfig, pull_image, push_image
from pycompose.runtime.registry.events import ProgressEvent
from tests.helpers.registry import RegistryServer
from tests.integration.registry.conftest import add_layer


async def test_push_then_pull_multilayer(registry: RegistryServer, store: ImageStore,
                                         dest_store: ImageStore, multilayer: Image,
                                         tmp_path: Path, run_id: str) -> None:
    ref = f"{registry.host}/pc{run_id}/app:1"
    with trio.fail_after(60):
        pushed = await push_image(store, ref, source="app:1", work_dir=tmp_path / "w1")
    assert pushed.uploaded == 3
    events: list[ProgressEvent] = []
    with trio.fail_after(60):
        result = await pull_image(dest_store, ref, work_dir=tmp_path / "w2",
                                  progress=events.append)
    image = result.image
    assert image.id == pushed.manifest.config_digest
    # The store reproduces each layer's tar byte for byte: the same image id on both sides.
    assert image.id == multilayer.id
    assert len(image.layers) == 3
    assert result.downloaded == 3
    assert result.existed == 0
    top = image.layers[-1].path
    assert (top / "srv" / "data" / "hello.txt").read_bytes() == b"hello from layer 3\n"
    assert (image.layers[0].path / "bin" / "busybox").is_file()
    assert image.config.config.cmd == ("sh",)
    assert "A=1" in image.config.config.env
    assert dest_store.get(f"{registry.host}/pc{run_id}/app:1").id == image.id
    statuses = {e.status for e in events}
    assert {"Downloading", "Download complete", "Extracting", "Pull complete"} <= statuses
    assert not [p for p in (tmp_path / "w2").iterdir() if not p.name.startswith("digests.")]

    # A second pull downloads nothing and says so.
    events.clear()
    again = await pull_image(dest_store, ref, work_dir=tmp_path / "w2", progress=events.append)
    assert again.downloaded == 0
    assert again.existed == 3
    assert not again.updated
    assert any(e.status.startswith("Status: Image is up to date") for e in events)


async def test_layers_take_download_slots_in_manifest_order(
        registry: RegistryServer, store: ImageStore, multilayer: Image, tmp_path: Path,
        run_id: str) -> None:
    """With one download at a time the layers come base first, as the manifest lists
    them, on every pull (not in the order the scheduler happens to run their tasks)."""
    ref = f"{registry.host}/pc{run_id}/order:1"
    await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    config = RegistryConfig(max_concurrent_downloads=1)
    for attempt in range(4):
        events: list[ProgressEvent] = []
        with trio.fail_after(60):
            await pull_image(ImageStore(tmp_path / f"d{attempt}" / "images"), ref,
                             config=config, work_dir=tmp_path / f"d{attempt}" / "w",
                             progress=events.append)
        manifest_order = [e.id for e in events if e.status == "Waiting"]  # listed in order
        assert len(set(manifest_order)) == 3
        assert [e.id for e in events if e.status == "Extracting"] == manifest_order


async def test_no_more_layers_at_once_than_cpus(
        registry: RegistryServer, store: ImageStore, multilayer: Image, tmp_path: Path,
        run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three downloads allowed, two CPUs: two layers in flight at most (each is unpacked
    by a thread of its own as it arrives); one CPU still gets two."""
    from pycompose.runtime.registry.pull import layers_at_once

    ref = f"{registry.host}/pc{run_id}/cpus:1"
    big = add_layer(store, multilayer, tmp_path, {"big.bin": os.urandom(4 << 20)}, "cpus:1")
    await push_image(store, ref, source=big.id, work_dir=tmp_path / "w")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert layers_at_once(3) == 2
    assert layers_at_once(1) == 1
    events: list[ProgressEvent] = []
    with trio.fail_after(60):
        result = await pull_image(ImageStore(tmp_path / "d" / "images"), ref,
                                  config=RegistryConfig(max_concurrent_downloads=3),
                                  work_dir=tmp_path / "d" / "w", progress=events.append)
    assert result.downloaded == 4
    in_flight, most = set(), 0
    for event in events:
        if event.status == "Extracting":
            in_flight.add(event.id)
            most = max(most, len(in_flight))
        elif event.status == "Download complete":
            in_flight.discard(event.id)
    assert most == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert layers_at_once(3) == 2


async def test_pull_skips_layers_already_present(registry: RegistryServer, store: ImageStore,
                                                 dest_store: ImageStore, multilayer: Image,
                                                 tmp_path: Path, run_id: str) -> None:
    # A repository of this test's own: the session's registry keeps what other tests
    # pushed, and their layers can be byte for byte these.
    base_ref = f"{registry.host}/pc{run_id}/skip:base"
    app_ref = f"{registry.host}/pc{run_id}/skip:app"
    await push_image(store, base_ref, source="base:1", work_dir=tmp_path / "w")
    second = await push_image(store, app_ref, source="app:1", work_dir=tmp_path / "w")
    assert second.skipped == 1  # the base layer: HEAD says it is there
    first = await pull_image(dest_store, base_ref, work_dir=tmp_path / "d")
    assert first.downloaded == 1
    events: list[ProgressEvent] = []
    result = await pull_image(dest_store, app_ref, work_dir=tmp_path / "d",
                              progress=events.append)
    assert result.downloaded == 2
    assert result.existed == 1
    assert [e.status for e in events].count("Already exists") == 1


async def test_chunked_upload_and_oci_manifest(registry: RegistryServer, store: ImageStore,
                                               dest_store: ImageStore, multilayer: Image,
                                               tmp_path: Path, run_id: str) -> None:
    ref = f"{registry.host}/pc{run_id}/chunked:1"
    pushed = await push_image(store, ref, source="app:1", work_dir=tmp_path / "w",
                              chunk_size=64 * 1024, oci=True)
    assert pushed.manifest.media_type == "application/vnd.oci.image.manifest.v1+json"
    result = await pull_image(dest_store, ref, work_dir=tmp_path / "d")
    assert result.image.id == pushed.manifest.config_digest == multilayer.id
    assert (result.image.layers[1].path / "etc" / "app.conf").read_bytes() == b"answer=42\n"


async def test_pull_unknown_tag(registry: RegistryServer, dest_store: ImageStore,
                                tmp_path: Path, run_id: str) -> None:
    from pycompose.runtime.errors import ImageNotFoundError

    with pytest.raises(ImageNotFoundError, match="not found"):
        await pull_image(dest_store, f"{registry.host}/pc{run_id}/nothing:here",
                         work_dir=tmp_path / "d")
    assert dest_store.list() == []


def test_registry_config_is_plain_json(tmp_path: Path) -> None:
    (tmp_path / "registries.json").write_text(json.dumps(
        {"registry-mirrors": ["https://m.example/"], "insecure-registries": ["reg.lan:5000"]}))
    cfg = RegistryConfig.load(tmp_path, {"PYCOMPOSE_INSECURE_REGISTRIES": "10.1.0.0/16",
                                         "HOME": "/home/x"})
    assert cfg.mirrors == ("https://m.example",)
    assert cfg.is_insecure("reg.lan:5000")
    assert cfg.is_insecure("10.1.2.3:5000")
    assert cfg.is_insecure("127.0.0.1:5000")
    assert not cfg.is_insecure("reg.lan:443")
    assert cfg.docker_config == Path("/home/x/.docker/config.json")


async def test_concurrent_pulls_sharing_layers(registry: RegistryServer, store: ImageStore,
                                               dest_store: ImageStore, multilayer: Image,
                                               tmp_path: Path, run_id: str) -> None:
    refs = [f"{registry.host}/pc{run_id}/shared-{n}:1" for n in range(3)]
    for ref in refs:
        await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    results = []

    async def one(ref: str) -> None:
        results.append(await pull_image(dest_store, ref, work_dir=tmp_path / "d"))

    async with trio.open_nursery() as nursery:
        for ref in refs:
            nursery.start_soon(one, ref)
    assert {r.image.id for r in results} == {multilayer.id}
    assert len(dest_store.get(refs[0]).names) == 3
    assert not [p for p in (tmp_path / "d").iterdir() if not p.name.startswith("digests.")]
