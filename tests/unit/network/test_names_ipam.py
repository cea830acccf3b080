"""Link names and IPAM (pure functions over an explicit state)."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycompose.network import ipam, names
from pycompose.network.errors import IPAMError, PoolExhaustedError, SubnetOverlapError


def test_link_names_are_short_prefixed_stable_and_distinct_per_instance() -> None:
    a = names.bridge_name("i1", "proj", "default")
    assert a == names.bridge_name("i1", "proj", "default")
    assert a.startswith("pcbr")
    assert len(a) == 15
    assert a != names.bridge_name("i2", "proj", "default")
    assert a != names.bridge_name("i1", "proj", "back")
    v = names.veth_name("i1", "c1", "default")
    assert v.startswith("pcv")
    assert len(v) == 15
    assert v != names.veth_name("i1", "c1", "other")
    assert names.check_link_name(a) == a
    with pytest.raises(ValueError, match="invalid interface name"):
        names.check_link_name("x" * 16)


def test_default_pool_is_dockers_and_skips_host_and_taken_subnets() -> None:
    s = ipam.IPAMState()
    s, sub = ipam.allocate_subnet(s, "p_default")
    assert sub.subnet == N("172.17.0.0/16")
    assert sub.gateway == A("172.17.0.1")
    host = [ipam.HostNet(N("172.18.5.0/24"), "eth9", "route")]
    s, sub2 = ipam.allocate_subnet(s, "p_back", avoid=host)
    assert sub2.subnet == N("172.19.0.0/16")
    # idempotent
    assert ipam.allocate_subnet(s, "p_back", avoid=host)[1] == sub2
    # the /16s exhausted: 192.168.0.0/20 next
    avoid = [N("172.16.0.0/12")]
    s2, sub3 = ipam.allocate_subnet(ipam.IPAMState(), "x", avoid=avoid)
    assert sub3.subnet == N("192.168.0.0/20")


def test_pool_exhausted_and_overlap_errors_name_the_network() -> None:
    pools = [ipam.AddressPool(N("10.0.0.0/23"), 24)]
    s, _ = ipam.allocate_subnet(ipam.IPAMState(), "a", pools=pools)
    s, _ = ipam.allocate_subnet(s, "b", pools=pools)
    with pytest.raises(PoolExhaustedError, match="network c: no free subnet"):
        ipam.allocate_subnet(s, "c", pools=pools)
    with pytest.raises(SubnetOverlapError,
                       match=r"network d: subnet 10.0.0.0/16 overlaps network a"):
        ipam.allocate_subnet(s, "d", ipam.SubnetRequest(subnet="10.0.0.0/16"))
    host = [ipam.HostNet(N("192.0.2.0/24"), "eth0", "address")]
    with pytest.raises(SubnetOverlapError, match="address 192.0.2.0/24 on eth0"):
        ipam.allocate_subnet(s, "e", ipam.SubnetRequest(subnet="192.0.2.0/25"), avoid=host)


def test_explicit_subnet_gateway_ip_range_and_bad_values() -> None:
    req = ipam.SubnetRequest(subnet="10.5.0.0/24", gateway="10.5.0.254", ip_range="10.5.0.128/25")
    s, sub = ipam.allocate_subnet(ipam.IPAMState(), "n", req)
    assert sub.gateway == A("10.5.0.254")
    assert sub.ip_range == N("10.5.0.128/25")
    s, a1 = ipam.allocate_address(s, "n", "c1")
    assert a1 == A("10.5.0.129")
    for bad, msg in [
        (ipam.SubnetRequest(subnet="10.5.0.0/33"), "invalid subnet"),
        (ipam.SubnetRequest(subnet="10.5.0.1/24"), "invalid subnet"),
        (ipam.SubnetRequest(subnet="10.5.0.0/24", gateway="10.6.0.1"), "not a host address"),
        (ipam.SubnetRequest(subnet="10.5.0.0/24", ip_range="10.6.0.0/25"), "not inside"),
        (ipam.SubnetRequest(subnet="fd00::/64"), "IPv6 subnet 'fd00::/64' is not supported yet"),
        (ipam.SubnetRequest(gateway="10.0.0.1"), "need an explicit subnet"),
    ]:
        with pytest.raises(IPAMError, match=msg):
            ipam.allocate_subnet(ipam.IPAMState(), "m", bad)


def test_addresses_sequential_static_released_and_persisted() -> None:
    s, _ = ipam.allocate_subnet(ipam.IPAMState(), "n", ipam.SubnetRequest(subnet="10.1.0.0/29"))
    s, a = ipam.allocate_address(s, "n", "c1")
    s, b = ipam.allocate_address(s, "n", "c2", "10.1.0.5")
    s, c = ipam.allocate_address(s, "n", "c3")
    assert (a, b, c) == (A("10.1.0.2"), A("10.1.0.5"), A("10.1.0.3"))
    assert ipam.allocate_address(s, "n", "c1")[1] == a  # keeps its address
    with pytest.raises(IPAMError, match="already used by c2"):
        ipam.allocate_address(s, "n", "c4", "10.1.0.5")
    with pytest.raises(IPAMError, match="not a free host address"):
        ipam.allocate_address(s, "n", "c4", "10.1.0.1")  # the gateway
    s, d = ipam.allocate_address(s, "n", "c4")
    s, e = ipam.allocate_address(s, "n", "c5")
    with pytest.raises(IPAMError, match="no free address"):
        ipam.allocate_address(s, "n", "c6")
    s = ipam.release_address(s, "n", "c1")
    assert ipam.allocate_address(s, "n", "c6")[1] == a
    restored = ipam.IPAMState.from_dict(s.to_dict())
    assert restored == s
    assert ipam.release_subnet(s, "n").networks == {}


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), max_size=30))
def test_addresses_never_shared(ops: list[str]) -> None:
    s, _ = ipam.allocate_subnet(ipam.IPAMState(), "n", ipam.SubnetRequest(subnet="10.2.0.0/28"))
    for i, owner in enumerate(ops):
        if i % 3 == 2:
            s = ipam.release_address(s, "n", owner)
        else:
            s, addr = ipam.allocate_address(s, "n", owner)
            assert s.networks["n"].addresses[addr] == owner
    addrs = s.networks["n"].addresses
    assert len(set(addrs.values())) == len(addrs)
    assert A("10.2.0.1") not in addrs


def test_check_overlap_preflight() -> None:
    ipam.check_overlap({"a": N("10.9.0.0/24")}, [N("10.8.0.0/24")])
    with pytest.raises(SubnetOverlapError, match="network a: subnet 10.9.0.0/24 overlaps route"):
        ipam.check_overlap({"a": N("10.9.0.0/24")}, [ipam.HostNet(N("10.9.0.0/16"), "x", "route")])


def test_bridge_options_from_driver_settings() -> None:
    from pycompose.network.bridge import BridgeOptions, bridge_options
    from pycompose.network.errors import NetworkError

    assert bridge_options("n") == BridgeOptions()
    opts = {"com.docker.network.bridge.name": "pcbrmine", "com.docker.network.driver.mtu": "1400"}
    assert bridge_options("n", "bridge", opts) == BridgeOptions("pcbrmine", 1400)
    for args, msg in [
        (("n", "overlay"), "driver 'overlay' is not supported"),
        (("n", None, None, True), "enable_ipv6 is not supported yet"),
        (("n", None, {"com.docker.network.driver.mtu": "9"}), "invalid MTU"),
        (("n", None, {"com.docker.network.bridge.name": "much-too-long-name"}),
         "invalid interface"),
        (("n", None, {"foo": "1"}), "driver_opts.foo is not supported"),
    ]:
        with pytest.raises(NetworkError, match=msg):
            bridge_options(*args)  # type: ignore[arg-type]
