"""sha256 digests: validation, and readers that hash what streams through them.

Only ``sha256`` is accepted: it is what Docker and every OCI tool write, and a
store keyed by one algorithm cannot hold the same content twice.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from pycompose.runtime.errors import ImageDigestError, ImageError

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def is_digest(value: object) -> bool:
    """True for ``sha256:`` followed by 64 lowercase hex digits."""
    return isinstance(value, str) and bool(_DIGEST_RE.match(value))


def is_hex_id(value: str) -> bool:
    """True for a bare 64-hex-digit id."""
    return bool(_HEX_RE.match(value))


def check_digest(value: object, what: str) -> str:
    """Return ``value`` if it is a sha256 digest, else raise ``ImageError`` naming ``what``."""
    if not is_digest(value):
        raise ImageError(f"{what}: invalid or unsupported digest {value!r} (want sha256:<64 hex>)")
    assert isinstance(value, str)
    return value


def hex_of(digest: str) -> str:
    """``sha256:abc…`` → ``abc…``."""
    return digest.partition(":")[2]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingReader:
    """A read-only stream that hashes and counts every byte read through it.

    ``verify`` then compares with the digest (and size) the manifest promised,
    so content is checked while it streams instead of in a second pass.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash.update(data)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and hash) what is left, e.g. the zero padding after a tar's end marker."""
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def verify(self, expected: str, what: str, size: int | None = None) -> None:
        """Raise ``ImageDigestError`` if the bytes read so far do not match ``expected``."""
        if size is not None and self.count != size:
            raise ImageDigestError(
                f"{what}: size mismatch: expected {size} bytes, read {self.count} "
                "(truncated or corrupt)", expected=expected,
            )
        if self.digest != expected:
            raise ImageDigestError(
                f"{what}: digest mismatch: expected {expected}, got {self.digest} "
                "(corrupt or truncated)", expected=expected,
            )
