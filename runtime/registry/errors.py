"""Errors of the registry client (pull, push, auth), under the runtime's ``ImageError``.

::

    ImageError                       (runtime.errors)
    └── RegistryError                a registry could not be reached or refused a request
        ├── RegistryUnavailableError connection refused/reset/timed out, TLS failure, 5xx
        ├── RegistryAuthError        401/403 after authenticating, or a bad token answer
        ├── ManifestNotFoundError    the tag or digest does not exist (also an
        │                            ``ImageNotFoundError``)
        └── BlobVerificationError    content does not match its digest or size

Every message names the registry and the reference or blob involved.
"""

from __future__ import annotations

from pycompose.runtime.errors import ImageError, ImageNotFoundError


class RegistryError(ImageError):
    """A registry request failed."""


class RegistryUnavailableError(RegistryError):
    """The registry cannot be reached (network, TLS, timeout) or answered 5xx."""


class RegistryAuthError(RegistryError):
    """Authentication failed or access was denied."""


class ManifestNotFoundError(RegistryError, ImageNotFoundError):
    """The registry has no manifest for the tag or digest."""


class BlobVerificationError(RegistryError):
    """A downloaded blob or manifest does not match its digest or size."""
