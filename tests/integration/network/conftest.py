"""A small network lab for the integration tests: real bridges, namespaces, nftables.

:class:`Lab` wires the library the way the engine will: IPAM -> bridge ->
firewall -> DNS server per network; netns -> veth -> DNS records -> published
ports per "container" (a bare namespace; processes are run in it with
``nsenter --net``). Everything carries the run's tag; the finaliser tears
everything down (and runs gc) even when a test fails.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
import trio

from pycompose.network import (
    bridge,
    dns,
    firewall,
    gc,
    hostsfiles,
    ipam,
    links,
    names,
    netns,
    ports,
)
from pycompose.network import dnswire as w
from pycompose.network._netlink import in_netns

BUSYBOX = "/bin/busybox"
_counter = itertools.count()


class FakeUpstream:
    """Stands in for the host's resolvers: answers A with 192.0.2.99, remembers names."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def serve(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as s:
            await s.bind(("127.0.0.1", 0))
            task_status.started(s.getsockname()[1])
            while True:
                data, addr = await s.recvfrom(4096)
                q = w.parse_query(data)
                self.asked.append(q.name)
                ans = [(w.TYPE_A, 5, IPv4Address("192.0.2.99").packed)] if q.qtype == 1 else []
                await s.sendto(w.build_response(q, answers=ans, authoritative=False), addr)


@dataclass
class LabNet:
    key: str
    bridge: str
    subnet: IPv4Network
    gateway: IPv4Address
    internal: bool
    records: dns.Records
    dns_scope: trio.CancelScope | None = None


@dataclass
class LabContainer:
    name: str
    netns: Path
    endpoints: list[links.Endpoint]
    addresses: dict[str, IPv4Address]
    etc: Path
    reservation: ports.Reservation | None = None
    mappings: list[firewall.PortMapping] = field(default_factory=list)


