"""Garbage collection: remove this instance's host objects whose owner is gone.

Safe at every engine start: it only touches bridges stamped with this
instance's alias (:func:`names.link_alias`) and the veths enslaved to them,
namespace files under this
state root, and this instance's nftables table; the caller says what is
alive (from its records), everything else of ours goes.
"""

from __future__ import annotations

import errno
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from . import firewall
from ._netlink import map_netlink_errors, run_netlink
from .names import LINK_PREFIX, VETH_PREFIX, link_alias
from .netns import _remove, list_netns

__all__ = ["GCReport", "collect_garbage", "instance_links"]


@dataclass
class GCReport:
    links: list[str] = field(default_factory=list)
    netns: list[Path] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)  # firewall networks removed
    mappings: int = 0  # published ports removed
    table_removed: bool = False


def _instance_links(alias: str) -> list[tuple[str, bool]]:
    from pyroute2 import IPRoute

    bridges: dict[int, str] = {}
    ports: list[tuple[str, int | None]] = []
    with map_netlink_errors("list links"), IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME") or ""
            if not name.startswith(LINK_PREFIX):
                continue
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if kind == "bridge" and link.get_attr("IFLA_IFALIAS") == alias:
                bridges[link["index"]] = name
            elif kind == "veth" and name.startswith(VETH_PREFIX):
                ports.append((name, link.get_attr("IFLA_MASTER")))
    # a veth is ours when it is a port of one of our bridges; one that never got
    # that far goes away with its namespace (the kernel destroys both ends)
    return [(n, False) for n, master in ports if master in bridges] + [
        (n, True) for n in bridges.values()]


async def instance_links(instance: str) -> list[tuple[str, bool]]:
    """(name, is_bridge) of ``instance``'s links: its bridges (stamped with
    :func:`names.link_alias`) and the veths enslaved to them."""
    alias = link_alias(instance)
    return await run_netlink(lambda: _instance_links(alias))


def _delete_links(names: list[str]) -> None:
    from pyroute2 import IPRoute, NetlinkError

    with map_netlink_errors("delete links"), IPRoute() as ipr:
        for n in names:
            try:
                ipr.link("del", ifname=n)
            except NetlinkError as e:
                if e.code not in (errno.ENODEV, errno.ENOENT):
                    raise


async def collect_garbage(
    *,
    instance: str,
    root: Path,
    table: str,
    live_links: Collection[str] = (),
    live_netns: Collection[Path | str] = (),
    live_owners: Collection[str] = (),
) -> GCReport:
    """Remove what this instance left behind.

    ``live_links``: bridges and host-side veths still in use;
    ``live_netns``: namespace files still in use (paths or names);
    ``live_owners``: owners (container ids) whose published ports stay.
    Veths go before their bridges; firewall networks whose bridge is not
    live are torn down, and the table with the last of them.
    """
    report = GCReport()
    live_link_set = set(live_links)
    links = await instance_links(instance)
    dead = [n for n, is_br in sorted(links, key=lambda x: x[1]) if n not in live_link_set]
    if dead:
        await run_netlink(lambda: _delete_links(dead))
    report.links = dead

    live_ns = {Path(p).name for p in live_netns}
    for path in list_netns(root):
        if path.name not in live_ns:
            await run_netlink(lambda p=path: _remove(p))  # type: ignore[misc]
            report.netns.append(path)

    state = await firewall.read_state(table)
    if state is not None:
        stale = [m for m in state.mappings if m.owner not in live_owners]
        if stale:
            await firewall.unpublish(table, stale)
            report.mappings = len(stale)
        for br in sorted(state.bridges - live_link_set):
            report.networks.append(br)
            if await firewall.teardown_network(table, br):
                report.table_removed = True
        if not state.bridges:
            await firewall.delete_table(table)
            report.table_removed = True
    return report
