"""``image inspect`` documents shaped like ``docker image inspect`` output."""

from __future__ import annotations

from typing import Any

from pycompose.runtime.images.store import Image


def inspect_image(image: Image) -> dict[str, Any]:
    """One image as Docker's inspect JSON (the config section as stored in the image)."""
    config = image.config
    raw_config = config.raw.get("config")
    lower = [str(p) for p in reversed(image.layer_dirs)]
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": [],
        "Parent": "",
        "Comment": config.history[-1].comment if config.history else "",
        "Created": config.created,
        "Author": config.author,
        "Config": dict(raw_config) if isinstance(raw_config, dict) else config.config.to_json(),
        "Architecture": config.architecture,
        "Variant": config.variant or None,
        "Os": config.os,
        "Size": image.size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(lower[1:]) or None,
                "UpperDir": lower[0] if lower else None,
            },
        },
        "RootFS": {"Type": "layers", "Layers": list(config.diff_ids)},
        "Metadata": {"LastTagTime": image.added.isoformat().replace("+00:00", "Z")},
    }
