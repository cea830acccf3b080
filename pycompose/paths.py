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

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

DEFAULT_ROOT = "/var/lib/pycompose"
DEFAULT_SOCKET = "/run/pycompose/engine.sock"
_INSTANCE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


class HostPaths:
    """The state root, the engine socket, and the instance tag for host-wide names.

    Kept as strings, with ``root`` and ``socket`` as ``Path`` views made on first use:
    a command that only talks to the engine needs the socket's name alone, and
    ``pathlib`` (with the ``urllib.parse`` it imports) costs its start ~3 ms. (A plain
    class for the same reason: ``dataclasses`` or ``typing.NamedTuple`` cost more than
    the rest of this module.)"""

    __slots__ = ("root_path", "socket_path", "instance", "_root", "_socket")

    def __init__(self, root: str | os.PathLike[str], socket: str | os.PathLike[str],
                 instance: str) -> None:
        self.root_path: str = os.fspath(root)
        self.socket_path: str = os.fspath(socket)
        self.instance = instance
        self._root: Path | None = None
        self._socket: Path | None = None

    @property
    def root(self) -> Path:
        if self._root is None:
            from pathlib import Path

            self._root = Path(self.root_path)
        return self._root

    @property
    def socket(self) -> Path:
        if self._socket is None:
            from pathlib import Path

            self._socket = Path(self.socket_path)
        return self._socket

    def _key(self) -> tuple[str, str, str]:
        return self.root_path, self.socket_path, self.instance

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HostPaths):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"HostPaths(root={self.root_path!r}, socket={self.socket_path!r}, "
                f"instance={self.instance!r})")

    @property
    def host_tag(self) -> str:
        """``pycompose`` or ``pycompose_<instance>``: nftables table and cgroup parent name."""
        return f"pycompose_{self.instance}" if self.instance else "pycompose"


def host_paths(environ: Mapping[str, str] | None = None) -> HostPaths:
    """Resolve the paths from ``environ`` (``os.environ`` by default).

    The root is made absolute and normalised (``os.path.abspath``), so that the engine
    and every client derive the same socket name from the same setting.
    """
    env = os.environ if environ is None else environ
    root = os.path.abspath(env.get("PYCOMPOSE_ROOT") or DEFAULT_ROOT)
    socket = DEFAULT_SOCKET if root == DEFAULT_ROOT else os.path.join(root, "engine.sock")
    instance = env.get("PYCOMPOSE_INSTANCE", "")
    if len(instance) > 8 or not _INSTANCE_CHARS.issuperset(instance):
        from pycompose.errors import UsageError

        raise UsageError(
            f"PYCOMPOSE_INSTANCE={instance!r}: use at most 8 lowercase letters or digits"
        )
    return HostPaths(root=root, socket=socket, instance=instance)
