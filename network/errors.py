"""Errors raised by the network library.

::

    NetworkError                  anything the network layer reports
    ├── LinkError                 netlink: a link, address, route or netns operation failed
    │   ├── LinkNotFoundError     ENODEV / missing netns
    │   └── LinkExistsError       EEXIST
    ├── IPAMError                 no free subnet, address out of range, overlap with the host
    │   ├── PoolExhaustedError    no subnet of the pool is free
    │   └── SubnetOverlapError    a subnet overlaps a host route/address or another network
    ├── PortError                 a published port is busy or asked for twice
    │   ├── PortBusyError         a program on the host holds the port (pid, command)
    │   └── PortConflictError     asked for twice in the project, or held by another stack
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


class PoolExhaustedError(IPAMError):
    """Every subnet of the address pool is taken or overlaps the host."""


class SubnetOverlapError(IPAMError):
    """A subnet overlaps a route or address on the host, or another network."""


class PortBusyError(PortError):
    """A program on the host already holds the port.

    ``pid`` and ``command`` name the holder when /proc shows it (``None`` otherwise).
    """

    def __init__(
        self, message: str, *, port: int, service: str, pid: int | None, command: str | None
    ) -> None:
        super().__init__(message)
        self.port = port
        self.service = service
        self.pid = pid
        self.command = command


class PortConflictError(PortError):
    """The port is asked for twice in the project, or held by another stack."""


class FirewallError(NetworkError):
    """An nftables change was rejected."""


class DNSError(NetworkError):
    """The embedded DNS server could not start or answer."""
