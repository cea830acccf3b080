"""Networks end to end on the real kernel: bridges, veths, DNS, NAT, isolation, cleanup.

Traffic goes only to loopback and to namespaces/bridges the test made; the
"remote host" is a namespace behind a bridge of the test's own.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import trio
import trio.lowlevel
from pyroute2 import IPRoute

from pycompose.network import bridge, firewall, gc, links, names, netns, ports
from pycompose.network.errors import LinkNotFoundError, PortBusyError

from .conftest import BUSYBOX, Lab, connects, http_get, wait_listening

pytestmark = pytest.mark.root


def _free_test_subnet(seed: str, third: int) -> IPv4Network:
    # 198.18.0.0/15 is the benchmarking range: never routed outside; distinct per run
    return IPv4Network(f"198.{18 + third}.{int(seed, 16) % 250}.0/24")


@dataclass
class Remote:
    """A 'remote host' namespace behind a test bridge; the host routes to it."""

    netns: Path
    address: IPv4Address
    host_address: IPv4Address


@pytest.fixture
async def remote(run_id: str, tmp_path: Path) -> AsyncIterator[Remote]:
    subnet = _free_test_subnet(run_id, 1)
    br, veth = f"pcx{run_id}r", f"pcx{run_id}v"
    gw, addr = subnet.network_address + 1, subnet.network_address + 2
    path = await netns.create_netns(tmp_path / "remote-root", "remote")
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=br, kind="bridge")
            brx = ipr.link_lookup(ifname=br)[0]
            ipr.addr("add", index=brx, address=str(gw), prefixlen=24)
            ipr.link("set", index=brx, state="up")
        await links.attach(path, [links.EndpointSpec(br, veth, addr, 24, gw)])
        yield Remote(path, addr, gw)
    finally:
        with IPRoute() as ipr:
            for n in (veth, br):
                if ipr.link_lookup(ifname=n):
                    ipr.link("del", ifname=n)
        await netns.remove_netns(path)


@pytest.fixture
def host_address(run_id: str) -> Iterator[IPv4Address]:
    """An address of the host on an interface (an empty bridge) the test owns."""
    addr = _free_test_subnet(run_id, 0).network_address + 7
    name = f"pcd{run_id}"
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="bridge")  # no dummy module here
        idx = ipr.link_lookup(ifname=name)[0]
        ipr.addr("add", index=idx, address=str(addr), prefixlen=32)
        ipr.link("set", index=idx, state="up")
    try:
        yield addr
    finally:
        with IPRoute() as ipr:
            if ipr.link_lookup(ifname=name):
                ipr.link("del", ifname=name)


def _addresses(nslookup_out: str) -> list[str]:
    # busybox nslookup prints the server first, then "Address: x" lines of the answer
    text = nslookup_out.split("Name:", 1)[-1]
    return re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)", text)


async def test_service_fetches_page_by_name_and_aliases_resolve(lab: Lab) -> None:
    net = await lab.network("p1", "default")
    web = await lab.container("p1-web-1", [(net, ["frontend"])], service="web")
    client = await lab.container("p1-client-1", [(net, [])], service="client")
    await lab.httpd(web, 80, "hello from web")

    r = await lab.run(client, BUSYBOX, "wget", "-q", "-O", "-", "http://web/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello from web"
    for name in ("frontend", "p1-web-1"):
        r = await lab.run(client, BUSYBOX, "nslookup", name, str(net.gateway))
        assert _addresses(r.stdout.decode()) == [str(web.addresses[net.key])], r.stdout
    # the container side: eth0 with the address, default route via the gateway
    r = await lab.run(client, "ip", "-4", "-o", "addr", "show", "eth0")
    assert str(client.addresses[net.key]) in r.stdout.decode()
    r = await lab.run(client, "ip", "route", "show", "default")
    assert f"default via {net.gateway} dev eth0" in r.stdout.decode()
    # the stack's names never reach the host's resolvers; other names do
    r = await lab.run(client, BUSYBOX, "nslookup", "nosuchservice", str(net.gateway))
    assert r.returncode != 0
    r = await lab.run(client, BUSYBOX, "nslookup", "www.example.test", str(net.gateway))
    assert "192.0.2.99" in r.stdout.decode()
    assert "nosuchservice" not in " ".join(lab.upstream.asked)
    assert "www.example.test" in lab.upstream.asked


async def test_scaled_service_has_three_records(lab: Lab) -> None:
    net = await lab.network("p2", "default")
    replicas = [await lab.container(f"p2-web-{i}", [(net, [])], service="web") for i in (1, 2, 3)]
    client = await lab.container("p2-client-1", [(net, [])])
    r = await lab.run(client, BUSYBOX, "nslookup", "web", str(net.gateway))
    got = sorted(_addresses(r.stdout.decode()))
    assert got == sorted(str(c.addresses[net.key]) for c in replicas)
    await lab.remove_container(replicas[1])
    r = await lab.run(client, BUSYBOX, "nslookup", "web", str(net.gateway))
    assert str(replicas[1].addresses[net.key]) not in r.stdout.decode()
    assert len(_addresses(r.stdout.decode())) == 2


async def test_published_ports_on_loopback_host_address_and_from_remote(
        lab: Lab, host_address: IPv4Address, remote: Remote) -> None:
    net = await lab.network("p3", "default")
    web = await lab.container("p3-web-1", [(net, [])], service="web",
                              publish=[ports.PortRequest("web", 80)])  # ephemeral host port
    await lab.httpd(web, 80, "published")
    assert web.reservation is not None
    port = web.reservation.ports[0].host_port
    assert port > 0  # the ephemeral port is reported
    assert (await http_get(None, "127.0.0.1", port)).endswith(b"published")
    assert (await http_get(None, str(host_address), port)).endswith(b"published")
    # from another machine's point of view: a remote host routed via the host
    r = await trio.run_process(["nsenter", f"--net={remote.netns}", "ip", "route", "add",
                                str(host_address), "via", str(remote.host_address)], check=False)
    assert r.returncode == 0
    assert (await http_get(remote.netns, str(host_address), port)).endswith(b"published")
    # from a container of the same network (hairpin) and of another project: a
    # published port is public, reachable through the host's address
    peer = await lab.container("p3-peer-1", [(net, [])])
    assert (await http_get(peer.netns, str(host_address), port)).endswith(b"published")
    other_net = await lab.network("p3other", "default")
    stranger = await lab.container("p3other-x-1", [(other_net, [])])
    assert (await http_get(stranger.netns, str(host_address), port)).endswith(b"published")
    assert not await connects(stranger.netns, str(web.addresses[net.key]), 80)
    state = await firewall.read_state(lab.table)
    assert state is not None
    assert [(m.host_port, m.container_port, m.owner) for m in state.mappings] == [
        (port, 80, "p3-web-1")]
    # unpublished: nothing answers any more
    await firewall.unpublish(lab.table, web.mappings)
    assert not await connects(None, "127.0.0.1", port)


async def test_busy_port_fails_preflight_naming_this_process(lab: Lab) -> None:
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        with pytest.raises(PortBusyError) as ei:
            ports.preflight([ports.PortRequest("web", 80, "tcp", port)])
        assert ei.value.pid == os.getpid()
        assert ei.value.service == "web"
        assert f"host port {port}/tcp of service web is already in use by pid {os.getpid()}" \
            in str(ei.value)
    finally:
        s.close()


async def test_projects_are_isolated_and_two_networks_reach_both(lab: Lab) -> None:
    a = await lab.network("pa", "default")
    b = await lab.network("pb", "default")
    back = await lab.network("pa", "back")
    srv_b = await lab.container("pb-web-1", [(b, [])])
    srv_back = await lab.container("pa-db-1", [(back, [])])
    both = await lab.container("pa-app-1", [(a, []), (back, [])])
    await lab.httpd(srv_b, 80, "b")
    await lab.httpd(srv_back, 80, "db")
    # eth0 on the first network carries the default route; eth1 on the second
    assert [e.ifname for e in both.endpoints] == ["eth0", "eth1"]
    assert both.endpoints[0].gateway == a.gateway
    assert both.endpoints[1].gateway is None
    assert await connects(both.netns, str(srv_back.addresses[back.key]), 80)
    assert not await connects(both.netns, str(srv_b.addresses[b.key]), 80)
    r = await lab.run(both, BUSYBOX, "ping", "-c", "1", "-W", "1", str(srv_b.addresses[b.key]))
    assert r.returncode != 0
    r = await lab.run(srv_b, BUSYBOX, "ping", "-c", "1", "-W", "1", str(both.addresses[a.key]))
    assert r.returncode != 0
    # DNS is per network: b's server does not know a's names
    r = await lab.run(srv_b, BUSYBOX, "nslookup", "pa-db-1", str(b.gateway))
    assert str(srv_back.addresses[back.key]) not in r.stdout.decode()


async def test_internal_network_has_no_way_out(lab: Lab, remote: Remote) -> None:
    www = lab.tmp / "www-remote"
    www.mkdir()
    (www / "index.html").write_text("remote")
    lab.spawn_argv(["nsenter", f"--net={remote.netns}", BUSYBOX, "httpd", "-f", "-p",
                    "0.0.0.0:80", "-h", str(www)])
    await wait_listening(remote.netns, 80)
    out = await lab.network("p4", "default")
    internal = await lab.network("p4", "private", internal=True)
    c_out = await lab.container("p4-out-1", [(out, [])])
    c_in = await lab.container("p4-in-1", [(internal, [])])
    both = await lab.container("p4-both-1", [(internal, []), (out, [])])
    # positive control: a normal network gets out (masqueraded)
    assert (await http_get(c_out.netns, str(remote.address), 80)).endswith(b"remote")
    # internal: no default route at all...
    r = await lab.run(c_in, "ip", "route", "show", "default")
    assert r.stdout.strip() == b""
    # ...and even with one added by hand, the firewall drops it
    r = await lab.run(c_in, "ip", "route", "add", "default", "via", str(internal.gateway))
    assert r.returncode == 0
    assert not await connects(c_in.netns, str(remote.address), 80)
    # a container on an internal and a normal network: the way out is via the normal one
    assert both.endpoints[1].gateway == out.gateway
    assert both.endpoints[0].gateway is None
    assert (await http_get(both.netns, str(remote.address), 80)).endswith(b"remote")
    # internal DNS does not forward outside
    r = await lab.run(c_in, BUSYBOX, "nslookup", "www.example.test", str(internal.gateway))
    assert "192.0.2.99" not in r.stdout.decode()


async def test_none_mode_namespace_has_only_lo(lab: Lab) -> None:
    path = await netns.create_netns(lab.root, names.netns_name(lab.instance, "lonely"))
    try:
        r = await trio.run_process(["nsenter", f"--net={path}", "ip", "-o", "link"],
                                   capture_stdout=True)
        lines = r.stdout.decode().strip().splitlines()
        assert len(lines) == 1
        assert ": lo:" in lines[0]
        assert "UP" in lines[0]
        # idempotent create, and a second "container" shares it (network_mode: service:x)
        assert await netns.create_netns(lab.root, path.name) == path
    finally:
        await netns.remove_netns(path)
    await netns.remove_netns(path)  # idempotent
    with pytest.raises(LinkNotFoundError, match="external network ext: bridge pcbrnothere"):
        await bridge.require_bridge("pcbrnothere", "ext")
    with pytest.raises(LinkNotFoundError):
        await links.attach(path, [links.EndpointSpec("pcbrnothere", "pcvnothere", IPv4Address(
            "10.0.0.2"), 24, IPv4Address("10.0.0.1"))])
    # the one-step variant leaves no namespace behind when the attach fails
    with pytest.raises(LinkNotFoundError, match="bridge pcbrnothere does not exist"):
        await links.create_and_attach(lab.root, "failing", [links.EndpointSpec(
            "pcbrnothere", "pcvnothere", IPv4Address("10.0.0.2"), 24, IPv4Address("10.0.0.1"))])
    assert not (netns.netns_dir(lab.root) / "failing").exists()


def _leftovers(lab: Lab, gateways: list[IPv4Address]) -> list[str]:
    problems = []
    ours = {names.bridge_name(lab.instance, *k.split("_", 1)) for k in lab.seen_networks}
    ours |= lab.seen_veths
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if link.get_attr("IFLA_IFALIAS") == lab.alias or name in ours:
                problems.append(f"link {name}")
    problems += [f"netns {p}" for p in netns.list_netns(lab.root)]
    r = subprocess.run(["nft", "list", "table", "ip", lab.table], capture_output=True)
    if r.returncode == 0:
        problems.append(f"table {lab.table}")
    # a socket still bound to a gateway's port 53 (UDP bound or TCP listening)?
    for sock in ports.scan_host_sockets():
        if sock.port == 53 and sock.address in gateways:
            problems.append(f"DNS listener {sock.protocol} {sock.address}:53")
    return problems


async def test_down_leaves_nothing_behind(lab: Lab) -> None:
    net = await lab.network("p5", "default")
    other = await lab.network("p5", "other", internal=True)
    await lab.container("p5-web-1", [(net, []), (other, [])],
                        publish=[ports.PortRequest("web", 80, "udp")])
    gateways = [net.gateway, other.gateway]
    before = _leftovers(lab, gateways)  # the check sees what is there
    assert f"DNS listener udp {net.gateway}:53" in before
    assert f"DNS listener tcp {other.gateway}:53" in before
    assert f"table {lab.table}" in before
    for c in list(lab.containers.values()):
        await lab.remove_container(c)
    for n in list(lab.nets.values()):
        await lab.remove_network(n)
    await trio.lowlevel.checkpoint()  # let the cancelled DNS tasks close their sockets
    assert _leftovers(lab, gateways) == []


async def test_gc_after_a_crash(lab: Lab) -> None:
    net = await lab.network("p6", "default")
    c = await lab.container("p6-web-1", [(net, [])], publish=[ports.PortRequest("web", 80)])
    keep = await lab.container("p6-keep-1", [(net, [])], publish=[ports.PortRequest("k", 81)])
    # the engine "crashes": its records are lost, the host objects stay
    net.dns_scope.cancel() if net.dns_scope else None
    assert c.reservation is not None
    c.reservation.close()
    # first pass: the network and one container are still alive
    report = await gc.collect_garbage(
        instance=lab.instance, root=lab.root, table=lab.table,
        live_links=[net.bridge, keep.endpoints[0].host_ifname], live_netns=[keep.netns],
        live_owners=["p6-keep-1"])
    assert report.links == [c.endpoints[0].host_ifname]
    assert report.netns == [c.netns]
    assert report.mappings == 1
    assert not report.table_removed
    state = await firewall.read_state(lab.table)
    assert state is not None
    assert [m.owner for m in state.mappings] == ["p6-keep-1"]
    # second pass: nothing is alive
    report = await gc.collect_garbage(instance=lab.instance, root=lab.root, table=lab.table)
    assert net.bridge in report.links
    assert report.table_removed
    assert keep.reservation is not None
    keep.reservation.close()
    lab.containers.clear()
    lab.nets.clear()
    await trio.lowlevel.checkpoint()
    assert _leftovers(lab, [net.gateway]) == []
    # running it again is harmless
    again = await gc.collect_garbage(instance=lab.instance, root=lab.root, table=lab.table)
    assert again.links == []
    assert again.netns == []
    assert not again.table_removed


async def test_shared_namespace_like_network_mode_service(lab: Lab) -> None:
    net = await lab.network("p7", "default")
    target = await lab.container("p7-db-1", [(net, [])])
    await lab.httpd(target, 8081, "shared")
    # a second container joining with network_mode: service:db gets the same path
    sidecar = target
    assert await connects(sidecar.netns, "127.0.0.1", 8081)
    r = await lab.run(sidecar, BUSYBOX, "wget", "-q", "-O", "-", "http://127.0.0.1:8081/")
    assert r.stdout == b"shared"


def _threads_outside_host_ns() -> list[str]:
    home = os.stat("/proc/self/ns/net")
    bad = []
    for task in os.listdir("/proc/self/task"):
        try:
            st = os.stat(f"/proc/self/task/{task}/ns/net")
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) != (home.st_dev, home.st_ino):
            bad.append(task)
    return bad


async def test_concurrent_setup_leaves_every_thread_in_the_host_namespace(lab: Lab) -> None:
    net = await lab.network("p8", "default")
    async with trio.open_nursery() as nursery:
        for i in range(12):
            nursery.start_soon(lab.container, f"p8-w-{i}", [(net, [])])
    assert len(lab.containers) == 12
    assert _threads_outside_host_ns() == []
    addrs = {str(c.addresses[net.key]) for c in lab.containers.values()}
    assert len(addrs) == 12
    first = lab.containers["p8-w-0"]
    for c in list(lab.containers.values())[1:4]:
        r = await lab.run(first, BUSYBOX, "ping", "-c", "1", "-W", "2",
                          str(c.addresses[net.key]))
        assert r.returncode == 0, r.stdout


async def test_udp_host_ip_binding_port_range_static_mac(
        lab: Lab, host_address: IPv4Address) -> None:
    from .conftest import ns_socket

    net = await lab.network("p9", "default")
    # a static address and MAC, as ipv4_address / mac_address ask
    path = await netns.create_netns(lab.root, names.netns_name(lab.instance, "p9-static"))
    lab.seen_veths.add(names.veth_name(lab.instance, "p9-static", net.key))
    static = net.subnet.network_address + 200
    eps = await links.attach(path, [links.EndpointSpec(
        net.bridge, names.veth_name(lab.instance, "p9-static", net.key), static,
        net.subnet.prefixlen, net.gateway, mac="02:42:ac:11:00:c8")])
    try:
        assert eps[0].mac == "02:42:ac:11:00:c8"
        r = await trio.run_process(["nsenter", f"--net={path}", "ip", "-o", "addr", "show",
                                    "eth0"], capture_stdout=True)
        assert f"{static}/{net.subnet.prefixlen}" in r.stdout.decode()
    finally:
        await links.detach([eps[0].host_ifname])
        await netns.remove_netns(path)

    # UDP, bound to 127.0.0.1 only, a two-port range mapped one to one
    c = await lab.container("p9-udp-1", [(net, [])], publish=ports.expand_ports(
        "udp", "5000-5001", None, "udp", "127.0.0.1"))
    assert c.reservation is not None
    got = [p.host_port for p in c.reservation.ports]
    sockets = [ns_socket(c.netns, socket.SOCK_DGRAM) for _ in (0, 1)]
    try:
        for i, s in enumerate(sockets):
            s.bind(("0.0.0.0", 5000 + i))

        def echo_once(s: socket.socket) -> None:
            data, addr = s.recvfrom(100)
            s.sendto(b"echo " + data, addr)

        def ask(ip: str, port: int) -> bytes | None:
            q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            q.settimeout(2)
            try:
                q.sendto(b"hi", (ip, port))
                return q.recv(100)
            except OSError:
                return None
            finally:
                q.close()

        for i, s in enumerate(sockets):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, echo_once, s)
                assert await trio.to_thread.run_sync(ask, "127.0.0.1", got[i]) == b"echo hi"
        # bound to 127.0.0.1: the host's other addresses do not forward it
        sockets[0].settimeout(1)

        def receives(s: socket.socket) -> bytes | None:
            try:
                return s.recvfrom(100)[0]
            except OSError:
                return None

        async with trio.open_nursery() as nursery:
            seen: list[bytes | None] = []

            async def listen() -> None:
                seen.append(await trio.to_thread.run_sync(receives, sockets[0]))

            nursery.start_soon(listen)
            assert await trio.to_thread.run_sync(ask, str(host_address), got[0]) is None
        assert seen == [None]
        # ...while 127.0.0.1 still does (the listener above was really listening)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, echo_once, sockets[0])
            assert await trio.to_thread.run_sync(ask, "127.0.0.1", got[0]) == b"echo hi"
    finally:
        for s in sockets:
            s.close()


async def test_pool_skips_what_the_host_routes(remote: Remote) -> None:
    from pycompose.network import ipam

    host = await trio.to_thread.run_sync(ipam.host_networks)
    mine = IPv4Network(f"{remote.host_address}/24", strict=False)
    assert any(h.network == mine and h.kind == "route" for h in host)
    pool = [ipam.AddressPool(IPv4Network(f"{mine.network_address}/23", strict=False), 24)]
    _, sub = ipam.allocate_subnet(ipam.IPAMState(), "x", pools=pool, avoid=host)
    assert not sub.subnet.overlaps(mine)
    with pytest.raises(ipam.SubnetOverlapError, match=f"overlaps route {mine}"):
        ipam.check_overlap({"x": mine}, host)
    # the caller's own bridges are left out when it asks
    names_seen = {h.ifname for h in host}
    ignored = await trio.to_thread.run_sync(ipam.host_networks, names_seen)
    assert ignored == []
