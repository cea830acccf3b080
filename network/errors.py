"""Errors raised by the network library.

::

    NetworkError                  anything the network layer reports
    ├── LinkError                 netlink: a link, address, route or netns operation failed
    │   ├── LinkNotFoundError     ENODEV / missing netns
    │   └── LinkExistsError       EEXIST
    ├── IPAMError                 no free subnet, address out of range, overlap with the host
    ├── PortError                 a published port is busy or asked for twice
    ├── FirewallError             nftables rejected a change
    └── DNSError                  the embedded DNS server could not start

Foreign exceptions (``pyroute2.NetlinkError``, ``OSError`` from nft) are mapped
once at the boundary; they never reach callers.
"""

from __future__ import annotations


class NetworkError(Exception):
    """Root of every error the network layer raises on purpose."""


class LinkError(NetworkError):
    """A netlink operation on a link, address, route or namespace failed."""


class LinkNotFoundError(LinkError):
    """The link or network namespace does not exist."""


class LinkExistsError(LinkError):
    """The link or address already exists."""


class IPAMError(NetworkError):
    """No subnet or address could be allocated, or a requested one conflicts."""


class PortError(NetworkError):
    """A host port is already in use or requested twice."""


class FirewallError(NetworkError):
    """An nftables change was rejected."""


class DNSError(NetworkError):
    """The embedded DNS server could not start or answer."""
