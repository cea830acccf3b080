"""zstd layers, a Docker Hub mirror, and cross-repository mounts against the real registry."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import zstandard

from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.images.digest import sha256_digest
from pycompose.runtime.registry import RegistryConfig, pull_image, push_image
from pycompose.runtime.registry.client import RegistryClient
from pycompose.runtime.registry.events import ProgressEvent
from pycompose.runtime.registry.http import HttpClient
from tests.helpers.registry import RegistryServer


async def test_zstd_layers(registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
                           multilayer: Image, tmp_path: Path, run_id: str) -> None:
    repo = f"pc{run_id}/zstd"
    layers = []
    async with HttpClient() as http:
        client = RegistryClient(http, registry.host)
        for layer in multilayer.layers:
            tar = io.BytesIO()
            store.export_layer(layer.diff_id, tar)
            blob = zstandard.ZstdCompressor().compress(tar.getvalue())
            digest = sha256_digest(blob)

            async def chunks(data: bytes = blob):  # type: ignore[no-untyped-def]
                yield data

            await client.upload_blob(repo, digest, len(blob), chunks)
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                           "digest": digest, "size": len(blob)})
        config = (store.root / "blobs" / "sha256" / multilayer.id.partition(":")[2]).read_bytes()

        async def config_chunks():  # type: ignore[no-untyped-def]
            yield config

        await client.upload_blob(repo, multilayer.id, len(config), config_chunks)
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": multilayer.id, "size": len(config)},
                    "layers": layers}
        await client.put_manifest(repo, "1", "application/vnd.oci.image.manifest.v1+json",
                                  json.dumps(manifest).encode())
    result = await pull_image(dest_store, f"{registry.host}/{repo}:1", work_dir=tmp_path / "d")
    assert result.image.id == multilayer.id
    assert (result.image.layers[-1].path / "srv/data/hello.txt").is_file()


async def test_docker_hub_names_go_to_the_mirror(registry: RegistryServer, store: ImageStore,
                                                 dest_store: ImageStore, multilayer: Image,
                                                 tmp_path: Path, run_id: str) -> None:
    # The mirror holds library/pc<id>-mirrored; a working mirror means no request leaves
    # the machine.
    await push_image(store, f"{registry.host}/library/pc{run_id}-mirrored:1", source="app:1",
                     work_dir=tmp_path / "w")
    cfg = RegistryConfig(mirrors=(f"http://{registry.host}",))
    events: list[ProgressEvent] = []
    result = await pull_image(dest_store, f"pc{run_id}-mirrored:1", config=cfg,
                              work_dir=tmp_path / "d", progress=events.append)
    assert result.reference == f"pc{run_id}-mirrored:1"
    assert dest_store.get(f"docker.io/library/pc{run_id}-mirrored:1").id == result.image.id
    assert any(f"on http://{registry.host}" in e.status for e in events)


async def test_cross_repository_mount(registry: RegistryServer, store: ImageStore,
                                      multilayer: Image, tmp_path: Path, run_id: str) -> None:
    first = f"pc{run_id}/mount-a"
    await push_image(store, f"{registry.host}/{first}:1", source="app:1",
                     work_dir=tmp_path / "w1")
    events: list[ProgressEvent] = []
    second = await push_image(store, f"{registry.host}/pc{run_id}/mount-b:1", source="app:1",
                              work_dir=tmp_path / "w2", mount_from=(first,),
                              progress=events.append)
    assert [e.status for e in events].count("Mounted") == 3
    assert second.uploaded == 3


async def test_registry_with_its_own_ca(store: ImageStore, dest_store: ImageStore,
                                        multilayer: Image, tmp_path: Path,
                                        run_id: str) -> None:
    from pycompose.runtime.registry import RegistryUnavailableError
    from tests.helpers.registry import registry_available

    if not registry_available():
        pytest.skip("needs Debian's docker-registry")
    server = RegistryServer(tmp_path / "tls", tls=True).start()
    try:
        ref = f"{server.host}/pc{run_id}/tls:1"
        with pytest.raises(RegistryUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
            await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
        certs = tmp_path / "certs.d"
        (certs / server.host).mkdir(parents=True)
        (certs / server.host / "ca.crt").write_bytes(server.cert.read_bytes())
        cfg = RegistryConfig(certs_dirs=(certs,))
        await push_image(store, ref, source="app:1", config=cfg, work_dir=tmp_path / "w")
        result = await pull_image(dest_store, ref, config=cfg, work_dir=tmp_path / "d")
        assert result.image.id == multilayer.id
    finally:
        server.kill()
