"""Whole-project checks: references, exclusive keys, cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.checks import find_cycle
from pycompose.compose.errors import DependencyCycleError, SchemaError

from .loader_helpers import load, load_errors


def test_all_reference_errors_listed(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, """
        services:
          web:
            image: a
            depends_on: [nope]
            links: [gone:alias]
            networks: [ghost]
            secrets: [s]
            configs: [c]
            volumes_from: [missing:ro, "container:ok"]
          side:
            image: a
            network_mode: service:absent
            ipc: service:absent
    """)
    assert errors == [
        'compose.yaml: services.side.ipc: refers to undefined service "absent"',
        'compose.yaml: services.side.network_mode: refers to undefined service "absent"',
        'compose.yaml: services.web.configs[0]: refers to undefined config "c"',
        'compose.yaml: services.web.depends_on.nope: depends on undefined service "nope"',
        'compose.yaml: services.web.links[0]: links to undefined service "gone"',
        'compose.yaml: services.web.networks.ghost: refers to undefined network "ghost"',
        'compose.yaml: services.web.secrets[0]: refers to undefined secret "s"',
        'compose.yaml: services.web.volumes_from[0]: refers to undefined service "missing"',
    ]


def test_network_mode_and_networks_exclusive(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web: {image: a, network_mode: host, "
                         "networks: [default]}\n")
    assert errors == ['compose.yaml: services.web.network_mode: cannot be combined with '
                      '"networks"']


def test_invalid_network_mode(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web: {image: a, network_mode: bogus}\n")
    assert errors[0].startswith('compose.yaml: services.web.network_mode: invalid network mode '
                                '"bogus"')


def test_cycle(tmp_path: Path) -> None:
    with pytest.raises(DependencyCycleError) as info:
        load(tmp_path, """
            services:
              c: {image: a, depends_on: [a]}
              a: {image: a, depends_on: [b]}
              b: {image: a, links: [c]}
        """)
    assert str(info.value) == ("compose.yaml: services.a: dependency cycle detected: "
                               "a -> b -> c -> a")


def test_self_dependency(tmp_path: Path) -> None:
    with pytest.raises(DependencyCycleError, match="a depends on itself"):
        load(tmp_path, "services:\n  a: {image: a, depends_on: [a]}\n")


def test_find_cycle_is_deterministic() -> None:
    deps = {"z": {"y"}, "y": {"z"}, "b": {"a"}, "a": {"b"}}
    assert find_cycle(deps) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_dependency_on_disabled_service_is_kept(tmp_path: Path) -> None:
    project = load(tmp_path, "services:\n  web: {image: a, depends_on: [db]}\n"
                   "  db: {image: b, profiles: [x]}\n")
    assert "db" in project.services["web"].depends_on
    assert "db" in project.disabled_services


def test_errors_name_the_file_that_defines_the_service(tmp_path: Path) -> None:
    from pycompose.compose.loader import load_project

    from .loader_helpers import options, write

    write(tmp_path, "compose.yaml", "services:\n  web: {image: a}\n")
    write(tmp_path, "extra.yaml", "services:\n  worker: {image: b, depends_on: [nope]}\n")
    with pytest.raises(SchemaError) as info:
        load_project(options(tmp_path, "compose.yaml", "extra.yaml"))
    assert str(info.value) == ('extra.yaml: services.worker.depends_on.nope: depends on '
                               'undefined service "nope"')
