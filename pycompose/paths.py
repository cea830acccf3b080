"""Where pycompose keeps its state on the host, resolved once from the environment.

``PYCOMPOSE_ROOT`` (default ``/var/lib/pycompose``) holds everything: the
SQLite state, blobs, layers, container upper dirs, volumes, logs, netns
handles. The engine socket is ``/run/pycompose/engine.sock`` for the default
root and ``<root>/engine.sock`` for any other root, so a test engine never
answers for the developer's one.

``PYCOMPOSE_INSTANCE`` (default empty) tags host-wide names that cannot live
under the root (the nftables table ``pycompose_<instance>``, the cgroup parent
``pycompose_<instance>``, and the hash behind link names), so that a test run
and a developer's engine never touch each other's objects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

DEFAULT_ROOT = Path("/var/lib/pycompose")
DEFAULT_SOCKET = Path("/run/pycompose/engine.sock")
_INSTANCE_RE = re.compile(r"^[a-z0-9]{0,8}$")


class HostPaths:
    """The state root, the engine socket, and the instance tag for host-wide names.
    (A plain class: every command resolves these at start, where importing
    ``dataclasses`` or ``typing`` for ``NamedTuple`` would cost more than the rest
    of this module.)"""

    __slots__ = ("root", "socket", "instance")

    def __init__(self, root: Path, socket: Path, instance: str) -> None:
        self.root = root
        self.socket = socket
        self.instance = instance

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HostPaths):
            return NotImplemented
        return (self.root, self.socket, self.instance) == (other.root, other.socket,
                                                            other.instance)

    def __hash__(self) -> int:
        return hash((self.root, self.socket, self.instance))

    def __repr__(self) -> str:
        return f"HostPaths(root={self.root!r}, socket={self.socket!r}, instance={self.instance!r})"

    @property
    def host_tag(self) -> str:
        """``pycompose`` or ``pycompose_<instance>``: nftables table and cgroup parent name."""
        return f"pycompose_{self.instance}" if self.instance else "pycompose"


def host_paths(environ: Mapping[str, str] | None = None) -> HostPaths:
    """Resolve the paths from ``environ`` (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    root = Path(env.get("PYCOMPOSE_ROOT") or DEFAULT_ROOT).absolute()
    socket = DEFAULT_SOCKET if root == DEFAULT_ROOT else root / "engine.sock"
    instance = env.get("PYCOMPOSE_INSTANCE", "")
    if not _INSTANCE_RE.match(instance):
        from pycompose.errors import UsageError

        raise UsageError(
            f"PYCOMPOSE_INSTANCE={instance!r}: use at most 8 lowercase letters or digits"
        )
    return HostPaths(root=root, socket=socket, instance=instance)
