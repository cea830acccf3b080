"""Progress events of pulls and pushes. The library emits them; the CLI renders them.

A pull emits, per layer (``id`` is the 12-hex short digest, as Docker shows it):
``Waiting`` → ``Downloading`` (``current``/``total`` bytes, repeated) →
``Download complete`` → ``Extracting`` → ``Pull complete``; or ``Already exists``.
Image-level events have ``id == ""``: ``Resolving``, ``Digest: sha256:…``,
``Status: Downloaded newer image for …`` / ``Status: Image is up to date for …``.
A push emits ``Preparing`` → ``Pushing`` (bytes) → ``Pushed`` / ``Layer already
exists`` / ``Mounted from …`` per layer, then ``<tag>: digest: … size: …``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    id: str
    status: str
    current: int = 0
    total: int | None = None


Progress = Callable[[ProgressEvent], None]


def ignore(_event: ProgressEvent) -> None:
    """The default progress sink."""
