"""The Linux bridge of one network: create (idempotent), address, up; delete.

The gateway address sits on the bridge; the bridge also gets
``route_localnet=1`` so that connections from the host to ``127.0.0.1:<port>``
can be DNAT-ed onto it (see :mod:`network.firewall`).
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ._netlink import map_netlink_errors, run_netlink
from .errors import LinkError, LinkExistsError, LinkNotFoundError, NetworkError
from .names import check_link_name

__all__ = [
    "Bridge",
    "BridgeOptions",
    "BridgeSpec",
    "bridge_options",
    "create_bridge",
    "delete_bridge",
    "find_bridge",
    "require_bridge",
]

OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"


@dataclass(frozen=True)
class BridgeOptions:
    """What a network's ``driver``/``driver_opts``/``enable_ipv6`` ask of its bridge."""

    name: str | None = None
    mtu: int | None = None


def bridge_options(
    network: str,
    driver: str | None = None,
    driver_opts: Mapping[str, str] | None = None,
    enable_ipv6: bool = False,
) -> BridgeOptions:
    """Check a network's driver settings; return the bridge name/MTU they set.

    Raises :class:`NetworkError` for another driver, unknown or bad options
    and ``enable_ipv6`` (not supported yet).
    """
    if driver not in (None, "", "bridge"):
        raise NetworkError(f"network {network}: driver {driver!r} is not supported "
                           "(only 'bridge')")
    if enable_ipv6:
        raise NetworkError(f"network {network}: enable_ipv6 is not supported yet")
    name = mtu = None
    for key, value in sorted((driver_opts or {}).items()):
        if key == OPT_BRIDGE_NAME:
            try:
                name = check_link_name(str(value))
            except ValueError as e:
                raise NetworkError(f"network {network}: driver_opts.{key}: {e}") from None
        elif key == OPT_MTU:
            try:
                mtu = int(value)
            except ValueError:
                mtu = -1
            if not 68 <= mtu <= 65535:
                raise NetworkError(f"network {network}: driver_opts.{key}: invalid MTU "
                                   f"{value!r} (68-65535)")
        else:
            raise NetworkError(f"network {network}: driver_opts.{key} is not supported "
                               f"(known: {OPT_BRIDGE_NAME}, {OPT_MTU})")
    return BridgeOptions(name=name, mtu=mtu)


@dataclass(frozen=True)
class BridgeSpec:
    """What the bridge of a network looks like (name from :func:`names.bridge_name`
    or ``driver_opts``)."""

    name: str
    subnet: IPv4Network
    gateway: IPv4Address
    mtu: int | None = None
    alias: str = ""  # names.link_alias(instance): marks the link as this instance's


@dataclass(frozen=True)
class Bridge:
    """Handle of an existing bridge."""

    name: str
    index: int
    subnet: IPv4Network | None
    gateway: IPv4Address | None
    mtu: int


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise LinkError(f"cannot write {value!r} to {path}: {e.strerror}") from None


def _mac_for(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))  # locally administered, unicast


def _create(spec: BridgeSpec) -> Bridge:
    from pyroute2 import IPRoute, NetlinkError

    name = check_link_name(spec.name)
    if spec.gateway not in spec.subnet:
        raise LinkError(f"bridge {name}: gateway {spec.gateway} is not in {spec.subnet}")
    with map_netlink_errors(f"create bridge {name}"), IPRoute() as ipr:
        # a fixed MAC: otherwise the bridge takes its lowest port's MAC, which changes
        # when that container goes and leaves every neighbour's ARP entry stale
        kw: dict[str, object] = {"ifname": name, "kind": "bridge", "address": _mac_for(name)}
        if spec.mtu:
            kw["mtu"] = spec.mtu
        try:
            ipr.link("add", **kw)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        links = ipr.get_links(ifname=name)
        if not links:
            raise LinkNotFoundError(f"bridge {name} vanished while being created")
        link = links[0]
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        if kind != "bridge":
            raise LinkExistsError(f"link {name} exists and is not a bridge ({kind})")
        index = link["index"]
        try:
            ipr.addr("add", index=index, address=str(spec.gateway),
                     prefixlen=spec.subnet.prefixlen,
                     broadcast=str(spec.subnet.broadcast_address))
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise
        if spec.alias:
            ipr.link("set", index=index, state="up", ifalias=spec.alias)
        else:
            ipr.link("set", index=index, state="up")
        mtu = link.get_attr("IFLA_MTU")
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    return Bridge(name=name, index=index, subnet=spec.subnet, gateway=spec.gateway, mtu=mtu)


def _find(name: str) -> Bridge | None:
    from pyroute2 import IPRoute

    with map_netlink_errors(f"look up bridge {name}"), IPRoute() as ipr:
        links = ipr.get_links(ifname=name)
        if not links:
            return None
        link = links[0]
        subnet = gateway = None
        for a in ipr.get_addr(family=2, index=link["index"]):
            gateway = IPv4Address(a.get_attr("IFA_ADDRESS"))
            subnet = IPv4Network(f"{gateway}/{a['prefixlen']}", strict=False)
            break
        return Bridge(name=name, index=link["index"], subnet=subnet, gateway=gateway,
                      mtu=link.get_attr("IFLA_MTU"))


def _delete(name: str) -> None:
    from pyroute2 import IPRoute, NetlinkError

    with map_netlink_errors(f"delete bridge {name}"), IPRoute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except NetlinkError as e:
            if e.code not in (errno.ENODEV, errno.ENOENT):
                raise


async def create_bridge(spec: BridgeSpec) -> Bridge:
    """Create the bridge (or adopt the existing one of that name), address it, bring it up."""
    return await run_netlink(lambda: _create(spec))


async def find_bridge(name: str) -> Bridge | None:
    """The bridge called ``name``, or None (``external: true`` networks check this)."""
    return await run_netlink(lambda: _find(name))


async def require_bridge(name: str, network: str) -> Bridge:
    """The bridge of an ``external: true`` network; a clear error if it is not there."""
    found = await find_bridge(name)
    if found is None:
        raise LinkNotFoundError(f"external network {network}: bridge {name} does not exist "
                                "(create it first, or drop external: true)")
    return found


async def delete_bridge(name: str) -> None:
    """Delete the bridge; a missing one is fine. Its veths' host sides go with their pairs."""
    await run_netlink(lambda: _delete(name))
