"""The embedded DNS server on loopback, with a fake upstream (no root needed).

Rules: loopback only, port 0, a fail_after ceiling on every exchange.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N
from pathlib import Path

import pytest
import trio

from pycompose.network import dns
from pycompose.network import dnswire as w
from pycompose.network.errors import DNSError

LOOP = A("127.0.0.1")


class FakeUpstream:
    """Answers every A query with 192.0.2.99 and records the names it was asked."""

    def __init__(self, ip: str = "127.0.0.1", port: int = 0) -> None:
        self.asked: list[str] = []
        self.ip, self.port = ip, port

    async def serve(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as s:
            await s.bind((self.ip, self.port))
            self.port = s.getsockname()[1]
            task_status.started(self.port)
            while True:
                data, addr = await s.recvfrom(4096)
                q = w.parse_query(data)
                self.asked.append(q.name)
                await s.sendto(w.build_response(q, answers=[(w.TYPE_A, 5, A("192.0.2.99").packed)],
                                                authoritative=False), addr)


async def ask(addr: tuple[str, int], name: str, qtype: int = w.TYPE_A) -> w.Message:
    with trio.fail_after(5), trio.socket.socket(type=trio.socket.SOCK_DGRAM) as s:
        await s.connect(addr)
        await s.send(w.build_query(name, qtype, 77))
        return w.parse_message(await s.recv(4096))


@pytest.fixture
async def served(nursery: trio.Nursery, tmp_path: Path) -> tuple[
        dns.Records, tuple[str, int], FakeUpstream]:
    up = FakeUpstream()
    await nursery.start(up.serve)
    conf = tmp_path / "resolv.conf"
    conf.write_text("search corp.test\nnameserver 127.0.0.1\n")
    records = dns.Records(search=["corp.test"], local_subnets=[N("172.30.0.0/16")])
    addr = await nursery.start(lambda task_status: dns.serve_dns(
        records, LOOP, port=0, resolv_conf=conf, upstream_port=up.port, task_status=task_status))
    return records, addr, up


def addrs(m: w.Message) -> list[object]:
    return [a[3] for a in m.answers]


async def test_names_scaled_round_robin_and_removal(served: tuple[dns.Records, tuple[str, int],
                                                                  FakeUpstream]) -> None:
    records, addr, up = served
    for i in range(3):
        records.add(f"c{i}", [f"p-web-{i + 1}", "web"], A(f"172.30.0.{i + 2}"))
    first = await ask(addr, "web")
    assert first.rcode == 0
    assert len(first.answers) == 3
    second = await ask(addr, "web")
    assert set(addrs(first)) == set(addrs(second))
    assert addrs(first) != addrs(second)
    assert addrs(await ask(addr, "p-web-2")) == [A("172.30.0.3")]
    assert addrs(await ask(addr, "web.corp.test"))  # search suffix stripped
    assert (await ask(addr, "web", w.TYPE_AAAA)).answers == ()  # NODATA, not NXDOMAIN
    ptr = await ask(addr, "3.0.30.172.in-addr.arpa", w.TYPE_PTR)
    assert addrs(ptr) == ["p-web-2"]
    records.remove("c1")
    assert A("172.30.0.3") not in addrs(await ask(addr, "web"))
    assert (await ask(addr, "p-web-2")).rcode == w.RCODE_NXDOMAIN
    assert up.asked == []


async def test_unknown_stack_names_are_not_leaked_others_forwarded(
        served: tuple[dns.Records, tuple[str, int], FakeUpstream]) -> None:
    records, addr, up = served
    assert (await ask(addr, "nosuch")).rcode == w.RCODE_NXDOMAIN
    assert (await ask(addr, "9.9.30.172.in-addr.arpa", w.TYPE_PTR)).rcode == w.RCODE_NXDOMAIN
    m = await ask(addr, "www.example.org")
    assert addrs(m) == [A("192.0.2.99")]
    assert up.asked == ["www.example.org"]
    # a real host of the search domain is not shadowed by the stack
    assert addrs(await ask(addr, "intranet.corp.test")) == [A("192.0.2.99")]


async def test_private_link_alias_only_for_its_client(
        served: tuple[dns.Records, tuple[str, int], FakeUpstream]) -> None:
    records, addr, _ = served
    records.add("c9", ["database"], A("172.30.0.9"), visible_to=A("127.0.0.1"))
    assert addrs(await ask(addr, "database")) == [A("172.30.0.9")]
    records.remove("c9")
    records.add("c9", ["database"], A("172.30.0.9"), visible_to=A("172.30.0.50"))
    assert (await ask(addr, "database")).rcode == w.RCODE_NXDOMAIN


async def test_a_container_with_its_own_dns_servers_uses_them(
        served: tuple[dns.Records, tuple[str, int], FakeUpstream], nursery: trio.Nursery) -> None:
    records, addr, up = served
    own = FakeUpstream("127.0.0.2", up.port)  # same port, another loopback address
    await nursery.start(own.serve)
    records.client_upstreams[A("127.0.0.1")] = ["127.0.0.2"]
    assert addrs(await ask(addr, "www.example.org")) == [A("192.0.2.99")]
    assert own.asked == ["www.example.org"]
    assert up.asked == []


async def test_tcp_and_formerr(served: tuple[dns.Records, tuple[str, int], FakeUpstream]) -> None:
    records, addr, _ = served
    records.add("c1", ["db"], A("172.30.0.7"))
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(*addr)
        async with stream:
            for name, want in (("db", [A("172.30.0.7")]), ("x.example.org", [A("192.0.2.99")])):
                q = w.build_query(name, w.TYPE_A, 5)
                await stream.send_all(struct.pack("!H", len(q)) + q)
                n = struct.unpack("!H", await stream.receive_some(2))[0]
                data = b""
                while len(data) < n:
                    data += await stream.receive_some(n - len(data))
                assert addrs(w.parse_message(data)) == want
        with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as s:
            await s.connect(addr)
            await s.send(struct.pack("!HHHHHH", 9, 0, 2, 0, 0, 0))  # two questions, none there
            assert w.parse_message(await s.recv(512)).rcode == w.RCODE_FORMERR


async def test_internal_network_does_not_forward(nursery: trio.Nursery) -> None:
    records = dns.Records()
    addr = await nursery.start(lambda task_status: dns.serve_dns(
        records, LOOP, port=0, upstreams=["127.0.0.1"], forward=False, task_status=task_status))
    assert (await ask(addr, "www.example.org")).rcode == w.RCODE_SERVFAIL


async def test_bind_failure_is_a_dns_error(nursery: trio.Nursery) -> None:
    records = dns.Records()
    addr = await nursery.start(lambda task_status: dns.serve_dns(
        records, LOOP, port=0, resolv_conf=None, task_status=task_status))
    with pytest.raises(DNSError, match="in use"):
        await dns.serve_dns(records, LOOP, port=addr[1], resolv_conf=None)


async def test_big_answers_truncate_over_udp_and_fit_over_tcp(
        served: tuple[dns.Records, tuple[str, int], FakeUpstream]) -> None:
    records, addr, _ = served
    for i in range(60):  # 60 replicas: 16 bytes each, more than 512 bytes
        records.add(f"c{i}", ["big"], A(f"172.30.1.{i + 2}"))
    m = await ask(addr, "big")
    assert m.flags & w.FLAG_TC
    assert 0 < len(m.answers) < 60
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(*addr)
        async with stream:
            q = w.build_query("big", w.TYPE_A, 5)
            await stream.send_all(struct.pack("!H", len(q)) + q)
            n = struct.unpack("!H", await stream.receive_some(2))[0]
            data = b""
            while len(data) < n:
                data += await stream.receive_some(n - len(data))
    full = w.parse_message(data)
    assert len(full.answers) == 60
    assert not full.flags & w.FLAG_TC


def test_edns_payload_size_is_read() -> None:
    q = w.build_query("x", w.TYPE_A, 1)
    q = q[:11] + b"\x01" + q[12:]  # ARCOUNT = 1
    q += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
    assert w.parse_query(q).udp_size == 1232
    assert w.parse_query(w.build_query("x")).udp_size == 512