class Lab:
    def __init__(self, run_id: str, root: Path, nursery: trio.Nursery, tmp: Path) -> None:
        n = next(_counter)
        self.instance = f"t{run_id}{n}"
        self.table = f"pycompose_{run_id}_{n}"
        self.alias = names.link_alias(self.instance)
        self.root, self.nursery, self.tmp = root, nursery, tmp
        self.state = ipam.IPAMState()
        self.nets: dict[str, LabNet] = {}
        self.seen_networks: set[str] = set()  # every network/veth ever made, for leak checks
        self.seen_veths: set[str] = set()
        self.containers: dict[str, LabContainer] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.upstream = FakeUpstream()
        self.upstream_port = 0
        self.resolv_conf = tmp / "host-resolv.conf"
        self.resolv_conf.write_text("nameserver 127.0.0.1\n")

    async def start(self) -> None:
        self.upstream_port = await self.nursery.start(self.upstream.serve)

    # --- networks --------------------------------------------------------------------
    async def network(self, project: str, name: str, *, internal: bool = False) -> LabNet:
        key = f"{project}_{name}"
        br = names.bridge_name(self.instance, project, name)
        host = await trio.to_thread.run_sync(ipam.host_networks)
        self.state, sub = ipam.allocate_subnet(self.state, key, avoid=host)
        await bridge.create_bridge(bridge.BridgeSpec(br, sub.subnet, sub.gateway, alias=self.alias))
        await firewall.setup_network(self.table, firewall.FirewallNetwork(br, sub.subnet, internal))
        net = LabNet(key, br, sub.subnet, sub.gateway, internal,
                     dns.Records(local_subnets=[sub.subnet]))
        self.nets[key] = net
        self.seen_networks.add(key)

        async def run_dns(task_status: trio.TaskStatus[tuple[str, int]]) -> None:
            with trio.CancelScope() as scope:
                net.dns_scope = scope
                await dns.serve_dns(net.records, sub.gateway, resolv_conf=self.resolv_conf,
                                    upstream_port=self.upstream_port, forward=not internal,
                                    task_status=task_status)

        await self.nursery.start(run_dns)
        return net

    async def remove_network(self, net: LabNet) -> None:
        if net.dns_scope is not None:
            net.dns_scope.cancel()
        await firewall.teardown_network(self.table, net.bridge, net.subnet)
        await bridge.delete_bridge(net.bridge)
        self.state = ipam.release_subnet(self.state, net.key)
        self.nets.pop(net.key, None)

    # --- containers ------------------------------------------------------------------
    async def container(
        self,
        name: str,
        nets: Sequence[tuple[LabNet, Sequence[str]]],
        *,
        service: str | None = None,
        publish: Sequence[ports.PortRequest] = (),
    ) -> LabContainer:
        specs, addrs = [], {}
        for net, _aliases in nets:
            self.state, addr = ipam.allocate_address(self.state, net.key, name)
            addrs[net.key] = addr
            specs.append(links.EndpointSpec(
                bridge=net.bridge, host_ifname=names.veth_name(self.instance, name, net.key),
                address=addr, prefixlen=net.subnet.prefixlen, gateway=net.gateway,
                internal=net.internal))
        self.seen_veths |= {s.host_ifname for s in specs}
        path, eps = await links.create_and_attach(
            self.root, names.netns_name(self.instance, name), specs)
        for net, aliases in nets:
            net.records.add(name, [name, *([service] if service else []), *aliases],
                            addrs[net.key])
        etc = self.tmp / f"etc-{name}"
        etc.mkdir()
        first = nets[0][0] if nets else None
        (etc / "resolv.conf").write_text(hostsfiles.render_resolv_conf(
            [str(first.gateway)] if first else [], host_text=self.resolv_conf.read_text()))
        (etc / "hosts").write_text(hostsfiles.render_hosts(
            name, addrs[first.key] if first else None, gateway=first.gateway if first else None))
        c = LabContainer(name, path, eps, addrs, etc)
        self.containers[name] = c
        if publish:
            c.reservation = ports.reserve(publish)
            ip = addrs[nets[0][0].key]
            c.mappings = [firewall.PortMapping(p.request.protocol, p.host_port, ip,
                                               p.request.container_port, p.request.host_ip,
                                               owner=name) for p in c.reservation.ports]
            await firewall.publish(self.table, c.mappings)
        return c

    async def remove_container(self, c: LabContainer) -> None:
        if c.mappings:
            await firewall.unpublish(self.table, c.mappings)
        if c.reservation:
            c.reservation.close()
        for net in self.nets.values():
            net.records.remove(c.name)
            self.state = ipam.release_address(self.state, net.key, c.name)
        await links.detach([e.host_ifname for e in c.endpoints])
        await netns.remove_netns(c.netns)
        self.containers.pop(c.name, None)

    # --- processes in a container ----------------------------------------------------
    def _argv(self, c: LabContainer, argv: Sequence[str]) -> list[str]:
        # private mount namespace so the container's resolv.conf/hosts are the ones used
        script = (f"mount --bind {c.etc}/resolv.conf /etc/resolv.conf && "
                  f"mount --bind {c.etc}/hosts /etc/hosts && exec \"$@\"")
        return ["nsenter", f"--net={c.netns}", "unshare", "-m", "--propagation", "private",
                "sh", "-c", script, "sh", *argv]

    async def run(self, c: LabContainer, *argv: str) -> subprocess.CompletedProcess[bytes]:
        with trio.fail_after(20):
            return await trio.run_process(self._argv(c, argv), capture_stdout=True,
                                          capture_stderr=True, check=False)

    def spawn(self, c: LabContainer, *argv: str) -> subprocess.Popen[bytes]:
        return self.spawn_argv(self._argv(c, argv))

    def spawn_argv(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start a process of the test's own; the finaliser ends it by its PID."""
        p = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    async def httpd(self, c: LabContainer, port: int, body: str) -> None:
        www = self.tmp / f"www-{c.name}-{port}"
        www.mkdir()
        (www / "index.html").write_text(body)
        self.spawn(c, BUSYBOX, "httpd", "-f", "-p", f"0.0.0.0:{port}", "-h", str(www))
        await wait_listening(c.netns, port)

    async def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
        for c in list(self.containers.values()):
            await self.remove_container(c)
        for net in list(self.nets.values()):
            await self.remove_network(net)
        await gc.collect_garbage(instance=self.instance, root=self.root, table=self.table)


def ns_socket(path: Path | None, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside the namespace at ``path`` (host namespace if None)."""
    if path is None:
        return socket.socket(socket.AF_INET, kind)
    with in_netns(str(path)):
        return socket.socket(socket.AF_INET, kind)


def _connect(path: Path | None, ip: str, port: int, timeout: float) -> bool:
    s = ns_socket(path)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


async def connects(path: Path | None, ip: str, port: int, *, wait_s: float = 2) -> bool:
    """Does a TCP connect from the namespace (or the host) to ip:port succeed?"""
    return await trio.to_thread.run_sync(_connect, path, ip, port, wait_s)


async def wait_listening(path: Path | None, port: int) -> None:
    """Wait until a process we started (busybox httpd) listens on 127.0.0.1:port there.

    It is an external program with no readiness signal, hence bounded retries.
    """
    with trio.fail_after(10):
        while not await connects(path, "127.0.0.1", port, wait_s=1):  # noqa: ASYNC110
            await trio.sleep(0.02)


def _http_get(path: Path | None, ip: str, port: int) -> bytes:
    s = ns_socket(path)
    s.settimeout(5)
    try:
        s.connect((ip, port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data
    finally:
        s.close()


async def http_get(path: Path | None, ip: str, port: int) -> bytes:
    return await trio.to_thread.run_sync(_http_get, path, ip, port)


@pytest.fixture
async def lab(run_id: str, state_root: Path, nursery: trio.Nursery,
              tmp_path: Path) -> AsyncIterator[Lab]:
    lab = Lab(run_id, state_root, nursery, tmp_path)
    await lab.start()
    try:
        yield lab
    finally:
        with trio.CancelScope(shield=True):
            await lab.cleanup()
