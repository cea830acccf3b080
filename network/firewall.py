"""pycompose's own nftables table: forwarding, NAT, isolation, published ports.

One table per instance (``pycompose`` or ``pycompose_<suffix>``), family
``ip``; nothing outside it is touched. Every change is one nft script,
applied atomically by the kernel (via libnftables, see :mod:`network._nft`).

Layout (per-network state lives in sets/maps, so adding a network or a port is
adding elements, never rewriting rules)::

    set  bridges     ifname           every pycompose bridge of this instance
    set  masq_nets   ipv4 interval    subnets of non-internal networks
    map  fwd_from    ifname : verdict jump from_<bridge> (traffic leaving a network)
    map  fwd_to      ifname : verdict jump to_<bridge>   (traffic entering a network)
    map  pub_{tcp,udp}_any  port : addr . port           published on all host addresses
    map  pub_{tcp,udp}_ip   addr . port : addr . port    published on one host address

    forward      ct established,related accept; iifname vmap @fwd_from; oifname vmap @fwd_to
    from_<br>    same bridge accept; [internal: drop]; DNAT-ed accept; other bridges drop; accept
    to_<br>      [internal: drop]; DNAT-ed accept; drop
    prerouting,  fib daddr type local -> publish (DNAT through the pub_* maps)
    output
    postrouting  masquerade: masq_nets leaving by a non-pycompose interface;
                 127.0.0.0/8 sources going to a bridge (host -> 127.0.0.1:port);
                 DNAT-ed traffic from containers (hairpin)

Published ports reach the host's own addresses and 127.0.0.1 in the kernel
(DNAT in prerouting and output; ``route_localnet=1`` on each bridge lets a
packet with a loopback source leave by the bridge, and the masquerade rule
gives it the gateway as source). Chosen over a userland proxy because it
keeps working while the engine is down or restarting (containers outlive the
engine), copies no bytes through Python, and costs one map element per port.

IPv4 forwarding is switched on with the first table; if it was off, an empty
set ``ip_forward_was_off`` records it in the table itself (so the memory
survives an engine crash) and it is switched off again when the last
pycompose table goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

import trio

from . import _nft
from .errors import FirewallError

__all__ = [
    "FirewallNetwork",
    "FirewallState",
    "PortMapping",
    "delete_table",
    "publish",
    "read_state",
    "setup_network",
    "teardown_network",
    "unpublish",
]

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
NFT_LIMITER = trio.CapacityLimiter(1)  # read-modify-write steps on the table are serialised

_TABLE_RE = re.compile(r"^pycompose(_[A-Za-z0-9_]{1,40})?$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9_.:=/-]{1,100}$")


@dataclass(frozen=True)
class FirewallNetwork:
    bridge: str
    subnet: IPv4Network
    internal: bool = False


@dataclass(frozen=True)
class PortMapping:
    """One published port: ``host_ip:host_port/protocol`` -> ``container_ip:container_port``.

    ``host_ip`` None means every address of the host (incl. 127.0.0.1).
    ``owner`` (the container id) is stored with the element, for gc.
    """

    protocol: Literal["tcp", "udp"]
    host_port: int
    container_ip: IPv4Address
    container_port: int
    host_ip: IPv4Address | None = None
    owner: str = ""


@dataclass(frozen=True)
class FirewallState:
    """What the table holds (for gc and inspection)."""

    table: str
    bridges: frozenset[str]
    mappings: tuple[PortMapping, ...]
    ip_forward_was_off: bool


def _check_table(table: str) -> str:
    if not _TABLE_RE.match(table):
        raise FirewallError(f"invalid table name {table!r} (pycompose or pycompose_<suffix>)")
    return table


def _q(name: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", name):
        raise FirewallError(f"invalid interface name {name!r}")
    return f'"{name}"'


def _chain_suffix(bridge: str) -> str:
    if re.match(r"^[A-Za-z0-9_]+$", bridge):
        return bridge
    import hashlib

    return "x" + hashlib.sha256(bridge.encode()).hexdigest()[:14]


def _base_script(t: str) -> list[str]:
    T = f"ip {t}"
    lines = [
        f"add table {T}",
        f"add set {T} bridges {{ type ifname; }}",
        f"add set {T} masq_nets {{ type ipv4_addr; flags interval; }}",
        f"add map {T} fwd_from {{ type ifname : verdict; }}",
        f"add map {T} fwd_to {{ type ifname : verdict; }}",
    ]
    for proto in ("tcp", "udp"):
        lines += [
            f"add map {T} pub_{proto}_ip {{ type ipv4_addr . inet_service : "
            f"ipv4_addr . inet_service; }}",
            f"add map {T} pub_{proto}_any {{ type inet_service : ipv4_addr . inet_service; }}",
        ]
    lines += [
        f"add chain {T} publish",
        f"add rule {T} publish dnat to ip daddr . tcp dport map @pub_tcp_ip",
        f"add rule {T} publish dnat to tcp dport map @pub_tcp_any",
        f"add rule {T} publish dnat to ip daddr . udp dport map @pub_udp_ip",
        f"add rule {T} publish dnat to udp dport map @pub_udp_any",
        f"add chain {T} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        f"add rule {T} prerouting fib daddr type local jump publish",
        f"add chain {T} output {{ type nat hook output priority -100; policy accept; }}",
        f"add rule {T} output fib daddr type local jump publish",
        f"add chain {T} postrouting {{ type nat hook postrouting priority srcnat; "
        f"policy accept; }}",
        f"add rule {T} postrouting ip saddr @masq_nets oifname != @bridges masquerade",
        f"add rule {T} postrouting ip saddr 127.0.0.0/8 oifname @bridges masquerade",
        f"add rule {T} postrouting ct status dnat ip saddr @masq_nets oifname @bridges masquerade",
        f"add chain {T} forward {{ type filter hook forward priority filter; policy accept; }}",
        f"add rule {T} forward ct state established,related accept",
        f"add rule {T} forward iifname vmap @fwd_from",
        f"add rule {T} forward oifname vmap @fwd_to",
    ]
    return lines


def _read_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise FirewallError(f"cannot read {path}: {e.strerror}") from None


def _write_file(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise FirewallError(f"cannot write {value!r} to {path}: {e.strerror}") from None


def _pycompose_tables() -> list[str]:
    objs = _nft.list_json("tables ip") or []
    names = []
    for o in objs:
        tab = o.get("table")
        if isinstance(tab, dict) and _TABLE_RE.match(str(tab.get("name", ""))):
            names.append(str(tab["name"]))
    return names


def _table_objects(table: str) -> list[dict[str, object]] | None:
    return _nft.list_json(f"table ip {table}")


def _ensure_table(table: str) -> None:
    if table in _pycompose_tables():  # names only: listing the table would list every port
        return
    script = _base_script(table)
    if _read_file(IP_FORWARD) == "0":
        script.append(f"add set ip {table} ip_forward_was_off {{ type mark; }}")
        _nft.run("\n".join(script))
        _write_file(IP_FORWARD, "1")
    else:
        _nft.run("\n".join(script))


def _network_script(t: str, net: FirewallNetwork) -> list[str]:
    T = f"ip {t}"
    br = _q(net.bridge)
    f, to = f"from_{_chain_suffix(net.bridge)}", f"to_{_chain_suffix(net.bridge)}"
    lines = [
        f"add chain {T} {f}", f"flush chain {T} {f}",
        f"add chain {T} {to}", f"flush chain {T} {to}",
        f"add rule {T} {f} oifname {br} accept",
    ]
    if net.internal:
        lines += [f"add rule {T} {f} drop", f"add rule {T} {to} drop"]
    else:
        lines += [
            f"add rule {T} {f} ct status dnat accept",
            f"add rule {T} {f} oifname @bridges drop",
            f"add rule {T} {f} accept",
            f"add rule {T} {to} ct status dnat accept",
            f"add rule {T} {to} drop",
            f"add element {T} masq_nets {{ {net.subnet} comment {br} }}",
        ]
    lines += [
        f"add element {T} bridges {{ {br} }}",
        f"add element {T} fwd_from {{ {br} : jump {f} }}",
        f"add element {T} fwd_to {{ {br} : jump {to} }}",
    ]
    return lines


# --- reading the table back -------------------------------------------------

def _elems(objs: Iterable[dict[str, object]], kind: str, name: str) -> list[object]:
    for o in objs:
        body = o.get(kind)
        if isinstance(body, dict) and body.get("name") == name:
            elem = body.get("elem", [])
            return list(elem) if isinstance(elem, list) else []
    return []


def _named(obj: dict[str, object], kind: str) -> str | None:
    body = obj.get(kind)
    return str(body.get("name")) if isinstance(body, dict) else None


def _unwrap(v: object) -> tuple[object, str]:
    """Element key -> (value, comment)."""
    if isinstance(v, dict) and "elem" in v:
        inner = v["elem"]
        assert isinstance(inner, dict)
        return inner.get("val"), str(inner.get("comment", ""))
    return v, ""


def _mappings(objs: list[dict[str, object]]) -> list[PortMapping]:
    out = []
    for proto in ("tcp", "udp"):
        for kind in ("any", "ip"):
            for e in _elems(objs, "map", f"pub_{proto}_{kind}"):
                assert isinstance(e, list)
                key, comment = _unwrap(e[0])
                value = e[1]
                assert isinstance(value, dict)
                caddr, cport = value["concat"]
                if kind == "ip":
                    assert isinstance(key, dict)
                    haddr, hport = key["concat"]
                    host_ip: IPv4Address | None = IPv4Address(haddr)
                else:
                    host_ip, hport = None, key
                out.append(PortMapping(
                    protocol="tcp" if proto == "tcp" else "udp",
                    host_port=int(hport), container_ip=IPv4Address(caddr),
                    container_port=int(cport), host_ip=host_ip, owner=comment))
    return out


def _state(table: str) -> FirewallState | None:
    objs = _table_objects(table)
    if objs is None:
        return None
    bridges = frozenset(str(_unwrap(e)[0]) for e in _elems(objs, "set", "bridges"))
    was_off = any(_named(o, "set") == "ip_forward_was_off" for o in objs)
    return FirewallState(table=table, bridges=bridges, mappings=tuple(_mappings(objs)),
                         ip_forward_was_off=was_off)


def _mapping_key(m: PortMapping) -> tuple[str, str]:
    if m.host_ip is None:
        return f"pub_{m.protocol}_any", f"{m.host_port}"
    return f"pub_{m.protocol}_ip", f"{m.host_ip} . {m.host_port}"


def _check_mapping(m: PortMapping) -> None:
    if m.protocol not in ("tcp", "udp"):
        raise FirewallError(f"unsupported protocol {m.protocol!r} (tcp or udp)")
    for p in (m.host_port, m.container_port):
        if not 1 <= p <= 65535:
            raise FirewallError(f"port {p} out of range 1-65535")
    if m.owner and not _OWNER_RE.match(m.owner):
        raise FirewallError(f"invalid owner {m.owner!r} for a port mapping")


# --- steps (each one blocking call in a worker thread) ------------------------

def _setup_network(table: str, net: FirewallNetwork) -> None:
    _ensure_table(table)
    _nft.run("\n".join(_network_script(table, net)))


def _unpublish_script(table: str, objs: list[dict[str, object]],
                      match: object) -> list[str]:
    lines = []
    for m in _mappings(objs):
        if match(m):  # type: ignore[operator]
            mapname, key = _mapping_key(m)
            lines.append(f"delete element ip {table} {mapname} {{ {key} }}")
    return lines


def _teardown_network(table: str, bridge: str, subnet: IPv4Network | None) -> bool:
    objs = _table_objects(table)
    if objs is None:
        return True
    T = f"ip {table}"
    br = _q(bridge)
    lines: list[str] = []
    if subnet is not None:
        lines += _unpublish_script(table, objs, lambda m: m.container_ip in subnet)
    for e in _elems(objs, "set", "masq_nets"):
        val, comment = _unwrap(e)
        if isinstance(val, dict) and "prefix" in val:
            net = IPv4Network(f"{val['prefix']['addr']}/{val['prefix']['len']}")
            if comment == bridge or net == subnet:
                lines.append(f"delete element {T} masq_nets {{ {net} }}")
    for mapname in ("fwd_from", "fwd_to"):
        if any(isinstance(e, list) and _unwrap(e[0])[0] == bridge
               for e in _elems(objs, "map", mapname)):
            lines.append(f"delete element {T} {mapname} {{ {br} }}")
    bridges = {str(_unwrap(e)[0]) for e in _elems(objs, "set", "bridges")}
    if bridge in bridges:
        lines.append(f"delete element {T} bridges {{ {br} }}")
    chains = {_named(o, "chain") for o in objs}
    for ch in (f"from_{_chain_suffix(bridge)}", f"to_{_chain_suffix(bridge)}"):
        if ch in chains:
            lines.append(f"delete chain {T} {ch}")
    if lines:
        _nft.run("\n".join(lines))
    if not bridges - {bridge}:
        _delete_table(table)
        return True
    return False


def _delete_table(table: str) -> None:
    state = _state(table)
    if state is None:
        return
    others = [t for t in _pycompose_tables() if t != table]
    if state.ip_forward_was_off and others:
        # another pycompose table still needs forwarding: hand the memory over
        _nft.run(f"add set ip {others[0]} ip_forward_was_off {{ type mark; }}\n"
                 f"delete table ip {table}")
        return
    _nft.run(f"delete table ip {table}")
    if state.ip_forward_was_off:
        _write_file(IP_FORWARD, "0")


def _publish(table: str, mappings: Sequence[PortMapping]) -> None:
    # no listing first: reading the table back costs more than the change itself
    lines = []
    for m in mappings:
        _check_mapping(m)
        mapname, key = _mapping_key(m)
        comment = f' comment "{m.owner}"' if m.owner else ""
        lines.append(f"add element ip {table} {mapname} "
                     f"{{ {key}{comment} : {m.container_ip} . {m.container_port} }}")
    if not lines:
        return
    try:
        _nft.run("\n".join(lines))
    except FirewallError as e:
        if "No such file or directory" in str(e) and _table_objects(table) is None:
            raise FirewallError(f"table ip {table} does not exist: set up a network first") \
                from None
        raise


def _unpublish(table: str, mappings: Sequence[PortMapping]) -> None:
    if not mappings:
        return
    # the common case in one transaction without reading the table; if some entry
    # is already gone (the transaction fails as a whole), delete only what is there
    lines = []
    for m in mappings:
        mapname, key = _mapping_key(m)
        lines.append(f"delete element ip {table} {mapname} {{ {key} }}")
    try:
        _nft.run("\n".join(lines))
        return
    except FirewallError:
        pass
    objs = _table_objects(table)
    if objs is None:
        return
    wanted = {_mapping_key(m) for m in mappings}
    lines = _unpublish_script(table, objs, lambda m: _mapping_key(m) in wanted)
    if lines:
        _nft.run("\n".join(lines))



# --- public API ---------------------------------------------------------------

async def setup_network(table: str, net: FirewallNetwork) -> None:
    """Create the table if needed (IPv4 forwarding on) and add the network's rules.

    Idempotent: a second call rewrites the network's chains to the same content.
    """
    _check_table(table)
    _q(net.bridge)
    await trio.to_thread.run_sync(lambda: _setup_network(table, net), limiter=NFT_LIMITER)


async def teardown_network(table: str, bridge: str, subnet: IPv4Network | None = None) -> bool:
    """Remove a network's rules (and its containers' published ports, when
    ``subnet`` is given); delete the table when it was the last. Idempotent.
    Returns True when the table is gone."""
    _check_table(table)
    return await trio.to_thread.run_sync(lambda: _teardown_network(table, bridge, subnet),
                                         limiter=NFT_LIMITER)


async def publish(table: str, mappings: Sequence[PortMapping]) -> None:
    """Add DNAT entries for ``mappings`` in one transaction (all or none)."""
    _check_table(table)
    await trio.to_thread.run_sync(lambda: _publish(table, list(mappings)), limiter=NFT_LIMITER)


async def unpublish(table: str, mappings: Sequence[PortMapping]) -> None:
    """Remove the DNAT entries of ``mappings`` (matched by host side); missing ones are fine."""
    _check_table(table)
    await trio.to_thread.run_sync(lambda: _unpublish(table, list(mappings)), limiter=NFT_LIMITER)


async def read_state(table: str) -> FirewallState | None:
    """The table's networks and published ports, or None if there is no table."""
    _check_table(table)
    return await trio.to_thread.run_sync(lambda: _state(table), limiter=NFT_LIMITER)


async def delete_table(table: str) -> None:
    """Delete the whole table (restoring IPv4 forwarding if pycompose turned it on)."""
    _check_table(table)
    await trio.to_thread.run_sync(lambda: _delete_table(table), limiter=NFT_LIMITER)
