"""File lookup, project names, stdin, stages, the purity of the loader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycompose.compose.errors import ComposeFileError, ProjectNotFoundError
from pycompose.compose.loader import (
    LoadOptions,
    Stage,
    load_document,
    load_project,
    normalize_project_name,
)

from .loader_helpers import write

SIMPLE = "services:\n  web: {image: a}\n"


def opts(directory: Path, **kwargs: object) -> LoadOptions:
    kwargs.setdefault("environ", {})
    return LoadOptions(working_dir=str(directory), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["compose.yaml", "compose.yml", "docker-compose.yaml",
                                  "docker-compose.yml"])
def test_default_file_names(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, SIMPLE)
    project = load_project(opts(tmp_path))
    assert project.compose_files == (str(tmp_path / name),)


def test_lookup_in_parents_and_override(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", SIMPLE)
    write(tmp_path, "compose.override.yaml", "services:\n  web: {image: b}\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    project = load_project(opts(sub))
    assert project.services["web"].image == "b"
    assert project.working_dir == str(tmp_path)
    assert project.name == normalize_project_name(tmp_path.name)


def test_no_file_found(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFoundError, match="no configuration file provided"):
        load_project(opts(tmp_path))


def test_compose_file_variable(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", SIMPLE)
    write(tmp_path, "b.yaml", "services:\n  web: {image: b}\n")
    project = load_project(opts(tmp_path, environ={"COMPOSE_FILE": "a.yaml:b.yaml"}))
    assert project.services["web"].image == "b"


def test_compose_variables_from_the_dotenv(tmp_path: Path) -> None:
    """COMPOSE_FILE, COMPOSE_PROFILES and COMPOSE_PROJECT_NAME in the project's .env
    count as in the shell (which wins), as in docker compose."""
    write(tmp_path, "stack/a.yaml", SIMPLE + "  tool: {image: t, profiles: [tools]}\n")
    write(tmp_path, "stack/b.yaml", "services:\n  web: {image: '${IMG}'}\n")
    write(tmp_path, ".env", "COMPOSE_FILE=stack/a.yaml,stack/b.yaml\nCOMPOSE_PATH_SEPARATOR=,\n"
                            "COMPOSE_PROFILES=tools\nCOMPOSE_PROJECT_NAME=fromdotenv\nIMG=b\n")
    project = load_project(opts(tmp_path))
    assert project.compose_files == (str(tmp_path / "stack/a.yaml"),
                                     str(tmp_path / "stack/b.yaml"))
    assert project.working_dir == str(tmp_path / "stack")
    assert project.name == "fromdotenv"
    assert project.profiles == ("tools",)
    assert sorted(project.services) == ["tool", "web"]
    assert project.services["web"].image == "b"  # the same .env interpolates
    shell = load_project(opts(tmp_path, environ={"COMPOSE_FILE": "stack/a.yaml",
                                                 "COMPOSE_PROFILES": "none"}))
    assert shell.compose_files == (str(tmp_path / "stack/a.yaml"),)
    assert sorted(shell.services) == ["web"]


def test_compose_file_from_the_project_directory_dotenv(tmp_path: Path) -> None:
    write(tmp_path, "proj/other.yaml", SIMPLE)
    write(tmp_path, "proj/.env", "COMPOSE_FILE=other.yaml\n")
    write(tmp_path, "compose.yaml", "services:\n  wrong: {image: x}\n")
    project = load_project(opts(tmp_path, project_directory="proj"))
    assert sorted(project.services) == ["web"]


def test_stdin(tmp_path: Path) -> None:
    project = load_project(opts(tmp_path, files=["-"], stdin=SIMPLE, project_name="x"))
    assert project.services["web"].image == "a"
    assert project.working_dir == str(tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ComposeFileError, match="nope.yaml: file not found"):
        load_project(opts(tmp_path, files=["nope.yaml"]))


def test_empty_file(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "")
    with pytest.raises(ComposeFileError, match="compose.yaml: empty compose file"):
        load_project(opts(tmp_path))


@pytest.mark.parametrize(("raw", "name"), [
    ("My App", "myapp"), ("_x.y-Z", "xy-z"), ("web_1", "web_1"), ("123", "123"),
])
def test_normalize_project_name(raw: str, name: str) -> None:
    assert normalize_project_name(raw) == name


def test_project_name_precedence(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "name: fromfile\n" + SIMPLE)
    assert load_project(opts(tmp_path)).name == "fromfile"
    assert load_project(opts(tmp_path, environ={"COMPOSE_PROJECT_NAME": "env"})).name == "env"
    assert load_project(opts(tmp_path, project_name="flag",
                             environ={"COMPOSE_PROJECT_NAME": "env"})).name == "flag"


def test_interpolated_name(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", "name: ${N}\n" + SIMPLE)
    assert load_project(opts(tmp_path, environ={"N": "abc"})).name == "abc"


@pytest.mark.parametrize("bad", ["Upper", "-x", "a b", "a.b"])
def test_invalid_explicit_project_name(tmp_path: Path, bad: str) -> None:
    write(tmp_path, "compose.yaml", SIMPLE)
    with pytest.raises(ComposeFileError, match=f'invalid project name "{bad}"'):
        load_project(opts(tmp_path, project_name=bad))


def test_project_directory_option(tmp_path: Path) -> None:
    write(tmp_path, "files/compose.yaml", "services:\n  web: {image: a, build: ./ctx}\n")
    project = load_project(opts(tmp_path, files=["files/compose.yaml"],
                                project_directory="elsewhere"))
    assert project.working_dir == str(tmp_path / "elsewhere")
    web = project.services["web"]
    assert web.build is not None
    assert web.build.context == str(tmp_path / "elsewhere" / "ctx")


def test_stop_after_stages(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", 'services:\n  web: {image: "a:${T}", ports: ["80"]}\n')
    o = opts(tmp_path, environ={"T": "1"})
    assert load_document(o, Stage.READ).doc["services"]["web"]["image"] == "a:${T}"
    assert load_document(o, Stage.INTERPOLATE).doc["services"]["web"]["ports"] == ["80"]
    normal = load_document(o, Stage.NORMALIZE).doc["services"]["web"]
    assert normal["image"] == "a:1"
    assert normal["ports"] == [{"mode": "ingress", "target": 80, "protocol": "tcp"}]


def test_no_interpolation_keeps_variables(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", 'services:\n  web: {image: "a:${T}", ports: ["${P}:80"]}\n')
    doc = load_document(opts(tmp_path, interpolate=False), Stage.PROFILES).doc
    assert doc["services"]["web"] == {"image": "a:${T}", "ports": ["${P}:80"]}


def test_loader_does_not_touch_process_state(tmp_path: Path) -> None:
    write(tmp_path, ".env", "FROM_DOTENV=1\n")
    write(tmp_path, "compose.yaml", SIMPLE)
    before_env, before_cwd = dict(os.environ), os.getcwd()
    load_project(opts(tmp_path))
    assert dict(os.environ) == before_env
    assert os.getcwd() == before_cwd


def test_project_is_immutable(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", SIMPLE)
    project = load_project(opts(tmp_path))
    with pytest.raises(AttributeError):
        project.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        project.services["x"] = project.services["web"]  # type: ignore[index]
    hash(project.services["web"])


def test_several_default_files_warn(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", SIMPLE)
    write(tmp_path, "docker-compose.yml", "services:\n  other: {image: b}\n")
    project = load_project(opts(tmp_path))
    assert sorted(project.services) == ["web"]
    assert any("found several compose files" in w for w in project.warnings)


def test_project_pickles(tmp_path: Path) -> None:
    import pickle

    write(tmp_path, "compose.yaml", "services:\n  web: {image: a, ports: ['80:80'], "
                                    "environment: {A: '1'}}\n")
    project = load_project(opts(tmp_path))
    again = pickle.loads(pickle.dumps(project))
    assert again == project
    assert again.services["web"].environment == {"A": "1"}


def test_package_reexports_the_loader_api() -> None:
    import pycompose.compose as compose
    from pycompose.compose import loader

    assert compose.load_project is loader.load_project
    assert compose.LoadOptions is loader.LoadOptions
    with pytest.raises(AttributeError):
        compose.no_such_name  # noqa: B018
