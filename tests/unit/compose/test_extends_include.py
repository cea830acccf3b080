"""extends (same file, other file, chains, loops) and top-level include."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.errors import MergeError

from .loader_helpers import load, load_errors, write


def test_extends_same_file(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          base:
            image: a
            environment: {A: "1"}
          web:
            extends: base
            environment: {B: "2"}
    """)
    assert project.services["web"].image == "a"
    assert dict(project.services["web"].environment) == {"A": "1", "B": "2"}


def test_extends_other_file_paths_relative_to_that_file(tmp_path: Path) -> None:
    write(tmp_path, "common/base.yaml", """
        services:
          app:
            image: a
            build: ./ctx
            volumes: [./data:/data]
    """)
    project = load(tmp_path, """
        services:
          web:
            extends: {file: common/base.yaml, service: app}
            command: run
    """)
    web = project.services["web"]
    assert web.build is not None
    assert web.build.context == str(tmp_path / "common" / "ctx")
    assert web.volumes[0].source == str(tmp_path / "common" / "data")
    assert web.command == ("run",)


def test_extends_chain(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          a: {image: x, labels: {a: "1"}}
          b: {extends: a, labels: {b: "1"}}
          c: {extends: b, labels: {c: "1"}}
    """)
    assert dict(project.services["c"].labels) == {"a": "1", "b": "1", "c": "1"}


def test_extends_loop(tmp_path: Path) -> None:
    with pytest.raises(MergeError) as info:
        load(tmp_path, "services:\n  a: {extends: b}\n  b: {extends: a}\n")
    assert str(info.value) == "compose.yaml: services.a.extends: circular extends: a -> b -> a"


def test_extends_loop_across_files(tmp_path: Path) -> None:
    write(tmp_path, "other.yaml", "services:\n  o: {extends: {file: compose.yaml, service: web}}\n")
    with pytest.raises(MergeError, match="circular extends: web -> o -> web"):
        load(tmp_path, "services:\n  web: {extends: {file: other.yaml, service: o}}\n")


def test_extends_missing_service(tmp_path: Path) -> None:
    with pytest.raises(MergeError) as info:
        load(tmp_path, "services:\n  web: {extends: nope}\n")
    assert str(info.value) == ('compose.yaml: services.web.extends: cannot extend service "nope": '
                               "no such service")


def test_extends_with_reset(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          base: {image: a, ports: ["80:80"]}
          web: {extends: base, ports: !reset []}
    """)
    assert project.services["web"].ports == ()


def test_include(tmp_path: Path) -> None:
    write(tmp_path, "db/compose.yaml", """
        services:
          db:
            image: postgres:${PG_TAG:-16}
            volumes: [./init:/docker-entrypoint-initdb.d]
    """)
    write(tmp_path, "db/.env", "PG_TAG=15\n")
    project = load(tmp_path, """
        include: [db/compose.yaml]
        services:
          web: {image: a, depends_on: [db]}
    """)
    assert sorted(project.services) == ["db", "web"]
    assert project.services["db"].image == "postgres:15"
    assert project.services["db"].volumes[0].source == str(tmp_path / "db" / "init")


def test_include_conflict(tmp_path: Path) -> None:
    write(tmp_path, "other.yaml", "services:\n  web: {image: b}\n")
    with pytest.raises(MergeError, match='conflicts with the service "web" imported'):
        load(tmp_path, "include: [other.yaml]\nservices:\n  web: {image: a}\n")


def test_include_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "include: [compose.yaml]\nservices:\n  a: {image: a}\n")
    with pytest.raises(MergeError, match="include cycle: compose.yaml -> a.yaml -> compose.yaml"):
        load(tmp_path, "include: [a.yaml]\nservices:\n  web: {image: a}\n")


def test_include_missing_file(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "include: [nope.yaml]\nservices:\n  web: {image: a}\n")
    assert errors == ["nope.yaml: file not found"]


def test_included_files_extends_use_the_included_environment(tmp_path: Path) -> None:
    """The extends file of an included file is interpolated with the included project's
    ``.env``, like the included file itself (the main project's env still wins)."""
    write(tmp_path, "db/base.yaml", """
        services:
          base:
            image: postgres:${PG_TAG:-16}
            environment: {MODE: "${MODE:-none}"}
    """)
    write(tmp_path, "db/compose.yaml", """
        services:
          db:
            extends: {file: base.yaml, service: base}
    """)
    write(tmp_path, "db/.env", "PG_TAG=15\nMODE=included\n")
    project = load(tmp_path, """
        include: [db/compose.yaml]
        services:
          web: {image: a}
    """, environ={"HOME": "/home/user", "MODE": "shell"})
    assert project.services["db"].image == "postgres:15"
    assert project.services["db"].environment["MODE"] == "shell"
    assert not any("PG_TAG" in w for w in project.warnings)
