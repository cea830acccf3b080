"""Images from registries: the OCI distribution API (Docker Registry HTTP API v2).

::

    from pycompose.runtime.registry import RegistryConfig, pull_image, push_image, ensure_image

    cfg = RegistryConfig.load(state_root, os.environ)       # mirrors, insecure registries
    result = await pull_image(store, "redis:7", config=cfg, work_dir=state_root / "downloads",
                              progress=callback)           # ProgressEvent per layer
    await push_image(store, "localhost:5000/app:1", source="app:1", config=cfg)
    image = await ensure_image(store, "redis:7", "missing", config=cfg)  # pull_policy

Modules: ``http`` (h11 over trio), ``auth`` (config.json, challenges, tokens),
``client`` (one registry's API), ``manifest`` (manifests, indexes, platforms),
``pull``, ``push``, ``policy`` (``ensure_image``), ``config``, ``events``,
``errors``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pycompose.runtime.registry.config import RegistryConfig
from pycompose.runtime.registry.errors import (
    BlobVerificationError,
    ManifestNotFoundError,
    RegistryAuthError,
    RegistryError,
    RegistryUnavailableError,
)
from pycompose.runtime.registry.events import ProgressEvent

if TYPE_CHECKING:
    from pycompose.runtime.registry.policy import bootstrap_hint, ensure_image
    from pycompose.runtime.registry.pull import PullResult, prune_kept_layers, pull_image
    from pycompose.runtime.registry.push import PushResult, push_image

# Loaded on first use: a pull need not import push and policy (start-up time of the CLI).
_LAZY = {
    "bootstrap_hint": "policy", "ensure_image": "policy", "PullResult": "pull",
    "prune_kept_layers": "pull", "pull_image": "pull", "PushResult": "push",
    "push_image": "push",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

__all__ = [
    "BlobVerificationError", "ManifestNotFoundError", "ProgressEvent", "PullResult",
    "PushResult", "RegistryAuthError", "RegistryConfig", "RegistryError",
    "RegistryUnavailableError", "bootstrap_hint", "ensure_image", "prune_kept_layers",
    "pull_image", "push_image",
]
