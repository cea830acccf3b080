"""ensure_image: what each pull_policy does against a real registry, and the hint when the
registry cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.runtime.errors import ImageNotFoundError
from pycompose.runtime.images import Image, ImageStore
from pycompose.runtime.registry import (
    RegistryUnavailableError,
    ensure_image,
    pull_image,
    push_image,
)
from pycompose.runtime.registry.events import ProgressEvent
from tests.helpers.registry import RegistryServer, free_port


async def test_policies(registry: RegistryServer, store: ImageStore, dest_store: ImageStore,
                        multilayer: Image, tmp_path: Path, run_id: str) -> None:
    ref = f"{registry.host}/pc{run_id}/policy:1"
    pushed = await push_image(store, ref, source="app:1", work_dir=tmp_path / "w")
    work = tmp_path / "d"
    with pytest.raises(ImageNotFoundError, match="pull_policy is never"):
        await ensure_image(dest_store, ref, "never", work_dir=work)
    with pytest.raises(ImageNotFoundError, match="pycompose build"):
        await ensure_image(dest_store, ref, "build", work_dir=work)
    events: list[ProgressEvent] = []
    image = await ensure_image(dest_store, ref, "missing", work_dir=work,
                               progress=events.append)
    assert image.id == pushed.manifest.config_digest
    assert events  # it pulled
    events.clear()
    assert (await ensure_image(dest_store, ref, "missing", work_dir=work,
                               progress=events.append)).id == image.id
    assert not events  # present: no registry traffic
    assert (await ensure_image(dest_store, ref, "never", work_dir=work)).id == image.id
    assert (await ensure_image(dest_store, ref, "daily", work_dir=work,
                               progress=events.append)).id == image.id
    assert not events  # pulled less than a day ago
    await ensure_image(dest_store, ref, "always", work_dir=work, progress=events.append)
    assert any(e.status.startswith("Status: Image is up to date") for e in events)

    # By digest: no tag to name it in the store, found again all the same.
    by_digest = f"{registry.host}/pc{run_id}/policy@{pushed.manifest.digest}"
    other = ImageStore(tmp_path / "other" / "images")
    with pytest.raises(ImageNotFoundError):
        await ensure_image(other, by_digest, "never", work_dir=tmp_path / "o")
    pulled = await ensure_image(other, by_digest, "missing", work_dir=tmp_path / "o")
    assert pulled.id == image.id
    assert pulled.names == ()
    assert (await ensure_image(other, by_digest, "never", work_dir=tmp_path / "o")).id == image.id


async def test_unreachable_registry_says_how_to_bootstrap(dest_store: ImageStore,
                                                          tmp_path: Path) -> None:
    # Nothing listens on this port; "debian" resolves to that registry via a mirror-less
    # name with an explicit host, so no traffic leaves the machine.
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        await pull_image(dest_store, f"{host}/library/debian:bookworm", work_dir=tmp_path)
    with pytest.raises(RegistryUnavailableError, match="import it with"):
        await ensure_image(dest_store, f"{host}/app:1", "missing", work_dir=tmp_path)
    assert dest_store.list() == []
