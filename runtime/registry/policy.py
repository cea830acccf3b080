"""``pull_policy`` for the engine: make sure an image is in the store, pulling as the policy says.

::

    image = await ensure_image(store, "redis:7", "missing", config=cfg,
                               work_dir=root / "downloads", progress=on_event)

Policies (the Compose specification's ``pull_policy``):

``missing`` / ``if_not_present`` (default)
    use the local image; pull only when there is none.
``always``
    pull every time (an unreachable registry is an error, as in ``docker compose``).
``never``
    use the local image; never pull (``ImageNotFoundError`` when missing).
``build``
    the caller builds the image; here that means: use it when present, else
    ``ImageNotFoundError`` saying to build it.
``daily`` / ``weekly`` / ``every_<N>[smhdw]`` / ``refresh``
    pull when the local image was stored longer ago than that (``refresh``: always).

When a pull is needed but fails because the registry cannot be reached, or
the name is unknown there, the error says how to make the image locally
(``pycompose image bootstrap`` for the base images it knows, ``image import``
/ ``image load`` otherwise).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from pycompose.runtime.errors import ImageNotFoundError
from pycompose.runtime.images.reference import parse_reference
from pycompose.runtime.images.store import Image, ImageStore
from pycompose.runtime.registry.config import RegistryConfig
from pycompose.runtime.registry.errors import (
    ManifestNotFoundError,
    RegistryAuthError,
    RegistryUnavailableError,
)
from pycompose.runtime.registry.events import Progress, ignore
from pycompose.runtime.registry.http import HttpClient
from pycompose.runtime.registry.pull import pull_image, pulled_image_id

__all__ = ["ensure_image", "bootstrap_hint", "POLICIES"]

POLICIES = ("missing", "if_not_present", "always", "never", "build", "daily", "weekly",
            "refresh")
_EVERY = re.compile(r"^every_(\d+)([smhdw]?)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 1}

# Names `pycompose image bootstrap` can make without a registry (see runtime/bootstrap.py).
BOOTSTRAPPABLE = ("busybox", "debian")


def bootstrap_hint(reference: str) -> str:
    """How to get ``reference`` without a registry."""
    ref = parse_reference(reference)
    name = ref.familiar_repository
    if ref.domain == "docker.io" and name in BOOTSTRAPPABLE:
        return f"build it locally with `pycompose image bootstrap {ref.familiar}`"
    return ("import it with `pycompose image import ROOTFS.tar NAME` or "
            "`pycompose image load -i ARCHIVE`")


def _max_age(policy: str) -> timedelta | None:
    if policy == "daily":
        return timedelta(days=1)
    if policy == "weekly":
        return timedelta(weeks=1)
    m = _EVERY.match(policy)
    if m:
        return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    return None


async def _local(store: ImageStore, reference: str, work_dir: Path) -> Image | None:
    if parse_reference(reference).digest is not None:
        # The store names tags only; digests pulled are remembered next to the downloads.
        found = await trio.to_thread.run_sync(pulled_image_id, work_dir, reference)
        if found is None:
            return None
        reference = found
    try:
        return await trio.to_thread.run_sync(store.get, reference)
    except ImageNotFoundError:
        return None


async def ensure_image(store: ImageStore, reference: str, policy: str | None = "missing", *,
                       config: RegistryConfig | None = None, work_dir: Path | None = None,
                       progress: Progress = ignore, http: HttpClient | None = None) -> Image:
    """The image for ``reference`` after applying ``policy`` (see the module docstring).
    ``http``: a client to share (its connections and TLS context) with other pulls."""
    policy = policy or "missing"
    if policy not in POLICIES and not _EVERY.match(policy):
        raise ValueError(f"unknown pull_policy {policy!r}")
    work_dir = Path(work_dir) if work_dir is not None else store.root.parent / "downloads"
    local = await _local(store, reference, work_dir)
    if policy in ("never", "build"):
        if local is not None:
            return local
        how = ("build it (`pycompose build`)" if policy == "build"
               else bootstrap_hint(reference))
        raise ImageNotFoundError(
            f"image {reference!r} is not in the image store and pull_policy is {policy}: "
            f"{how}")
    if local is not None and policy in ("missing", "if_not_present"):
        return local
    age = _max_age(policy)
    if local is not None and age is not None and datetime.now(UTC) - local.added < age:
        return local
    try:
        result = await pull_image(store, reference, config=config, work_dir=work_dir,
                                  progress=progress, http=http)
    except (RegistryUnavailableError, ManifestNotFoundError, RegistryAuthError) as exc:
        where = ("is not in the image store and" if local is None
                 else f"could not be pulled (pull_policy {policy}):")
        if isinstance(exc, ManifestNotFoundError):
            raise ManifestNotFoundError(
                f"image {reference!r} {where} the registry does not have it ({exc}); "
                f"{bootstrap_hint(reference)}") from None
        if isinstance(exc, RegistryUnavailableError):
            raise RegistryUnavailableError(
                f"image {reference!r} {where} its registry cannot be reached ({exc}); "
                f"{bootstrap_hint(reference)}") from None
        raise
    return result.image
