"""Network costs of pycompose on its own: ``net_setup_ms`` and ``dns_qps``.

``net_setup_ms``: for one container, the time from nothing to reachable:
network namespace + veth pair on an existing bridge + address + DNS record +
one published port (host port reserved, DNAT element added), the way the
engine does it (``links.create_and_attach``, ``firewall.publish``). One sample is
the median over a batch of containers on one bridge; the bridge, the
firewall table and the teardown are not timed. Needs root.

``dns_qps``: answers per second from the embedded DNS server (its own
process, one trio thread, on 127.0.0.1) to one client keeping 64 queries in
flight for a service name with three A records. Target: at least 5,000/s
(stated in the description: the harness's targets are upper bounds).
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import REPO, Context, Figure, Group, MeasureError, Target, Tool

BATCH, BATCH_QUICK = 20, 8
DNS_SECONDS, DNS_SECONDS_QUICK = 1.0, 0.4
WINDOW = 64


def _root_available(ctx: Context) -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, bridges, nftables)"
    try:
        import pycompose.network  # noqa: F401
    except ImportError:
        return "pycompose is not installed in this interpreter"
    return None


TOOLS = [Tool("pycompose", _root_available)]


# --- net_setup_ms -------------------------------------------------------------------

def _net_setup_batch(n: int) -> list[float]:
    import trio

    from pycompose.network import bridge, dns, firewall, ipam, links, names, netns, ports

    tag = secrets.token_hex(3)
    instance, table = f"bench{tag}", f"pycompose_bench{tag}"
    alias = names.link_alias(instance)

    async def main() -> list[float]:
        root = Path(tempfile.mkdtemp(prefix="pycompose-netbench-"))
        host = await trio.to_thread.run_sync(ipam.host_networks)
        state, sub = ipam.allocate_subnet(ipam.IPAMState(), "bench_default", avoid=host)
        br = names.bridge_name(instance, "bench", "default")
        records = dns.Records(local_subnets=[sub.subnet])
        times: list[float] = []
        made: list[tuple[Path, str, ports.Reservation]] = []
        try:
            handle = await bridge.create_bridge(
                bridge.BridgeSpec(br, sub.subnet, sub.gateway, alias=alias))
            await firewall.setup_network(table, firewall.FirewallNetwork(br, sub.subnet))
            for i in range(n):
                name = f"bench-web-{i}"
                t0 = time.perf_counter()
                state, addr = ipam.allocate_address(state, "bench_default", name)
                veth = names.veth_name(instance, name, "bench_default")
                path, _ = await links.create_and_attach(
                    root, names.netns_name(instance, name), [links.EndpointSpec(
                        br, veth, addr, sub.subnet.prefixlen, sub.gateway,
                        bridge_index=handle.index)])
                records.add(name, [name, "web"], addr)
                res = ports.reserve([ports.PortRequest("web", 80)])
                await firewall.publish(table, [firewall.PortMapping(
                    "tcp", res.ports[0].host_port, addr, 80, owner=name)])
                times.append(time.perf_counter() - t0)
                made.append((path, veth, res))
        finally:
            for path, veth, res in made:
                res.close()
                await links.detach([veth])
                await netns.remove_netns(path)
            await firewall.teardown_network(table, br, sub.subnet)
            await bridge.delete_bridge(br)
            for d in (root / "netns", root):  # empty by now; rmdir refuses otherwise
                if d.exists():
                    d.rmdir()
        return times

    return trio.run(main)


def _net_setup(ctx: Context) -> float:
    times = _net_setup_batch(BATCH_QUICK if ctx.quick else BATCH)
    return statistics.median(times) * 1000


# --- dns_qps ----------------------------------------------------------------------------

_SERVER = """
import sys, trio
from ipaddress import IPv4Address
from pycompose.network import dns
async def main():
    r = dns.Records()
    for i in range(3):
        r.add(f"c{i}", ["web", f"bench-web-{i}"], IPv4Address(f"172.30.0.{i + 2}"))
    async with trio.open_nursery() as n:
        addr = await n.start(lambda task_status: dns.serve_dns(
            r, IPv4Address("127.0.0.1"), port=0, resolv_conf=None, task_status=task_status))
        print(addr[1], flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin
        n.cancel_scope.cancel()
trio.run(main)
"""


def _dns_qps(ctx: Context) -> float:
    from pycompose.network import dnswire as w

    proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=REPO, env={**ctx.env})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            raise MeasureError("the DNS server did not start")
        port = int(line)
        queries = [w.build_query("web", w.TYPE_A, i) for i in range(WINDOW)]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        for q in queries:
            s.send(q)
        answers = 0
        duration = DNS_SECONDS_QUICK if ctx.quick else DNS_SECONDS
        start = time.perf_counter()
        end = start + duration
        while (now := time.perf_counter()) < end:
            ready, _, _ = select.select([s], [], [], 0.2)
            if not ready:  # lost packets: refill the window
                for q in queries:
                    s.send(q)
                continue
            while True:
                try:
                    data = s.recv(512)
                except BlockingIOError:
                    break
                if len(data) < 12 or data[3] & 0xF != 0 or data[7] != 3:
                    raise MeasureError("wrong answer from the DNS server")
                answers += 1
                s.send(data[:2] + queries[0][2:])
        elapsed = now - start
        s.close()
        return answers / elapsed
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


GROUP = Group(
    name="network",
    tools=TOOLS,
    figures=[
        Figure(
            name="net_setup_ms",
            unit="ms",
            description="netns + veth + address + DNS record + 1 published port, one container",
            measures={"pycompose": _net_setup},
            target=Target("pycompose", value=10.0),
        ),
        Figure(
            name="dns_qps",
            unit="/s",
            description="embedded DNS answers per second, one client, loopback",
            measures={"pycompose": _dns_qps},
            higher_is_better=True,
            target=Target("pycompose", value=5000.0, at_least=True),
        ),
    ],
)
