"""Port requests, the preflight and held reservations (no root needed)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from ipaddress import IPv4Address as A

import pytest

from pycompose.network import ports
from pycompose.network.errors import PortBusyError, PortConflictError, PortError


@pytest.fixture
def held_tcp() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def test_expand_ports() -> None:
    assert ports.expand_ports("web", 80) == [ports.PortRequest("web", 80)]
    r = ports.expand_ports("web", "80-81", "8080-8081", "udp", "127.0.0.1")
    assert [(x.container_port, x.host_port, x.protocol, x.host_ip) for x in r] == [
        (80, 8080, "udp", A("127.0.0.1")), (81, 8081, "udp", A("127.0.0.1"))]
    assert ports.expand_ports("web", 80, "9000-9009")[0].host_range == (9000, 9009)
    for args, msg in [(("w", "80-81", "90-99"), "differ in size"), (("w", "x"), "invalid target"),
                      (("w", 70000), "out of range"), (("w", 80, 80, "sctp"), "not supported"),
                      (("w", 80, 80, "tcp", "::1"), "IPv6 host ip")]:
        with pytest.raises(PortError, match=msg):
            ports.expand_ports(*args)  # type: ignore[arg-type]


def test_preflight_names_the_holding_pid_and_command(held_tcp: int) -> None:
    with pytest.raises(PortBusyError) as ei:
        ports.preflight([ports.PortRequest("web", 80, "tcp", held_tcp)])
    err = ei.value
    assert err.pid == os.getpid()
    assert err.port == held_tcp
    assert err.service == "web"
    assert f"host port {held_tcp}/tcp of service web" in str(err)
    assert f"pid {os.getpid()}" in str(err)
    assert "python" in str(err)
    # bound to 127.0.0.1 only: another host address does not conflict
    ports.preflight([ports.PortRequest("web", 80, "tcp", held_tcp, A("127.0.0.2"))])
    # same port over udp does not conflict either
    ports.preflight([ports.PortRequest("web", 80, "udp", held_tcp)])


def _unused_tcp_port() -> int:
    """A port nothing on this host listens on now (a fixed one may be taken)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def test_preflight_duplicates_and_other_stacks() -> None:
    port = _unused_tcp_port()
    reqs = [ports.PortRequest("a", 80, "tcp", port), ports.PortRequest("b", 81, "tcp", port,
                                                                        A("127.0.0.1"))]
    with pytest.raises(PortConflictError, match=f"{port}/tcp is asked for by services a and b"):
        ports.preflight(reqs)
    ports.preflight([ports.PortRequest("a", 80, "tcp", port, A("127.0.0.2")), reqs[1]])
    other = ports.ForeignPort("shop", "api", "tcp", port)
    with pytest.raises(PortConflictError, match="already published by stack shop"):
        ports.preflight(reqs[:1], others=[other])


def test_reserve_holds_ports_and_picks_ephemeral(held_tcp: int) -> None:
    reqs = [ports.PortRequest("web", 80), ports.PortRequest("dns", 53, "udp")]
    with ports.reserve(reqs) as res:
        got = [p.host_port for p in res.ports]
        assert all(p > 1024 for p in got)
        s = socket.socket()
        # held: nobody else can bind it
        with pytest.raises(OSError, match="Address already in use"):
            s.bind(("0.0.0.0", got[0]))
        s.close()
        with pytest.raises(PortBusyError, match=f"{got[0]}/tcp of service x"):
            ports.reserve([ports.PortRequest("x", 1, "tcp", got[0])])
    s = socket.socket()
    s.bind(("0.0.0.0", got[0]))  # released
    s.close()
    with pytest.raises(PortBusyError) as ei:
        ports.reserve([ports.PortRequest("ok", 1, "tcp"),
                       ports.PortRequest("web", 80, "tcp", held_tcp, A("127.0.0.1"))])
    assert ei.value.pid == os.getpid()
