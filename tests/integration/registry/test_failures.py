"""What must not get in: corrupt blobs; what must not be left: half-written pulls."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.registry import (
    BlobVerificationError,
    RegistryUnavailableError,
    pull_image,
    push_image,
)
from pycompose.runtime.registry.events import ProgressEvent
from tests.helpers.registry import RegistryServer, registry_available
from tests.integration.registry.conftest import add_layer


def store_is_empty(store: ImageStore) -> bool:
    layers = store.root / "layers"
    tmp = store.root / "tmp"
    return (store.list() == []
            and (not layers.exists() or not any(layers.iterdir()))
            and (not tmp.exists() or not [p for p in tmp.iterdir()]))


async def test_corrupt_blob_is_rejected(registry: RegistryServer, store: ImageStore,
                                        dest_store: ImageStore, multilayer: Image,
                                        tmp_path: Path, run_id: str) -> None:
    ref = f"{registry.host}/pc{run_id}/corrupt:1"
    # The registry is shared by the session and stores blobs by content: the layer to
    # corrupt must be this test's alone (random bytes), never one another test pushes.
    add_layer(store, multilayer, tmp_path, {"unique.bin": os.urandom(256)}, "corrupt:1")
    pushed = await push_image(store, ref, source="corrupt:1", work_dir=tmp_path / "w")
    from pycompose.runtime.registry.client import RegistryClient
    from pycompose.runtime.registry.http import HttpClient

    async with HttpClient() as http:
        client = RegistryClient(http, registry.host)
        _, body, _ = await client.get_manifest(f"pc{run_id}/corrupt", "1")

    top = json.loads(body)["layers"][-1]["digest"]
    data = registry.blob_path(top)
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one byte flipped
    data.write_bytes(bytes(raw))
    with pytest.raises(BlobVerificationError, match="does not match its digest"):
        await pull_image(dest_store, ref, work_dir=tmp_path / "d")
    assert store_is_empty(dest_store)
    assert not any((tmp_path / "d").iterdir())
    assert pushed.uploaded + pushed.skipped == 4  # (others may have pushed the shared ones)
    assert pushed.uploaded >= 1  # this test's own layer, at least


async def test_multi_platform_index_picks_the_host(registry: RegistryServer, store: ImageStore,
                                                   dest_store: ImageStore, multilayer: Image,
                                                   tmp_path: Path, run_id: str) -> None:
    from dataclasses import replace

    from pycompose.runtime.images.config import host_architecture
    from pycompose.runtime.registry.http import HttpClient
    from pycompose.runtime.registry.push import push_index

    host = host_architecture()
    other = "arm64" if host != "arm64" else "amd64"
    foreign = store.create_image(replace(multilayer.config, architecture=other), "app:other")
    repo = f"{registry.host}/pc{run_id}/multi"
    native = await push_image(store, f"{repo}:native", source="app:1", work_dir=tmp_path / "w")
    alien = await push_image(store, f"{repo}:other", source=foreign.id, work_dir=tmp_path / "w")
    assert native.manifest.config_digest != alien.manifest.config_digest
    async with HttpClient() as http:
        await push_index(http, f"{repo}:1", [alien.manifest, native.manifest],
                         variants={"arm64": "v8"})
    result = await pull_image(dest_store, f"{repo}:1", work_dir=tmp_path / "d")
    assert result.image.config.architecture == host
    assert result.image.id == native.manifest.config_digest
    assert result.digest == native.manifest.digest
    forced = await pull_image(dest_store, f"{repo}:1", work_dir=tmp_path / "d",
                              platform={"os": "linux", "architecture": other})
    assert forced.image.config.architecture == other
    assert forced.existed == 3  # same layers
    from pycompose.runtime.registry import RegistryError

    with pytest.raises(RegistryError, match="no image for linux/s390x"):
        await pull_image(dest_store, f"{repo}:1", work_dir=tmp_path / "d",
                         platform={"os": "linux", "architecture": "s390x"})


@pytest.fixture
def dying_registry(tmp_path: Path) -> RegistryServer:
    if not registry_available():
        pytest.skip("needs Debian's docker-registry")
    server = RegistryServer(tmp_path / "dying").start()
    yield server  # type: ignore[misc]
    server.kill()


async def test_registry_dies_mid_pull(dying_registry: RegistryServer, store: ImageStore,
                                      dest_store: ImageStore, multilayer: Image,
                                      tmp_path: Path, run_id: str) -> None:
    big = add_layer(store, multilayer, tmp_path, {"big.bin": os.urandom(48 << 20)}, "big:1")
    ref = f"{dying_registry.host}/pc{run_id}/big:1"
    await push_image(store, ref, source=big.id, work_dir=tmp_path / "w")
    big_digest = None
    killed = False

    def on_event(event: ProgressEvent) -> None:
        nonlocal killed, big_digest
        if event.status == "Downloading" and event.total and event.total > (40 << 20):
            big_digest = event.id
            if event.current > (4 << 20) and not killed:
                dying_registry.kill()
                killed = True

    work = tmp_path / "d"
    with trio.fail_after(120), pytest.raises(RegistryUnavailableError, match="big"):
        await pull_image(dest_store, ref, work_dir=work, progress=on_event)
    assert killed
    assert store_is_empty(dest_store)
    assert not [p for p in work.iterdir() if p.name.endswith(".partial")]
    assert not any(p.name.startswith(big_digest or "?") for p in work.iterdir())
    # The other layers were unpacked and verified while the big one was retried (3.5 s):
    # they are kept for the retry (outside the store).
    kept = [p for p in work.iterdir() if p.name.endswith(".layer")]
    assert kept
    assert big.layers[-1].diff_id.partition(":")[2] + ".layer" not in {p.name for p in kept}

    dying_registry.start()  # same port, same storage
    events: list[ProgressEvent] = []
    with trio.fail_after(120):
        result = await pull_image(dest_store, ref, work_dir=work, progress=events.append)
    assert (result.image.layers[-1].path / "big.bin").stat().st_size == 48 << 20
    assert [e for e in events if e.id == big_digest and e.status == "Downloading"]
    downloaded = {e.id for e in events if e.status == "Downloading"}
    assert result.downloaded == 4
    assert len(downloaded) <= 4 - len(kept)
    assert not [p for p in work.iterdir() if not p.name.startswith("digests.")]


async def test_a_kept_layer_that_is_not_usable_is_downloaded(
        registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str) -> None:
    """What an earlier pull kept is taken over only when it is that layer, complete;
    otherwise (no layer.json, another layer's) the layer is downloaded, and a leftover
    that names another layer is removed."""
    ref = f"{registry.host}/pc{run_id}/kept:1"
    await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    work = tmp_path / "d"
    work.mkdir()
    bogus = [work / (layer.diff_id.partition(":")[2] + ".layer") for layer in multilayer.layers]
    bogus[0].mkdir()  # no layer.json: an interrupted keep
    (bogus[1] / "diff").mkdir(parents=True)
    (bogus[1] / "layer.json").write_text('{"diff_id": "sha256:' + "0" * 64 + '"}')
    with trio.fail_after(60):
        result = await pull_image(dest_store, ref, work_dir=work)
    assert result.downloaded == 3
    assert result.image.id == multilayer.id
    assert (result.image.layers[0].path / "bin" / "busybox").is_file()
    assert not bogus[1].exists()


async def test_kept_layers_the_store_has_meanwhile_are_removed(
        registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str) -> None:
    """What a failed pull kept of a layer that reached the store since is thrown away, and
    so is what a pull died while throwing away (``*.dead``)."""
    ref = f"{registry.host}/pc{run_id}/since:1"
    await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    work = tmp_path / "d"
    await pull_image(dest_store, ref, work_dir=work)  # records every blob, stores every layer
    stale = work / (multilayer.layers[0].diff_id.partition(":")[2] + ".layer")
    (stale / "diff").mkdir(parents=True)
    dying = work / "0123.layer.abcd.dead"
    (dying / "diff").mkdir(parents=True)
    events: list[ProgressEvent] = []
    result = await pull_image(dest_store, ref, work_dir=work, progress=events.append)
    assert (result.downloaded, result.existed) == (0, 3)
    assert [e.status for e in events].count("Already exists") == 3
    assert not stale.exists()
    assert not dying.exists()


async def test_prune_removes_kept_layers_and_the_retry_downloads_them(
        registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
        multilayer: Image, tmp_path: Path, run_id: str) -> None:
    """A layer a failed pull kept is taken over by the next pull unless it was pruned:
    then that pull downloads it again, and gets the same image."""
    from pycompose.runtime.registry import prune_kept_layers

    ref = f"{registry.host}/pc{run_id}/pruned:1"
    await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    top = multilayer.layers[-1]
    from pycompose.runtime.registry.client import RegistryClient
    from pycompose.runtime.registry.http import HttpClient

    async with HttpClient() as http:
        _, body, _ = await RegistryClient(http, registry.host).get_manifest(
            f"pc{run_id}/pruned", "1")
    desc = json.loads(body)["layers"][-1]
    work = tmp_path / "d"
    work.mkdir()
    kept = work / (top.diff_id.partition(":")[2] + ".layer")
    with dest_store.staging() as area:  # what a pull the registry broke off leaves
        blob = registry.blob_path(desc["digest"])
        assert area.unpack_blob("top", lambda: blob.open("rb"), digest=desc["digest"],
                                size=desc["size"]) == top.diff_id
        assert area.keep(top.diff_id, kept)
    size = json.loads((kept / "layer.json").read_text())["size"]
    assert size > 0

    assert prune_kept_layers(work) == size
    assert not kept.exists()
    assert prune_kept_layers(work) == 0
    events: list[ProgressEvent] = []
    with trio.fail_after(60):
        result = await pull_image(dest_store, ref, work_dir=work, progress=events.append)
    assert result.image.id == multilayer.id
    extracted = {e.id for e in events if e.status == "Extracting"}
    assert len(extracted) == 3  # none taken over: all three downloaded and unpacked
