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


BUILD_BASE = """
services:
  web:
    build:
      context: ./app
      dockerfile: Other
      args: {A: "1", B: "2"}
      labels: [a=b]
    environment: [X=1, Y=2]
    healthcheck: {test: "true", interval: 5s, retries: 3}
    deploy: {resources: {limits: {cpus: "0.5", memory: 1g}}}
"""


def _over(tmp_path: Path, override: str) -> object:
    write(tmp_path, "compose.yaml", BUILD_BASE)
    write(tmp_path, "app/Dockerfile", "FROM scratch\n")
    write(tmp_path, "override.yaml", override)
    return load(tmp_path, None, "compose.yaml", "override.yaml").services["web"]


def test_reset_inside_values_rewritten_to_long_form(tmp_path: Path) -> None:
    """``build``, ``healthcheck``, ``deploy`` ... are rewritten per file before the merge;
    a ``!reset`` inside them still removes the key."""
    svc = _over(tmp_path, """
        services:
          web:
            build: {args: !reset {}, labels: !reset null}
            environment: {Y: !reset null}
            healthcheck: {interval: !reset null}
            deploy: {resources: {limits: {memory: !reset null}}}
    """)
    assert svc.build is not None  # type: ignore[attr-defined]
    assert dict(svc.build.args) == {}  # type: ignore[attr-defined]
    assert dict(svc.build.labels) == {}  # type: ignore[attr-defined]
    assert svc.build.context == str(tmp_path / "app")  # type: ignore[attr-defined]
    assert dict(svc.environment) == {"X": "1"}  # type: ignore[attr-defined]
    assert svc.healthcheck.interval is None  # type: ignore[attr-defined]
    assert svc.healthcheck.retries == 3  # type: ignore[attr-defined]
    limits = svc.deploy.limits  # type: ignore[attr-defined]
    assert (limits.cpus, limits.memory) == (0.5, None)


def test_reset_of_one_build_arg(tmp_path: Path) -> None:
    svc = _over(tmp_path, "services: {web: {build: {args: {A: !reset null}}}}")
    assert dict(svc.build.args) == {"B": "2"}  # type: ignore[attr-defined]


def test_override_build_keeps_base_context_and_dockerfile(tmp_path: Path) -> None:
    """An override's ``build: {args: ...}`` changes the args only (defaults are filled
    in after the merge, not per file)."""
    svc = _over(tmp_path, "services: {web: {build: {args: {C: '3'}}}}")
    build = svc.build  # type: ignore[attr-defined]
    assert (build.context, build.dockerfile) == (str(tmp_path / "app"), "Other")
    assert dict(build.args) == {"A": "1", "B": "2", "C": "3"}


def test_reset_dockerfile_falls_back_to_the_default(tmp_path: Path) -> None:
    svc = _over(tmp_path, "services: {web: {build: {dockerfile: !reset null}}}")
    assert svc.build.dockerfile == "Dockerfile"  # type: ignore[attr-defined]


def test_build_without_context_defaults_to_the_project_directory(tmp_path: Path) -> None:
    project = load(tmp_path, "services: {web: {build: {dockerfile: X}}}")
    build = project.services["web"].build
    assert build is not None
    assert (build.context, build.dockerfile) == (str(tmp_path), "X")
