"""DNS packets, resolv.conf and /etc/hosts text."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address as A

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycompose.network import dnswire as w
from pycompose.network import hostsfiles as hf
from pycompose.network.errors import NetworkError


def test_query_roundtrip_and_response() -> None:
    pkt = w.build_query("Web.Example.COM", w.TYPE_A, 0x1234)
    q = w.parse_query(pkt)
    assert (q.id, q.name, q.qtype, q.qclass) == (0x1234, "web.example.com", w.TYPE_A, 1)
    resp = w.build_response(q, answers=[(w.TYPE_A, 60, A("10.0.0.2").packed),
                                        (w.TYPE_A, 60, A("10.0.0.3").packed)])
    m = w.parse_message(resp)
    assert m.id == 0x1234
    assert m.rcode == 0
    assert m.flags & w.FLAG_QR
    assert m.flags & w.FLAG_RD
    assert [a[3] for a in m.answers] == [A("10.0.0.2"), A("10.0.0.3")]
    assert w.parse_message(w.build_response(q, w.RCODE_NXDOMAIN)).rcode == w.RCODE_NXDOMAIN


def test_malformed_packets_are_rejected() -> None:
    good = w.build_query("a.b", w.TYPE_A, 1)
    for bad in (b"", good[:11], good[:-3], good[:12] + b"\xc0\x0c" + good[-4:]):
        with pytest.raises(w.WireError):
            w.parse_query(bad)
    resp = w.build_response(w.parse_query(good))
    with pytest.raises(w.WireError, match="not a query"):
        w.parse_query(resp)
    with pytest.raises(w.WireError):
        w.encode_name("x" * 64 + ".com")


@given(st.binary(max_size=80))
def test_parser_never_crashes_on_garbage(data: bytes) -> None:
    with contextlib.suppress(w.WireError):
        w.parse_query(data)


def test_resolv_conf_rendering() -> None:
    host = "nameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"
    text = hf.render_resolv_conf(["172.18.0.1"], host_text=host)
    assert text == "nameserver 172.18.0.1\nsearch corp.example\noptions edns0\n"
    text = hf.render_resolv_conf([A("172.18.0.1")], search=["a.test", "b.test"],
                                 options=["ndots:2"], host_text=host)
    assert text == "nameserver 172.18.0.1\nsearch a.test b.test\noptions ndots:2\n"
    with pytest.raises(NetworkError, match="invalid nameserver"):
        hf.render_resolv_conf(["nope"])


def test_hosts_rendering_with_extra_hosts_and_host_gateway() -> None:
    extra = hf.parse_extra_hosts(["db.local:10.0.0.9", "host.docker.internal=host-gateway"])
    text = hf.render_hosts("web1", A("172.18.0.2"), domainname="corp", extra_hosts=extra,
                           gateway=A("172.18.0.1"), aliases=["web"])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.0.0.9\tdb.local" in lines
    assert "172.18.0.1\thost.docker.internal" in lines
    assert lines[-1] == "172.18.0.2\tweb1.corp web1 web"
    assert hf.parse_extra_hosts({"x": "10.0.0.1"}) == [("x", "10.0.0.1")]
    with pytest.raises(NetworkError, match="invalid address 'zz' for x"):
        hf.parse_extra_hosts(["x:zz"])
    with pytest.raises(NetworkError, match="needs a network gateway"):
        hf.render_hosts("a", None, extra_hosts=[("h", "host-gateway")])
