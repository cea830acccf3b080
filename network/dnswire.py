"""DNS messages, by hand: just what the embedded server and its tests need (RFC 1035).

Why not dnspython: the server answers A/AAAA/PTR for a table of names and
relays everything else upstream as raw bytes; that needs header + question
parsing and answer building (~150 lines), while building dnspython message
objects per query would cost several times the ~20 µs budget of a
5,000-answers/s server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "CLASS_IN",
    "FLAG_QR",
    "FLAG_RD",
    "Message",
    "Query",
    "RCODE_FORMERR",
    "RCODE_NOERROR",
    "RCODE_NOTIMP",
    "RCODE_NXDOMAIN",
    "RCODE_REFUSED",
    "RCODE_SERVFAIL",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_ANY",
    "TYPE_PTR",
    "WireError",
    "build_query",
    "build_response",
    "decode_name",
    "encode_name",
    "parse_message",
    "parse_query",
]

TYPE_A, TYPE_PTR, TYPE_AAAA, TYPE_OPT, TYPE_ANY = 1, 12, 28, 41, 255
CLASS_IN = 1
FLAG_QR, FLAG_AA, FLAG_TC, FLAG_RD, FLAG_RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN = 0, 1, 2, 3
RCODE_NOTIMP, RCODE_REFUSED = 4, 5

_HEADER = struct.Struct("!HHHHHH")


class WireError(ValueError):
    """A malformed DNS message."""


@dataclass(frozen=True)
class Query:
    """The parts of a query the server looks at."""

    id: int
    flags: int
    name: str  # lower case, no trailing dot ("" for the root)
    qtype: int
    qclass: int
    question: bytes  # the raw question section, echoed in the answer
    udp_size: int = 512  # the client's EDNS payload size (512 without EDNS)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.strip(".").split(".") if name.strip(".") else []:
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise WireError(f"bad label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise WireError(f"name too long: {name!r}")
    return bytes(out)


def decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """Read a (possibly compressed) name; return it and the offset after it."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        if offset >= len(data):
            raise WireError("name runs past the end")
        n = data[offset]
        if n == 0:
            offset += 1
            break
        if n & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise WireError("truncated pointer")
            if end < 0:
                end = offset + 2
            offset = ((n & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            if jumps > 32:
                raise WireError("pointer loop")
            continue
        if n & 0xC0:
            raise WireError("bad label type")
        label = data[offset + 1: offset + 1 + n]
        if len(label) != n:
            raise WireError("truncated label")
        labels.append(label.decode("ascii", errors="replace"))
        offset += 1 + n
    return ".".join(labels), (end if end >= 0 else offset)


def parse_query(data: bytes) -> Query:
    """Header and first question of a query. Raises WireError if malformed."""
    if len(data) < 12:
        raise WireError("short header")
    qid, flags, qd, _an, _ns, _ar = _HEADER.unpack_from(data)
    if flags & FLAG_QR:
        raise WireError("not a query")
    if qd != 1:
        raise WireError(f"{qd} questions")
    name, off = decode_name(data, 12)
    if off + 4 > len(data):
        raise WireError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, off)
    udp_size = 512
    if _ar and off + 4 + 11 <= len(data) and data[off + 4] == 0:
        # an OPT pseudo-record (root name, type 41): its class is the payload size
        otype, osize = struct.unpack_from("!HH", data, off + 5)
        if otype == TYPE_OPT:
            udp_size = max(512, min(osize, 65535))
    return Query(qid, flags, name.lower(), qtype, qclass, data[12: off + 4], udp_size)


def build_response(
    query: Query,
    rcode: int = RCODE_NOERROR,
    answers: list[tuple[int, int, bytes]] | None = None,
    *,
    authoritative: bool = True,
    max_size: int = 65535,
) -> bytes:
    """A response echoing the question; ``answers`` are (type, ttl, rdata) for the query name.

    Answers that do not fit in ``max_size`` bytes are left out and TC is set
    (the client then asks again over TCP).
    """
    answers = answers or []
    flags = FLAG_QR | FLAG_RA | (query.flags & FLAG_RD) | (query.opcode << 11) | rcode
    if authoritative:
        flags |= FLAG_AA
    size = 12 + len(query.question)
    records = []
    for rtype, ttl, rdata in answers:
        # 0xC00C: a pointer to the question name at offset 12
        rr = struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, ttl, len(rdata)) + rdata
        if size + len(rr) > max_size:
            flags |= FLAG_TC
            break
        size += len(rr)
        records.append(rr)
    header = _HEADER.pack(query.id, flags, 1 if query.question else 0, len(records), 0, 0)
    return b"".join([header, query.question, *records])


def build_query(name: str, qtype: int = TYPE_A, qid: int = 0, *, rd: bool = True) -> bytes:
    return (_HEADER.pack(qid, FLAG_RD if rd else 0, 1, 0, 0, 0) + encode_name(name)
            + struct.pack("!HH", qtype, CLASS_IN))


@dataclass(frozen=True)
class Message:
    """A parsed response (for clients and tests): rcode and the answer records."""

    id: int
    flags: int
    rcode: int
    name: str
    answers: tuple[tuple[str, int, int, object], ...]  # (name, type, ttl, value)


def parse_message(data: bytes) -> Message:
    if len(data) < 12:
        raise WireError("short header")
    qid, flags, qd, an, _ns, _ar = _HEADER.unpack_from(data)
    off = 12
    qname = ""
    for _ in range(qd):
        qname, off = decode_name(data, off)
        off += 4
    answers = []
    for _ in range(an):
        rname, off = decode_name(data, off)
        if off + 10 > len(data):
            raise WireError("truncated record")
        rtype, _cls, ttl, rdlen = struct.unpack_from("!HHIH", data, off)
        off += 10
        rdata = data[off: off + rdlen]
        value: object = rdata
        if rtype == TYPE_A and rdlen == 4:
            value = IPv4Address(rdata)
        elif rtype == TYPE_AAAA and rdlen == 16:
            value = IPv6Address(rdata)
        elif rtype == TYPE_PTR:
            value = decode_name(data, off)[0]
        answers.append((rname.lower(), rtype, ttl, value))
        off += rdlen
    return Message(qid, flags, flags & 0xF, qname.lower(), tuple(answers))
