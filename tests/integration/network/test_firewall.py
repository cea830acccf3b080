"""The nftables table on its own: idempotency, state read-back, forwarding restored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N
from pathlib import Path

import pytest
import trio

from pycompose.network import _nft, firewall
from pycompose.network.errors import FirewallError

pytestmark = pytest.mark.root

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def ip_forward() -> str:
    return IP_FORWARD.read_text().strip()


@pytest.fixture
async def table(run_id: str) -> AsyncIterator[str]:
    name = f"pycompose_{run_id}_fw"
    try:
        yield name
    finally:
        with trio.CancelScope(shield=True):
            await firewall.delete_table(name)


def _other_pycompose_tables(mine: str) -> list[str]:
    return [t for t in firewall._pycompose_tables() if t != mine]


async def test_table_lifecycle_state_and_forwarding(table: str) -> None:
    before = ip_forward()
    one = firewall.FirewallNetwork("pcbrfwone", N("10.231.0.0/24"))
    two = firewall.FirewallNetwork("pcbrfwtwo", N("10.231.1.0/24"), internal=True)
    await firewall.setup_network(table, one)
    await firewall.setup_network(table, one)  # idempotent
    await firewall.setup_network(table, two)
    assert ip_forward() == "1"
    maps = [firewall.PortMapping("tcp", 18080, A("10.231.0.2"), 80, owner="c1"),
            firewall.PortMapping("udp", 18053, A("10.231.0.2"), 53, A("127.0.0.1"), owner="c1")]
    await firewall.publish(table, maps)
    state = await firewall.read_state(table)
    assert state is not None
    assert state.bridges == {"pcbrfwone", "pcbrfwtwo"}
    assert sorted(state.mappings, key=lambda m: m.protocol) == maps
    text = _nft.run(f"list table ip {table}")
    assert "10.231.0.0/24" in text  # masquerade for the normal network...
    assert "10.231.1.0/24" not in text  # ...none for the internal one
    await firewall.unpublish(table, maps[:1])
    await firewall.unpublish(table, maps)  # one gone already: still fine
    state = await firewall.read_state(table)
    assert state is not None
    assert state.mappings == ()
    assert await firewall.teardown_network(table, "pcbrfwone", one.subnet) is False
    assert "10.231.0.0/24" not in _nft.run(f"list table ip {table}")
    others = _other_pycompose_tables(table)
    assert await firewall.teardown_network(table, "pcbrfwtwo", two.subnet) is True
    assert await firewall.read_state(table) is None
    if not others:  # another pycompose table (a parallel run) keeps forwarding on
        assert ip_forward() == before
    assert await firewall.teardown_network(table, "pcbrfwtwo") is True  # idempotent


async def test_bad_input_is_refused(table: str) -> None:
    with pytest.raises(FirewallError, match="invalid table name"):
        await firewall.setup_network("mytable", firewall.FirewallNetwork("pcbrx", N("10.0.0.0/24")))
    with pytest.raises(FirewallError, match="invalid interface name"):
        await firewall.setup_network(table, firewall.FirewallNetwork('x"; drop', N("10.0.0.0/24")))
    with pytest.raises(FirewallError, match="does not exist"):
        await firewall.publish(table, [firewall.PortMapping("tcp", 1, A("10.0.0.2"), 1)])
    await firewall.setup_network(table, firewall.FirewallNetwork("pcbrfwbad", N("10.232.0.0/24")))
    with pytest.raises(FirewallError, match="port 0 out of range"):
        await firewall.publish(table, [firewall.PortMapping("tcp", 0, A("10.0.0.2"), 1)])
    with pytest.raises(FirewallError, match="invalid owner"):
        await firewall.publish(table, [firewall.PortMapping("tcp", 1, A("10.0.0.2"), 1,
                                                            owner='a" drop')])
