"""The engine's image routes: ``POST /images/create?fromImage=REF`` pulls from a registry.

The pull runs in the engine (as ``docker pull`` runs in dockerd), so the CLI
that asks for it stays a small blocking client with no trio to import. The
answer is an ndjson stream in Docker's shape: per layer
``{"status": "Downloading", "id": "<12 hex>", "progressDetail": {"current", "total"}}``,
image-level lines without ``id``; a last ``{"status": "Pulled", "reference", "digest",
"imageId"}`` line. Failures after the stream has begun travel in-band, as Docker's
``{"error": msg, "errorDetail": {"message": msg}}`` plus ``"errorType"`` (the
registry error class, so the CLI raises the same type the library would).

``policy=missing`` (or any other ``pull_policy``; pycompose's own parameter) pulls only
as that policy says (``ensure_image``); the default is ``always``, as ``docker pull``.

The query may carry ``env=NAME=VALUE`` entries (repeated): the caller's registry
settings (``PYCOMPOSE_REGISTRY_MIRRORS``, ``PYCOMPOSE_INSECURE_REGISTRIES``,
``DOCKER_CONFIG``, ``HOME``), so a pull through the engine sees the same mirrors
and credentials as the user's shell; a request without any uses the engine's own
environment. (In the query rather than a JSON body: the CLI sends the request before
it has loaded its JSON encoder, see ``pycompose.cli.quick``.)
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import trio

from pycompose.client import REGISTRY_ENV as CLIENT_ENV
from pycompose.engine.daemon import Engine
from pycompose.engine.http import HTTPError, Request, Router, Send, StreamResponse

log = logging.getLogger(__name__)



def _reference(req: Request) -> str:
    ref = req.arg("fromImage")
    if not ref:
        raise HTTPError(400, "fromImage is required (the image to pull)")
    tag = req.arg("tag")
    if tag:
        ref += ("@" if tag.startswith("sha256:") else ":") + tag
    return ref


def _platform(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    parts = text.split("/")
    if len(parts) < 2 or not all(parts):
        raise HTTPError(400, f"platform {text!r}: expected OS/ARCH[/VARIANT]")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        out["variant"] = parts[2]
    return out


def _environ(req: Request) -> dict[str, str]:
    entries = req.query.get("env")
    if not entries:
        return {k: v for k, v in os.environ.items() if k in CLIENT_ENV}
    env = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if not sep or not name:
            raise HTTPError(400, f"env entry {entry!r}: expected NAME=VALUE")
        if name in CLIENT_ENV:
            env[name] = value
    return env


def error_line(exc: BaseException) -> dict[str, Any]:
    message = str(exc)
    return {"error": message, "errorDetail": {"message": message},
            "errorType": type(exc).__name__}


def add_routes(r: Router, engine: Engine) -> None:
    async def create(req: Request) -> StreamResponse:
        from pycompose.runtime.errors import ImageError  # noqa: PLC0415
        from pycompose.runtime.images import ImageStore  # noqa: PLC0415
        from pycompose.runtime.registry import (  # noqa: PLC0415
            ProgressEvent,
            RegistryConfig,
            ensure_image,
            pull_image,
        )

        ref = _reference(req)
        policy = req.arg("policy") or "always"
        platform = _platform(req.arg("platform"))
        environ = _environ(req)
        root = engine.paths.root
        send_ch, recv_ch = trio.open_memory_channel[dict[str, Any]](math.inf)

        def progress(event: ProgressEvent) -> None:
            line: dict[str, Any] = {"status": event.status}
            if event.id:
                line["id"] = event.id
            if event.total is not None:
                line["progressDetail"] = {"current": event.current, "total": event.total}
            send_ch.send_nowait(line)

        async def pull() -> None:
            with send_ch:
                try:
                    config = RegistryConfig.load(root, environ)
                    if policy != "always":
                        image = await ensure_image(ImageStore(root / "images"), ref, policy,
                                                   config=config, work_dir=root / "downloads",
                                                   progress=progress,
                                                   http=engine.registry_http())
                        send_ch.send_nowait({"status": "Pulled", "reference": ref,
                                             "digest": "", "imageId": image.id})
                        return
                    result = await pull_image(ImageStore(root / "images"), ref, config=config,
                                              work_dir=root / "downloads", platform=platform,
                                              progress=progress, http=engine.registry_http())
                    send_ch.send_nowait({"status": "Pulled", "reference": result.reference,
                                         "digest": result.digest, "imageId": result.image.id})
                except (ImageError, ValueError) as exc:
                    send_ch.send_nowait(error_line(exc))
                except Exception as exc:
                    log.exception("pull of %s failed", ref)
                    send_ch.send_nowait(error_line(
                        RuntimeError(f"internal error: {type(exc).__name__}: {exc}")))

        async def produce(send: Send) -> None:
            # The pull belongs to this request: a client that leaves cancels it (the
            # library leaves nothing half-written).
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pull)
                with recv_ch:
                    async for line in recv_ch:
                        await send(line)

        return StreamResponse(produce)

    r.add("POST", "/images/create", create)
