"""The embedded DNS server of one network, and its record table.

Each network runs one server, in the host namespace, bound to the bridge's
gateway address (UDP, and TCP), started with the ``nursery.start`` protocol::

    records = Records(search=("example.com",))
    records.add("c1", ["web", "proj-web-1", "alias1"], IPv4Address("172.18.0.2"))
    addr = await nursery.start(serve_dns, records, IPv4Address("172.18.0.1"))

Answers: A records for the table's names (several per name, rotated per
query: scaled services), an empty NOERROR for AAAA/other types of a known
name, PTR for the table's addresses. Names that belong to the stack — a
single label, possibly followed by one of the ``search`` domains — are
answered here and never forwarded: unknown single labels get NXDOMAIN (a
known name followed by a search domain is answered; an unknown one may be a
real host of that domain and is forwarded). Reverse lookups inside
``local_subnets`` are answered here too. Everything else is relayed, as raw bytes,
to the nameservers of the host's resolv.conf (re-read when it changes).

Records may be restricted to one client address (``visible_to``): that is
how a ``links`` alias is seen only by the container that declares it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address
from pathlib import Path
from typing import TypeVar

import trio

from . import dnswire as w
from .errors import DNSError

__all__ = ["Records", "read_nameservers", "serve_dns"]

TTL = 60
UPSTREAM_TIMEOUT = 2.0
MAX_FORWARDS = 256


@dataclass(frozen=True)
class _Entry:
    owner: str
    name: str
    address: IPv4Address
    visible_to: IPv4Address | None


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


K = TypeVar("K")


def _drop(index: dict[K, list[_Entry]], key: K, entry: _Entry) -> None:
    lst = index[key]
    lst.remove(entry)
    if not lst:
        del index[key]


class Records:
    """Names -> addresses for one network. Change it at any time; the server reads it live."""

    def __init__(self, search: Iterable[str] = (), local_subnets: Iterable[IPv4Network] = ()):
        self.search = tuple(_norm(s) for s in search if _norm(s))
        self.local_subnets = tuple(local_subnets)
        # indexes kept up to date on every change (no full rebuild: O(names of one owner))
        self._by_owner: dict[str, list[_Entry]] = {}
        self._by_name: dict[str, list[_Entry]] = {}
        self._by_address: dict[IPv4Address, list[_Entry]] = {}
        self._rr = itertools.count()
        #: per-container ``dns:`` servers (client address -> nameservers)
        self.client_upstreams: dict[IPv4Address, list[str]] = {}

    def add(self, owner: str, names: Iterable[str], address: IPv4Address, *,
            visible_to: IPv4Address | None = None) -> None:
        """Give ``names`` the address ``address`` (owned by ``owner``, e.g. a container id).

        The first public name added for an address answers its PTR query.
        """
        mine = self._by_owner.setdefault(owner, [])
        for n in names:
            n = _norm(n)
            if not n:
                continue
            e = _Entry(owner, n, IPv4Address(address), visible_to)
            if e in mine:
                continue
            mine.append(e)
            self._by_name.setdefault(e.name, []).append(e)
            self._by_address.setdefault(e.address, []).append(e)

    def remove(self, owner: str) -> None:
        """Drop every record of ``owner`` (its container stopped or left the network)."""
        for e in self._by_owner.pop(owner, []):
            _drop(self._by_name, e.name, e)
            _drop(self._by_address, e.address, e)

    def owners(self) -> set[str]:
        return set(self._by_owner)

    def _candidates(self, name: str) -> Iterable[str]:
        yield name
        for s in self.search:
            if name.endswith("." + s):
                yield name[: -len(s) - 1]

    def lookup(self, name: str, client: IPv4Address | None = None) -> list[IPv4Address] | None:
        """Addresses for ``name`` as seen by ``client``, rotated; [] = known stack name with
        no address; None = not a stack name (forward it)."""
        name = _norm(name)
        for cand in self._candidates(name):
            entries = self._by_name.get(cand)
            if entries:
                private = [e.address for e in entries if e.visible_to == client and client]
                addrs = private or [e.address for e in entries if e.visible_to is None]
                addrs = list(dict.fromkeys(addrs))
                if addrs:
                    k = next(self._rr) % len(addrs)
                    return addrs[k:] + addrs[:k]
        if "." not in name:
            return []
        # "x.<search domain>" is answered only when x is a stack name: otherwise it may
        # well be a real host of that domain (intranet.corp.example), so forward it
        return None

    def reverse(self, address: IPv4Address) -> str | None:
        for e in self._by_address.get(address, ()):
            if e.visible_to is None:
                return e.name
        return None

    def is_local_address(self, address: IPv4Address) -> bool:
        return any(address in n for n in self.local_subnets)


def _ptr_address(name: str) -> IPv4Address | None:
    suffix = ".in-addr.arpa"
    if not name.endswith(suffix):
        return None
    parts = name[: -len(suffix)].split(".")
    if len(parts) != 4:
        return None
    try:
        return IPv4Address(".".join(reversed(parts)))
    except ValueError:
        return None


def answer_locally(records: Records, q: w.Query, client: IPv4Address | None,
                   max_size: int = 65535) -> bytes | None:
    """The response for ``q`` if the table decides it, else None (forward)."""
    if q.opcode != 0:
        return w.build_response(q, w.RCODE_NOTIMP)
    if q.qclass not in (w.CLASS_IN, 255):
        return None
    if q.qtype == w.TYPE_PTR:
        addr = _ptr_address(q.name)
        if addr is None:
            return None
        host = records.reverse(addr)
        if host is not None:
            return w.build_response(q, answers=[(w.TYPE_PTR, TTL, w.encode_name(host))])
        if records.is_local_address(addr):
            return w.build_response(q, w.RCODE_NXDOMAIN)
        return None
    addrs = records.lookup(q.name, client)
    if addrs is None:
        return None
    if not addrs:
        return w.build_response(q, w.RCODE_NXDOMAIN)
    if q.qtype in (w.TYPE_A, w.TYPE_ANY):
        return w.build_response(q, answers=[(w.TYPE_A, TTL, a.packed) for a in addrs],
                                max_size=max_size)
    return w.build_response(q)  # known name, no record of that type: NODATA


def read_nameservers(path: Path) -> list[str]:
    """``nameserver`` lines of a resolv.conf (missing file: none)."""
    servers = []
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                ip_address(parts[1].split("%")[0])
            except ValueError:
                continue
            servers.append(parts[1])
    return servers


class _Upstreams:
    def __init__(self, records: Records, resolv_conf: Path | None, port: int,
                 servers: Sequence[str] | None, forward: bool):
        self.records, self.forward = records, forward
        self.path, self.port = resolv_conf, port
        self._fixed = list(servers) if servers is not None else None
        self._mtime: float | None = None
        self._servers: list[str] = []

    def get(self, client: IPv4Address | None = None) -> list[str]:
        if not self.forward:
            return []
        if client is not None and client in self.records.client_upstreams:
            return self.records.client_upstreams[client]
        if self._fixed is not None:
            return self._fixed
        if self.path is None:
            return []
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return []
        if mtime != self._mtime:
            self._servers = read_nameservers(self.path)
            self._mtime = mtime
        return self._servers


async def _forward_udp(packet: bytes, upstreams: _Upstreams,
                       client: IPv4Address | None) -> bytes | None:
    qid = packet[:2]
    for server in upstreams.get(client):
        family = trio.socket.AF_INET6 if ":" in server else trio.socket.AF_INET
        with trio.socket.socket(family, trio.socket.SOCK_DGRAM) as s:
            try:
                await s.connect((server, upstreams.port))
                await s.send(packet)
                with trio.move_on_after(UPSTREAM_TIMEOUT):
                    while True:
                        reply = await s.recv(65535)
                        if reply[:2] == qid:
                            return reply
            except OSError:
                continue
    return None


async def _forward_tcp(packet: bytes, upstreams: _Upstreams,
                       client: IPv4Address | None) -> bytes | None:
    for server in upstreams.get(client):
        try:
            with trio.move_on_after(UPSTREAM_TIMEOUT):
                stream = await trio.open_tcp_stream(server, upstreams.port)
                async with stream:
                    await stream.send_all(struct.pack("!H", len(packet)) + packet)
                    return await _read_framed(stream)
        except (OSError, trio.BrokenResourceError, EOFError):
            continue
    return None


async def _read_exact(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


async def _read_framed(stream: trio.abc.ReceiveStream) -> bytes:
    (n,) = struct.unpack("!H", await _read_exact(stream, 2))
    return await _read_exact(stream, n)


def _truncated(reply: bytes) -> bool:
    return len(reply) >= 4 and bool(reply[2] & (w.FLAG_TC >> 8))


def _servfail(packet: bytes) -> bytes | None:
    try:
        return w.build_response(w.parse_query(packet), w.RCODE_SERVFAIL, authoritative=False)
    except w.WireError:
        return None


def _handle(records: Records, packet: bytes, client: IPv4Address | None,
            udp: bool = True) -> bytes | None:
    """Local answer, an error answer, or None = forward the packet as it is."""
    try:
        q = w.parse_query(packet)
    except w.WireError:
        if len(packet) >= 12:
            qid, flags = struct.unpack_from("!HH", packet)
            if not flags & w.FLAG_QR:
                return struct.pack("!HHHHHH", qid, w.FLAG_QR | w.RCODE_FORMERR, 0, 0, 0, 0)
        return None if len(packet) >= 12 else b""
    return answer_locally(records, q, client, q.udp_size if udp else 65535)


def _client_ip(addr: object) -> IPv4Address | None:
    try:
        ip = ip_address(addr[0])  # type: ignore[index]
    except (ValueError, TypeError, IndexError):
        return None
    if isinstance(ip, IPv6Address):
        return ip.ipv4_mapped
    return ip


async def serve_dns(
    records: Records,
    address: IPv4Address,
    *,
    port: int = 53,
    resolv_conf: Path | None = Path("/etc/resolv.conf"),
    upstream_port: int = 53,
    upstreams: Sequence[str] | None = None,
    tcp: bool = True,
    forward: bool = True,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``records`` on ``address:port`` until cancelled.

    ``task_status.started((address, port))`` reports the bound address (with the
    real port when ``port`` is 0). Upstreams are the ``nameserver`` lines of
    ``resolv_conf`` (at ``upstream_port``), or the explicit ``upstreams``;
    a client with its own ``dns:`` servers uses ``records.client_upstreams``.
    ``forward=False`` (internal networks) answers SERVFAIL instead of forwarding.
    """
    ups = _Upstreams(records, resolv_conf, upstream_port, upstreams, forward)
    udp, listener = await _bind(str(address), port, tcp)
    bound_port = udp.getsockname()[1]
    try:
        async with trio.open_nursery() as nursery:
            if listener is not None:
                nursery.start_soon(_serve_tcp, records, listener, ups)
            task_status.started((str(address), bound_port))
            await _serve_udp(records, udp, ups, nursery)
    finally:
        udp.close()
        if listener is not None:
            with trio.CancelScope(shield=True):
                await listener.aclose()


