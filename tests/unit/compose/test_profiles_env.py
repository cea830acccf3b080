"""Profiles, service environments, env_file, .env and --env-file."""

from __future__ import annotations

from pathlib import Path

from .loader_helpers import load, load_errors, write

PROFILED = """
services:
  web: {image: a, depends_on: [debug]}
  debug: {image: b, profiles: [dev]}
  tools: {image: c, profiles: [tools, dev]}
"""


def test_profiles_disable_services(tmp_path: Path) -> None:
    project = load(tmp_path, PROFILED)
    assert sorted(project.services) == ["web"]
    assert sorted(project.disabled_services) == ["debug", "tools"]
    assert project.all_profiles() == ("dev", "tools")


def test_profile_enables(tmp_path: Path) -> None:
    assert sorted(load(tmp_path, PROFILED, profiles=["dev"]).services) == ["debug", "tools", "web"]
    assert sorted(load(tmp_path, PROFILED, profiles=["*"]).services) == ["debug", "tools", "web"]


def test_compose_profiles_variable(tmp_path: Path) -> None:
    project = load(tmp_path, PROFILED, environ={"COMPOSE_PROFILES": "tools"})
    assert sorted(project.services) == ["tools", "web"]


def test_named_service_is_enabled_with_dependencies(tmp_path: Path) -> None:
    write(tmp_path, "compose.yaml", """
        services:
          a: {image: a, profiles: [x], depends_on: [b]}
          b: {image: b, profiles: [y]}
    """)
    project = load(tmp_path, None, services=["a"])
    assert sorted(project.services) == ["a", "b"]


def test_environment_resolution(tmp_path: Path) -> None:
    write(tmp_path, "a.env", "A=from_file\nB=from_file\nC=${SHELL_VAR}-x\n")
    write(tmp_path, ".env", "DOTENV=dot\n")
    project = load(tmp_path, """
        services:
          web:
            image: a
            env_file: a.env
            environment:
              - B=explicit
              - SHELL_VAR
              - DOTENV
              - MISSING
    """, environ={"SHELL_VAR": "shell"})
    assert dict(project.services["web"].environment) == {
        "A": "from_file", "B": "explicit", "C": "shell-x", "SHELL_VAR": "shell",
        "DOTENV": "dot", "MISSING": None,
    }


def test_env_file_optional(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          web:
            image: a
            env_file: [{path: nope.env, required: false}]
    """)
    assert dict(project.services["web"].environment) == {}


def test_env_file_missing_is_an_error(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web: {image: a, env_file: nope.env}\n")
    assert errors == [f"compose.yaml: services.web.env_file: {tmp_path}/nope.env: "
                      "env file not found"]


def test_dotenv_interpolates_compose_file(tmp_path: Path) -> None:
    write(tmp_path, ".env", "TAG=1.2\nPORT=8081\n")
    project = load(tmp_path, 'services:\n  web: {image: "a:${TAG}", ports: ["${PORT}:80"]}\n')
    assert project.services["web"].image == "a:1.2"
    assert project.services["web"].ports[0].published == "8081"


def test_shell_wins_over_dotenv(tmp_path: Path) -> None:
    write(tmp_path, ".env", "TAG=dot\n")
    project = load(tmp_path, 'services:\n  web: {image: "a:${TAG}"}\n', environ={"TAG": "shell"})
    assert project.services["web"].image == "a:shell"


def test_env_files_option_replaces_dotenv(tmp_path: Path) -> None:
    write(tmp_path, ".env", "TAG=dot\n")
    write(tmp_path, "prod.env", "TAG=prod\n")
    project = load(tmp_path, 'services:\n  web: {image: "a:${TAG}"}\n', env_files=["prod.env"])
    assert project.services["web"].image == "a:prod"


def test_unset_variable_warns(tmp_path: Path) -> None:
    project = load(tmp_path, 'services:\n  web: {image: "a${NOPE}"}\n')
    assert project.services["web"].image == "a"
    assert any('"NOPE" variable is not set' in w for w in project.warnings)


def test_interpolation_error_names_path(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, 'services:\n  web: {image: "${NEED?please set NEED}"}\n')
    assert errors == ["compose.yaml: services.web.image: required variable NEED is not set: "
                      "please set NEED"]


def test_label_file(tmp_path: Path) -> None:
    write(tmp_path, "labels.env", "team=core\nowner=ops\n")
    project = load(tmp_path, """
        services:
          web:
            image: a
            label_file: ./labels.env
            labels: {owner: dev}
    """)
    assert dict(project.services["web"].labels) == {"team": "core", "owner": "dev"}
    assert "label_file" not in project.services["web"].extra


def test_missing_label_file(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web: {image: a, label_file: nope}\n")
    assert errors == [f"compose.yaml: services.web.label_file: {tmp_path}/nope: "
                      "env file not found"]
