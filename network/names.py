"""Names of the host objects pycompose creates (DESIGN.md, "Names on the host").

Every link name starts with ``pc`` and fits the kernel's 15 characters:
bridges are ``pcbr`` + 11 hex digits, veths ``pcv`` + 12 hex digits. The hex
part is a stable hash of (instance tag, owner...), so two instances (or two
test runs) never derive the same name, and the engine can recompute a name
from its records instead of storing it.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "BRIDGE_PREFIX",
    "IFNAMSIZ",
    "LINK_PREFIX",
    "VETH_PREFIX",
    "bridge_name",
    "check_link_name",
    "link_alias",
    "netns_name",
    "veth_name",
]

IFNAMSIZ = 15
LINK_PREFIX = "pc"
BRIDGE_PREFIX = "pcbr"
VETH_PREFIX = "pcv"

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _digest(*parts: str, length: int) -> str:
    h = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return h[:length]


def bridge_name(instance: str, project: str, network: str) -> str:
    """The bridge of network ``network`` of ``project`` on instance ``instance``."""
    return BRIDGE_PREFIX + _digest("bridge", instance, project, network, length=11)


def veth_name(instance: str, container: str, network: str) -> str:
    """Host side of the veth pair joining ``container`` to ``network``."""
    return VETH_PREFIX + _digest("veth", instance, container, network, length=12)


def netns_name(instance: str, container: str) -> str:
    """File name (under ``<root>/netns``) of a container's network namespace."""
    return "pc" + _digest("netns", instance, container, length=16)


def check_link_name(name: str) -> str:
    """Return ``name`` if the kernel accepts it as an interface name, else raise ValueError."""
    if not _IFNAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"invalid interface name {name!r} (1-15 of [A-Za-z0-9_.-])")
    return name


def link_alias(instance: str) -> str:
    """The ``ifalias`` stamped on every link of an instance, so gc knows what is its own."""
    return f"pycompose/{instance}"