async def _bind(address: str, port: int, tcp: bool
                ) -> tuple[trio.socket.SocketType, trio.SocketListener | None]:
    """The UDP socket, and the TCP listener on the same port when ``tcp``.

    With ``port`` 0 the kernel picks the UDP port, and that number may be taken
    for TCP: then another UDP port is tried (a few times), so the two always match.
    """
    for attempt in range(8):
        udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        try:
            await udp.bind((address, port))
            if not tcp:
                return udp, None
            ls = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
            try:
                ls.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
                await ls.bind((address, udp.getsockname()[1]))
                ls.listen(64)
            except BaseException:
                ls.close()
                raise
            return udp, trio.SocketListener(ls)
        except OSError as e:
            udp.close()
            if port == 0 and e.errno == errno.EADDRINUSE and attempt < 7:
                continue
            what = "in use" if e.errno == errno.EADDRINUSE else e.strerror
            raise DNSError(f"cannot serve DNS on {address}:{port}: {what}") from None
        except BaseException:
            udp.close()
            raise
    raise AssertionError("unreachable")


async def _serve_udp(records: Records, sock: trio.socket.SocketType, ups: _Upstreams,
                     nursery: trio.Nursery) -> None:
    inflight = 0  # forwarded queries waiting for upstream; bounded, excess gets SERVFAIL

    async def forward(packet: bytes, addr: tuple[str, int]) -> None:
        nonlocal inflight
        try:
            reply = await _forward_udp(packet, ups, _client_ip(addr)) or _servfail(packet)
            if reply:
                await sock.sendto(reply, addr)
        except OSError:
            pass
        finally:
            inflight -= 1

    while True:
        try:
            packet, addr = await sock.recvfrom(4096)
        except OSError as e:
            if e.errno in (errno.ECONNREFUSED, errno.EAGAIN):
                continue
            raise
        reply = _handle(records, packet, _client_ip(addr))
        if reply is None:
            if inflight >= MAX_FORWARDS:
                reply = _servfail(packet)
            else:
                inflight += 1
                nursery.start_soon(forward, packet, addr)
                continue
        if reply:
            with contextlib.suppress(OSError):
                await sock.sendto(reply, addr)


async def _serve_tcp(records: Records, listener: trio.SocketListener, ups: _Upstreams) -> None:
    async def conn(stream: trio.SocketStream) -> None:
        client = _client_ip(stream.socket.getpeername())
        async with stream:
            try:
                while True:
                    with trio.move_on_after(10) as idle:
                        packet = await _read_framed(stream)
                    if idle.cancelled_caught:
                        return
                    reply = _handle(records, packet, client, udp=False)
                    if reply is None:
                        reply = await _forward_udp(packet, ups, client)
                        if reply is None or _truncated(reply):
                            reply = await _forward_tcp(packet, ups, client)
                        reply = reply or _servfail(packet)
                    if not reply:
                        return
                    await stream.send_all(struct.pack("!H", len(reply)) + reply)
            except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return

    await trio.serve_listeners(conn, [listener])
