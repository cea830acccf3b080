"""Address management: subnets from a pool, addresses within a subnet.

Everything here is a pure function over an explicit, immutable
:class:`IPAMState`; the engine persists the state (``to_dict``/``from_dict``)
and passes it back in. The only function that looks at the host is
:func:`host_networks` (routes and addresses, read with pyroute2); its result is
passed to :func:`allocate_subnet` / :func:`check_overlap` as plain data.

Default pool, as Docker's: ``172.17.0.0/16`` … ``172.31.0.0/16`` (one /16
each), then ``192.168.0.0/16`` split into /20s.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from .errors import IPAMError, PoolExhaustedError, SubnetOverlapError

__all__ = [
    "DEFAULT_POOLS",
    "AddressPool",
    "HostNet",
    "IPAMState",
    "Subnet",
    "SubnetRequest",
    "allocate_address",
    "allocate_subnet",
    "check_overlap",
    "host_networks",
    "release_address",
    "release_subnet",
]


@dataclass(frozen=True)
class AddressPool:
    """A range of the pool: ``base`` split into subnets of prefix length ``size``."""

    base: IPv4Network
    size: int

    def __post_init__(self) -> None:
        if not self.base.prefixlen <= self.size <= 30:
            raise IPAMError(f"pool {self.base}: size /{self.size} must be between "
                            f"/{self.base.prefixlen} and /30")

    def subnets(self) -> Iterator[IPv4Network]:
        return self.base.subnets(new_prefix=self.size)


DEFAULT_POOLS: tuple[AddressPool, ...] = (
    *(AddressPool(IPv4Network(f"172.{n}.0.0/16"), 16) for n in range(17, 32)),
    AddressPool(IPv4Network("192.168.0.0/16"), 20),
)


@dataclass(frozen=True)
class SubnetRequest:
    """Explicit ``ipam.config`` of a network (all optional)."""

    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None


@dataclass(frozen=True)
class Subnet:
    """The subnet of one network and the addresses handed out in it (address -> owner)."""

    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network | None = None
    addresses: Mapping[IPv4Address, str] = field(default_factory=dict)

    def owner_address(self, owner: str) -> IPv4Address | None:
        for addr, who in self.addresses.items():
            if who == owner:
                return addr
        return None


@dataclass(frozen=True)
class IPAMState:
    """All networks of this instance (network key -> :class:`Subnet`)."""

    networks: Mapping[str, Subnet] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, object]]:
        return {
            key: {
                "subnet": str(s.subnet),
                "gateway": str(s.gateway),
                "ip_range": str(s.ip_range) if s.ip_range else None,
                "addresses": {str(a): o for a, o in sorted(s.addresses.items())},
            }
            for key, s in sorted(self.networks.items())
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, object]]) -> IPAMState:
        nets: dict[str, Subnet] = {}
        for key, d in data.items():
            addrs = d.get("addresses") or {}
            assert isinstance(addrs, Mapping)
            ip_range = d.get("ip_range")
            nets[key] = Subnet(
                subnet=IPv4Network(str(d["subnet"])),
                gateway=IPv4Address(str(d["gateway"])),
                ip_range=IPv4Network(str(ip_range)) if ip_range else None,
                addresses={IPv4Address(str(a)): str(o) for a, o in addrs.items()},
            )
        return cls(networks=nets)


@dataclass(frozen=True)
class HostNet:
    """A route or address prefix found on the host, and the interface it belongs to."""

    network: IPv4Network
    ifname: str
    kind: str  # "route" or "address"

    def __str__(self) -> str:
        return f"{self.kind} {self.network} on {self.ifname}"


def _v4_network(value: str, what: str, key: str) -> IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise IPAMError(f"network {key}: invalid {what} {value!r}: {e}") from None
    if net.version != 4:
        raise IPAMError(f"network {key}: IPv6 {what} {value!r} is not supported yet")
    assert isinstance(net, IPv4Network)
    return net


def _v4_address(value: str, what: str, key: str) -> IPv4Address:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise IPAMError(f"network {key}: invalid {what} {value!r}") from None
    if addr.version != 4:
        raise IPAMError(f"network {key}: IPv6 {what} {value!r} is not supported yet")
    assert isinstance(addr, IPv4Address)
    return addr


def _usable(subnet: IPv4Network, addr: IPv4Address) -> bool:
    return addr in subnet and addr not in (subnet.network_address, subnet.broadcast_address)


def _overlapping(
    net: IPv4Network, key: str, state: IPAMState, avoid: Iterable[HostNet | IPv4Network]
) -> str | None:
    for other_key, other in sorted(state.networks.items()):
        if other_key != key and net.overlaps(other.subnet):
            return f"network {other_key} ({other.subnet})"
    for a in avoid:
        other_net = a.network if isinstance(a, HostNet) else a
        if net.overlaps(other_net):
            return str(a) if isinstance(a, HostNet) else f"network {other_net}"
    return None


def allocate_subnet(
    state: IPAMState,
    key: str,
    request: SubnetRequest | None = None,
    *,
    pools: Iterable[AddressPool] = DEFAULT_POOLS,
    avoid: Iterable[HostNet | IPv4Network] = (),
) -> tuple[IPAMState, Subnet]:
    """Give network ``key`` a subnet: the requested one, or the first free one of ``pools``.

    ``avoid`` holds what must not be overlapped besides the networks already in
    ``state``: the host's routes and addresses (:func:`host_networks`) and other
    pycompose networks the caller knows of. Idempotent: a key that already
    has a subnet gets it back unchanged.
    """
    if key in state.networks:
        return state, state.networks[key]
    avoid = list(avoid)
    req = request or SubnetRequest()
    if req.subnet is None and (req.gateway or req.ip_range):
        raise IPAMError(f"network {key}: gateway/ip_range need an explicit subnet")
    if req.subnet is not None:
        net = _v4_network(req.subnet, "subnet", key)
        if net.prefixlen > 30:
            raise IPAMError(f"network {key}: subnet {net} is too small (at most /30)")
        clash = _overlapping(net, key, state, avoid)
        if clash:
            raise SubnetOverlapError(f"network {key}: subnet {net} overlaps {clash}")
        ip_range = None
        if req.ip_range is not None:
            ip_range = _v4_network(req.ip_range, "ip_range", key)
            if not ip_range.subnet_of(net):
                raise IPAMError(f"network {key}: ip_range {ip_range} is not inside subnet {net}")
        if req.gateway is not None:
            gateway = _v4_address(req.gateway, "gateway", key)
            if not _usable(net, gateway):
                raise IPAMError(f"network {key}: gateway {gateway} is not a host address "
                                f"of subnet {net}")
        else:
            gateway = net.network_address + 1
        sub = Subnet(subnet=net, gateway=gateway, ip_range=ip_range)
    else:
        for pool in pools:
            for net in pool.subnets():
                if _overlapping(net, key, state, avoid) is None:
                    break
            else:
                continue
            break
        else:
            raise PoolExhaustedError(
                f"network {key}: no free subnet left in the address pool "
                f"({', '.join(str(p.base) for p in pools)}); free one or give ipam.config.subnet"
            )
        sub = Subnet(subnet=net, gateway=net.network_address + 1)
    nets = dict(state.networks)
    nets[key] = sub
    return IPAMState(networks=nets), sub


def release_subnet(state: IPAMState, key: str) -> IPAMState:
    """Forget network ``key`` (no error if it is unknown)."""
    if key not in state.networks:
        return state
    nets = dict(state.networks)
    del nets[key]
    return IPAMState(networks=nets)


def allocate_address(
    state: IPAMState, key: str, owner: str, address: str | IPv4Address | None = None
) -> tuple[IPAMState, IPv4Address]:
    """Give ``owner`` (a container) an address on network ``key``.

    A static ``address`` must be a host address of the subnet other than the
    gateway and not held by another owner. Without one, the owner keeps the
    address it already has, or gets the lowest free address of ``ip_range``
    (or of the subnet).
    """
    try:
        sub = state.networks[key]
    except KeyError:
        raise IPAMError(f"network {key}: no subnet allocated") from None
    current = sub.owner_address(owner)
    if address is not None:
        addr = address if isinstance(address, IPv4Address) else _v4_address(
            address, "ipv4_address", key)
        if not _usable(sub.subnet, addr) or addr == sub.gateway:
            raise IPAMError(f"network {key}: ipv4_address {addr} of {owner} is not a free host "
                            f"address of subnet {sub.subnet} (gateway {sub.gateway})")
        holder = sub.addresses.get(addr)
        if holder is not None and holder != owner:
            raise IPAMError(f"network {key}: ipv4_address {addr} of {owner} is already "
                            f"used by {holder}")
        if current == addr:
            return state, addr
    elif current is not None:
        return state, current
    else:
        rng = sub.ip_range or sub.subnet
        for candidate in rng.hosts() if rng.prefixlen < 31 else iter(rng):
            if (candidate != sub.gateway and _usable(sub.subnet, candidate)
                    and candidate not in sub.addresses):
                addr = candidate
                break
        else:
            raise IPAMError(f"network {key}: no free address left in {rng}")
    addrs = {a: o for a, o in sub.addresses.items() if o != owner}
    addrs[addr] = owner
    nets = dict(state.networks)
    nets[key] = replace(sub, addresses=addrs)
    return IPAMState(networks=nets), addr


def release_address(state: IPAMState, key: str, owner: str) -> IPAMState:
    """Release the address ``owner`` holds on network ``key`` (no error if none)."""
    sub = state.networks.get(key)
    if sub is None or sub.owner_address(owner) is None:
        return state
    nets = dict(state.networks)
    nets[key] = replace(sub, addresses={a: o for a, o in sub.addresses.items() if o != owner})
    return IPAMState(networks=nets)


def check_overlap(
    subnets: Mapping[str, IPv4Network], host: Iterable[HostNet | IPv4Network]
) -> None:
    """Preflight: raise :class:`SubnetOverlapError` if a project subnet overlaps ``host``.

    ``subnets`` maps network keys to their subnets; ``host`` is what
    :func:`host_networks` returned (minus the project's own bridges) plus
    the subnets of other pycompose networks.
    """
    host = list(host)
    problems = []
    for key, net in sorted(subnets.items()):
        for h in host:
            other = h.network if isinstance(h, HostNet) else h
            if net.overlaps(other):
                problems.append(f"network {key}: subnet {net} overlaps "
                                f"{h if isinstance(h, HostNet) else 'network ' + str(other)}")
                break
    if problems:
        raise SubnetOverlapError("; ".join(problems))


def host_networks(ignore_ifnames: Iterable[str] = ()) -> list[HostNet]:
    """The IPv4 prefixes routed or addressed on the host (blocking: run in a thread).

    Default routes and loopback are left out; so are interfaces in
    ``ignore_ifnames`` (the caller's own bridges, which naturally carry
    their subnet).
    """
    from pyroute2 import IPRoute

    from ._netlink import map_netlink_errors

    ignore = set(ignore_ifnames)
    found: list[HostNet] = []
    with map_netlink_errors("read host routes"), IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for r in ipr.get_routes(family=2, table=254):
            dst = r.get_attr("RTA_DST")
            if dst is None or r["dst_len"] == 0:
                continue
            ifname = names.get(r.get_attr("RTA_OIF"), "?")
            net = IPv4Network(f"{dst}/{r['dst_len']}", strict=False)
            if ifname not in ignore and not net.is_loopback:
                found.append(HostNet(net, ifname, "route"))
        for a in ipr.get_addr(family=2):
            ifname = names.get(a["index"], "?")
            net = IPv4Network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False)
            if ifname not in ignore and not net.is_loopback:
                found.append(HostNet(net, ifname, "address"))
    return found
