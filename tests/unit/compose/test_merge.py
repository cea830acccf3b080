"""Merging several -f files with the Compose merge rules, !reset and !override."""

from __future__ import annotations

from pathlib import Path

from pycompose.compose.merge import merge
from pycompose.compose.model import Port
from pycompose.compose.yamlread import RESET, OverrideList

from .loader_helpers import load, write

BASE = """
services:
  web:
    image: web:1
    command: [serve, --port, "80"]
    environment: {A: "1", B: "2"}
    ports: ["80:80", "443:443"]
    volumes: ["/a:/a", "/b:/b"]
    labels: {x: "1"}
    dns: [1.1.1.1]
    logging: {driver: json-file, options: {max-size: 1m}}
"""


def merged(tmp_path: Path, override: str) -> object:
    write(tmp_path, "compose.yaml", BASE)
    write(tmp_path, "override.yaml", override)
    return load(tmp_path, None, "compose.yaml", "override.yaml").services["web"]


def test_scalars_replaced(tmp_path: Path) -> None:
    assert merged(tmp_path, "services: {web: {image: web:2}}").image == "web:2"  # type: ignore[attr-defined]


def test_mappings_merged(tmp_path: Path) -> None:
    svc = merged(tmp_path, "services: {web: {environment: [B=3, C=4]}}")
    assert dict(svc.environment) == {"A": "1", "B": "3", "C": "4"}  # type: ignore[attr-defined]


def test_command_replaced_not_appended(tmp_path: Path) -> None:
    assert merged(tmp_path, "services: {web: {command: run}}").command == ("run",)  # type: ignore[attr-defined]


def test_ports_appended_and_deduplicated(tmp_path: Path) -> None:
    svc = merged(tmp_path, 'services: {web: {ports: ["443:443", "8080:8080"]}}')
    assert [p.target for p in svc.ports] == [80, 443, 8080]  # type: ignore[attr-defined]


def test_volumes_merged_by_target(tmp_path: Path) -> None:
    svc = merged(tmp_path, 'services: {web: {volumes: ["/other:/b:ro", "/c:/c"]}}')
    vols = {v.target: (v.source, v.read_only) for v in svc.volumes}  # type: ignore[attr-defined]
    assert vols == {"/a": ("/a", False), "/b": ("/other", True), "/c": ("/c", False)}


def test_lists_union(tmp_path: Path) -> None:
    svc = merged(tmp_path, "services: {web: {dns: [1.1.1.1, 8.8.8.8]}}")
    assert svc.dns == ("1.1.1.1", "8.8.8.8")  # type: ignore[attr-defined]


def test_logging_same_driver_merges_options(tmp_path: Path) -> None:
    svc = merged(tmp_path, "services: {web: {logging: {options: {max-file: '3'}}}}")
    assert dict(svc.logging.options) == {"max-size": "1m", "max-file": "3"}  # type: ignore[attr-defined]


def test_logging_other_driver_replaces(tmp_path: Path) -> None:
    svc = merged(tmp_path, "services: {web: {logging: {driver: local}}}")
    assert svc.logging.driver == "local"
    assert not svc.logging.options


def test_reset_removes(tmp_path: Path) -> None:
    svc = merged(tmp_path, "services: {web: {ports: !reset [], labels: !reset {}}}")
    assert svc.ports == ()
    assert dict(svc.labels) == {}


def test_override_replaces_whole(tmp_path: Path) -> None:
    svc = merged(tmp_path, 'services: {web: {ports: !override ["9000:9000"], '
                           "environment: !override {Z: z}}}")
    assert svc.ports == (Port(target=9000, published="9000"),)  # type: ignore[attr-defined]
    assert dict(svc.environment) == {"Z": "z"}  # type: ignore[attr-defined]


def test_new_service_added(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", BASE)
    write(tmp_path, "o.yaml", "services: {db: {image: pg}}")
    project = load(tmp_path, None, "compose.yaml", "o.yaml")
    assert sorted(project.services) == ["db", "web"]


def test_override_file_relative_paths_use_project_directory(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "services: {web: {image: a}}")
    write(tmp_path, "sub/o.yaml", "services: {web: {volumes: [./data:/data]}}")
    project = load(tmp_path, None, "compose.yaml", "sub/o.yaml")
    assert project.services["web"].volumes[0].source == str(tmp_path / "data")


def test_merge_function_is_pure() -> None:
    base = {"services": {"a": {"ports": [1]}}}
    over = {"services": {"a": {"ports": [2]}}}
    out = merge(base, over)
    assert base == {"services": {"a": {"ports": [1]}}}
    assert out["services"]["a"]["ports"] == [1, 2]


def test_merge_markers() -> None:
    assert merge({"a": 1, "b": 2}, {"a": RESET}) == {"b": 2}
    assert merge({"l": [1]}, {"l": OverrideList([2])}) == {"l": [2]}


def test_reset_whole_section(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", BASE)
    write(tmp_path, "o.yaml", "services: !reset {}\n")
    assert dict(load(tmp_path, None, "compose.yaml", "o.yaml").services) == {}
