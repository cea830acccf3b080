"""Errors raised by the container runtime library.

::

    ContainerRuntimeError         anything the runtime reports
    ├── ImageError                image store: missing, corrupt or hostile image or layer
    │   ├── ImageNotFoundError    no image has that name, id or id prefix
    │   ├── ImageConflictError    refused: image in use, ambiguous id, name taken
    │   └── ImageDigestError      content does not match its digest or size
    ├── ContainerError            container lifecycle: create, start, exec, stop, remove
    │   ├── SpawnError            the spawner or the container's init failed before exec
    │   ├── ContainerNotFoundError  no container with that id
    │   ├── ContainerStateError   the verb does not fit the state (start a running one, …)
    │   └── SupervisorError       the supervisor process cannot be started or reached
    ├── CgroupError               a cgroup could not be created, written or read
    ├── SecurityError             bad capability, seccomp profile or security_opt, or
    │                             one that could not be applied
    └── MountError                a mount, unmount or pivot_root failed

OS-level failures are wrapped once, where they happen, with the path and the
value involved (``CgroupError: write "512M" to .../memory.max: Invalid argument``);
a raw ``OSError`` never leaves the library.
"""

from __future__ import annotations


class ContainerRuntimeError(Exception):
    """Root of every error the runtime raises on purpose."""


class ImageError(ContainerRuntimeError):
    """An image or layer is missing, corrupt, or unsafe to unpack."""


class ImageNotFoundError(ImageError):
    """No image matches the name, id or id prefix asked for."""


class ImageConflictError(ImageError):
    """The operation is refused: the image is in use, the id prefix is ambiguous, ..."""


class ImageDigestError(ImageError):
    """Content does not match the digest (or size) it was announced with: corrupt,
    truncated or altered. ``expected`` is that digest."""

    def __init__(self, message: str, *, expected: str = "") -> None:
        super().__init__(message)
        self.expected = expected


class ContainerError(ContainerRuntimeError):
    """A container could not be created, started, entered, stopped or removed."""


class SpawnError(ContainerError):
    """The spawner or the container's init failed before the user's program ran.

    ``step`` names the setup stage (``mount``, ``user``, ``exec``, …) and
    ``path`` the file involved, when there is one.
    """

    def __init__(self, message: str, *, step: str = "", path: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.path = path


class CgroupError(ContainerRuntimeError):
    """A cgroup operation failed; the message names the path and the value."""


class SecurityError(ContainerRuntimeError):
    """A capability name, seccomp profile or ``security_opt`` is invalid or failed to apply."""


class MountError(ContainerRuntimeError):
    """A mount operation failed; the message names source, target and options."""


class ContainerNotFoundError(ContainerError):
    """No container with that id exists in this state root."""


class ContainerStateError(ContainerError):
    """The container's state forbids the verb (start while running, remove while running, …)."""


class SupervisorError(ContainerError):
    """The supervisor process could not be started, reached, or broke the protocol."""
