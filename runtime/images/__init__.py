"""The image store: content-addressed layers and configs, names, archives, safe unpacking.

Public API (the container runtime, the engine and the builder build on it)::

    store = ImageStore(root)                      # root: <PYCOMPOSE_ROOT>/images
    store.import_rootfs(tar, "app:1", changes=["CMD [\\"sh\\"]"]) -> Image
    store.load(archive) -> list[Image]            # docker save / OCI layout / OCI archive
    store.add_images([ImageSource(...)])          # verified streams from anywhere (a registry)
    with store.staging() as staging:              # a pull: layers unpacked side by side,
        staging.unpack(layer_source)              #   one worker thread each (thread-safe)
        staging.commit(config_bytes, names)       #   image appears at once, lock held briefly
    store.save(refs, out) / export_layer(diff_id, out)   # exact layer tars, ids unchanged
    store.get("busybox") -> Image                 # name, full id, or id prefix
    store.list() / tag(src, dst) / remove(ref, force=, in_use=) / prune(all=, in_use=)
    store.hold(image, container_id) / release(container_id) / release_all_but(live_ids)
    store.add_layer_from_dir(upper) -> Layer      # overlay upper dir → layer
    store.remove_unused_layers(diff_ids)          # those of them no image uses
    store.create_image(config, ref) / commit(upper, parent=, ref=, changes=)
    image.layer_dirs                              # bottom → top, the overlay lower dirs
    image.config.config.cmd / .env / …            # typed image config

Modules: ``store`` (the store), ``layers`` (safe unpack, whiteouts, dir → tar),
``archive`` (archive formats), ``config`` (config model), ``changes``
(Dockerfile metadata instructions), ``reference`` (names), ``digest``,
``compression``, ``inspect``, ``tarsplit`` (exact layer tars from directories).
"""

from __future__ import annotations

from pycompose.runtime.images.archive import ImageSource, LayerSource
from pycompose.runtime.images.config import (
    ContainerConfig,
    Healthcheck,
    HistoryEntry,
    ImageConfig,
)
from pycompose.runtime.images.reference import Reference, parse_reference
from pycompose.runtime.images.store import Image, ImageStore, Layer, PruneResult

__all__ = [
    "ContainerConfig", "Healthcheck", "HistoryEntry", "Image", "ImageConfig", "ImageStore",
    "ImageSource", "Layer", "LayerSource", "PruneResult", "Reference", "parse_reference",
]
