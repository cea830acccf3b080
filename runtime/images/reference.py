"""Image references (``[domain/]path[:tag][@digest]``), normalised as Docker does.

``busybox`` is stored as ``docker.io/library/busybox:latest`` and shown as
``busybox:latest``; ``localhost:5000/app`` keeps its domain. The grammar is the
one of the distribution ``reference`` package: lowercase path components
separated by ``.``, ``_``, ``__`` or dashes; a tag of at most 128 word
characters, dots and dashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pycompose.runtime.errors import ImageError

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised reference. ``tag`` is ``latest`` unless a digest alone was given."""

    domain: str
    path: str
    tag: str | None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    @property
    def familiar_repository(self) -> str:
        """``busybox``, ``user/app``, ``localhost:5000/app``: the short form Docker shows."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
            path = path[len(OFFICIAL_PREFIX) :]
        return path

    @property
    def familiar(self) -> str:
        """``busybox:latest``: the short form with tag (and digest, if any)."""
        out = self.familiar_repository
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; raise ``ImageError`` naming it when it is not a reference."""
    if not text or len(text) > 255 + 128 + 72:
        raise ImageError(f"invalid reference format: {text!r}")
    rest, digest = text, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST_RE.match(digest):
            raise ImageError(f"invalid reference format: {text!r}: bad digest {digest!r}")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ImageError(f"invalid reference format: {text!r}: bad tag {tag!r}")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, remainder
        if not _DOMAIN_RE.match(domain):
            raise ImageError(f"invalid reference format: {text!r}: bad registry {domain!r}")
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if not _PATH_RE.match(path):
        if path.lower() != path:
            raise ImageError(
                f"invalid reference format: {text!r}: repository name must be lowercase"
            )
        raise ImageError(f"invalid reference format: {text!r}")
    if _HEX64_RE.match(rest):
        raise ImageError(
            f"invalid repository name {text!r}: cannot use a 64-character hexadecimal string"
        )
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize_name(text: str) -> str:
    """The stored form of a tagged name: ``busybox`` → ``docker.io/library/busybox:latest``.

    Digest-only references cannot name a local image (there is no registry
    manifest to match), so they are refused here.
    """
    ref = parse_reference(text)
    if ref.digest is not None:
        raise ImageError(f"{text!r}: a name with a digest cannot be used as a local tag")
    return str(ref)


def familiar_name(stored: str) -> str:
    """Short form of a stored name: ``docker.io/library/busybox:latest`` → ``busybox:latest``."""
    return parse_reference(stored).familiar
