"""Build errors, under the runtime's ``ImageError``.

::

    ImageError                  (runtime.errors)
    └── BuildError              a build failed
        ├── DockerfileError     the Dockerfile is invalid or uses what is not supported;
        │                       names ``file:line``
        ├── BuildStepError      a RUN step exited non-zero (names the line and exit code)
        └── BuildCacheBusyError the build cache is locked by a build (prune gave up waiting)
"""

from __future__ import annotations

from pycompose.runtime.errors import ImageError


class BuildError(ImageError):
    """The build failed."""


class DockerfileError(BuildError):
    """Invalid or unsupported Dockerfile content; the message names the file and line."""


class BuildStepError(BuildError):
    """A ``RUN`` step failed."""


class BuildCacheBusyError(BuildError):
    """A build holds the build cache, so it cannot be pruned now."""
