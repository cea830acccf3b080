"""Veth pairs joining a container's namespace to network bridges.

One self-contained step per container (:func:`attach`): the host socket
creates each pair with the peer directly in the namespace under its final name
(``eth0``, ``eth1``, … in the caller's order: no rename, no name clash on the
host) and the host side enslaved and up in the same request; then the
netlink socket for the container side is opened *inside* its namespace by a
short per-thread ``setns`` (see :mod:`network._netlink`) for the address,
``up`` and the default route. 6 netlink requests per one-network container.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING

from . import netns as _netns
from ._netlink import in_netns, map_netlink_errors, run_netlink
from .errors import LinkError, LinkNotFoundError
from .names import check_link_name

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["Endpoint", "EndpointSpec", "attach", "create_and_attach", "detach"]


@dataclass(frozen=True)
class EndpointSpec:
    """One network of a container: its bridge, the host veth name and the address."""

    bridge: str
    host_ifname: str  # names.veth_name(instance, container, network)
    address: IPv4Address
    prefixlen: int
    gateway: IPv4Address
    internal: bool = False
    mac: str | None = None
    mtu: int | None = None
    bridge_index: int | None = None  # Bridge.index if known: saves a lookup


@dataclass(frozen=True)
class Endpoint:
    """Handle of an attached endpoint."""

    bridge: str
    host_ifname: str
    ifname: str  # inside the container: eth0, eth1, ...
    address: IPv4Address
    prefixlen: int
    mac: str
    gateway: IPv4Address | None  # the default route, on the endpoint that carries it


def _delete_links(ipr: object, names: Sequence[str]) -> None:
    from pyroute2 import NetlinkError

    for name in names:
        try:
            ipr.link("del", ifname=name)  # type: ignore[attr-defined]
        except NetlinkError as e:
            if e.code not in (errno.ENODEV, errno.ENOENT):
                raise


def _attach(
    netns: Path, endpoints: Sequence[EndpointSpec], first_index: int, default_route: bool
) -> list[Endpoint]:
    from pyroute2 import IPRoute

    for ep in endpoints:
        check_link_name(ep.host_ifname)
    route_ep = None
    if default_route:
        route_ep = next((ep for ep in endpoints if not ep.internal), None)
    created: list[str] = []
    result: list[Endpoint] = []
    ifnames = [f"eth{first_index + i}" for i in range(len(endpoints))]
    with map_netlink_errors(f"attach {netns}"), IPRoute() as ipr:
        try:
            nsfd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                for ep, ifname in zip(endpoints, ifnames, strict=True):
                    _add_veth(ipr, netns, nsfd, ep, ifname)
                    created.append(ep.host_ifname)
            finally:
                os.close(nsfd)
            # inside the namespace only for as long as it takes to open the socket and
            # read the new links' indexes and MACs (ioctls: a netlink "get" costs 0.3 ms)
            with in_netns(str(netns)):
                nsipr = IPRoute()
                try:
                    found = [(socket.if_nametoindex(n), _hwaddr(n)) for n in ifnames]
                except BaseException:
                    nsipr.close()
                    raise
            with nsipr:
                for ep, ifname, (idx, mac) in zip(endpoints, ifnames, found, strict=True):
                    nsipr.addr("add", index=idx, address=str(ep.address),
                               prefixlen=ep.prefixlen)
                    nsipr.link("set", index=idx, state="up")
                    is_route = ep is route_ep
                    if is_route:
                        nsipr.route("add", dst="default", gateway=str(ep.gateway))
                    result.append(Endpoint(
                        bridge=ep.bridge, host_ifname=ep.host_ifname, ifname=ifname,
                        address=ep.address, prefixlen=ep.prefixlen, mac=mac,
                        gateway=ep.gateway if is_route else None))
        except BaseException:
            _delete_links(ipr, created)
            raise
    return result


SIOCGIFHWADDR = 0x8927


def _hwaddr(ifname: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()))
    return ":".join(f"{b:02x}" for b in req[18:24])


def _add_veth(ipr: IPRoute, netns: Path, nsfd: int, ep: EndpointSpec, ifname: str) -> None:
    """The pair, host side enslaved to the bridge and up, peer in the namespace as ``ifname``."""
    from pyroute2 import NetlinkError

    br_index = ep.bridge_index
    if br_index is None:
        try:
            br_index = ipr.link("get", ifname=ep.bridge)[0]["index"]
        except NetlinkError as e:
            if e.code in (errno.ENODEV, errno.ENOENT):
                raise LinkNotFoundError(
                    f"attach {netns}: bridge {ep.bridge} does not exist") from None
            raise
    peer: dict[str, object] = {"ifname": ifname, "net_ns_fd": nsfd}
    kw: dict[str, object] = {"master": br_index, "state": "up"}
    if ep.mtu:
        kw["mtu"] = peer["mtu"] = ep.mtu
    if ep.mac:
        peer["address"] = ep.mac
    try:
        ipr.link("add", ifname=ep.host_ifname, kind="veth", peer=peer, **kw)
    except NetlinkError as e:
        if e.code == errno.ENODEV and ep.bridge_index is not None:
            raise LinkNotFoundError(f"attach {netns}: bridge {ep.bridge} "
                                    f"(index {br_index}) does not exist") from None
        if e.code != errno.EEXIST:
            raise
        # a leftover of an interrupted attach: replace it
        _delete_links(ipr, [ep.host_ifname])
        ipr.link("add", ifname=ep.host_ifname, kind="veth", peer=peer, **kw)


def _detach(host_ifnames: Sequence[str]) -> None:
    from pyroute2 import IPRoute

    with map_netlink_errors(f"detach {', '.join(host_ifnames)}"), IPRoute() as ipr:
        _delete_links(ipr, host_ifnames)


async def attach(
    netns: Path,
    endpoints: Sequence[EndpointSpec],
    *,
    first_index: int = 0,
    default_route: bool = True,
) -> list[Endpoint]:
    """Join the namespace at ``netns`` to each endpoint's bridge, in order.

    Container sides are named ``eth<first_index>``, ``eth<first_index+1>``, …;
    static MACs and addresses are set; the default route goes via the
    gateway of the first non-internal endpoint (if ``default_route``). On
    failure every veth this call made is removed again.
    """
    if not endpoints:
        return []
    if first_index < 0:
        raise LinkError(f"attach {netns}: negative interface index {first_index}")
    return await run_netlink(lambda: _attach(Path(netns), endpoints, first_index, default_route))


async def create_and_attach(
    root: Path,
    name: str,
    endpoints: Sequence[EndpointSpec],
    *,
    default_route: bool = True,
) -> tuple[Path, list[Endpoint]]:
    """:func:`netns.create_netns` then :func:`attach`, in one worker-thread step.

    The container hot path: one hand-off to a worker thread instead of two,
    which matters on a loaded machine (every hand-off waits for a CPU). If the
    attach fails, the namespace this call made is removed again.
    """
    path = _netns.netns_dir(root) / _netns.check_name(name)

    def step() -> list[Endpoint]:
        existed = _netns.is_netns(path)
        _netns._create(path)
        try:
            return _attach(path, endpoints, 0, default_route) if endpoints else []
        except BaseException:
            if not existed:
                _netns._remove(path)
            raise

    return path, await run_netlink(step)


async def detach(host_ifnames: Sequence[str]) -> None:
    """Remove veth pairs by their host names (idempotent; the peers go with them)."""
    if host_ifnames:
        await run_netlink(lambda: _detach(list(host_ifnames)))
