"""Ports: every short form and the long syntax to :class:`Port` (ranges expanded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.canonical import parse_port
from pycompose.compose.model import Port

from .loader_helpers import load, load_errors, roundtrip


@pytest.mark.parametrize(("spec", "ports"), [
    ("80", [Port(target=80)]),
    (80, [Port(target=80)]),
    ("8080:80", [Port(target=80, published="8080")]),
    ("127.0.0.1:8080:80/udp", [Port(target=80, published="8080", host_ip="127.0.0.1",
                                    protocol="udp")]),
    ("127.0.0.1::80", [Port(target=80, host_ip="127.0.0.1")]),
    ("[::1]:8080:80", [Port(target=80, published="8080", host_ip="::1")]),
    ("::1:8080:80", [Port(target=80, published="8080", host_ip="::1")]),
    ("9000-9002:9000-9002", [Port(target=9000, published="9000"),
                             Port(target=9001, published="9001"),
                             Port(target=9002, published="9002")]),
    ("3000-3001", [Port(target=3000), Port(target=3001)]),
    ("8000-8010:80", [Port(target=80, published="8000-8010")]),
    ("53:53/sctp", [Port(target=53, published="53", protocol="sctp")]),
])
def test_short_syntax(tmp_path: Path, spec: object, ports: list[Port]) -> None:
    value = f'"{spec}"' if isinstance(spec, str) else spec
    project = load(tmp_path, f"services:\n  web:\n    image: a\n    ports: [{value}]\n")
    assert list(project.services["web"].ports) == ports


@pytest.mark.parametrize(("spec", "message"), [
    ("80:abc", 'invalid port "80:abc"'),
    ("0", 'invalid port "0"'),
    ("70000", 'invalid port "70000"'),
    ("80/icmp", 'invalid port "80/icmp": unknown protocol "icmp"'),
    ("1-3:1-2", 'invalid port "1-3:1-2": host and container ranges differ in size'),
    ("host:80:80", 'invalid port "host:80:80": invalid host IP "host"'),
    ("5-1", 'invalid port "5-1"'),
])
def test_bad_short_syntax(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid port") as info:
        parse_port(spec)
    assert str(info.value) == message


def test_long_syntax(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          web:
            image: a
            ports:
              - target: 80
                published: 8080
                host_ip: 127.0.0.1
                protocol: udp
                mode: host
                name: http
                app_protocol: http
    """)
    assert project.services["web"].ports == (
        Port(target=80, published="8080", host_ip="127.0.0.1", protocol="udp", mode="host",
             name="http", app_protocol="http"),)


def test_bad_port_error_names_index(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, """
        services:
          web:
            image: a
            ports: ["80", {target: 99999}]
    """)
    assert errors == ['compose.yaml: services.web.ports[1].target: invalid port "99999"']


def test_interpolated_port(tmp_path: Path) -> None:
    project = load(tmp_path, 'services:\n  web:\n    image: a\n    ports: ["${P}:80"]\n',
                   environ={"P": "9999"})
    assert project.services["web"].ports == (Port(target=80, published="9999"),)


def test_roundtrip(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          web:
            image: a
            ports: ["80", "127.0.0.1:8080:80/udp", "9000-9001:9000-9001", "8000-8010:81"]
    """)
    again = roundtrip(tmp_path, project)
    assert again.services == project.services


def test_expose(tmp_path: Path) -> None:
    project = load(tmp_path, 'services:\n  web:\n    image: a\n    expose: [80, "90/udp", "1-2"]\n')
    assert project.services["web"].expose == ("80", "90/udp", "1-2")
    errors = load_errors(tmp_path, 'services:\n  web:\n    image: a\n    expose: ["x"]\n')
    assert errors == ['compose.yaml: services.web.expose[0]: invalid port "x"']
