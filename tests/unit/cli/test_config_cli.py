"""``pycompose config`` driven as a subprocess: output, options, exit codes, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

STACK = """
name: demo
services:
  web:
    image: nginx:${TAG:-1.25}
    ports: ["8080:80"]
    depends_on: [db]
    environment: {PRICE: "$$5"}
    profiles: [front]
  db:
    image: postgres:16
    volumes: [data:/var/lib/postgresql/data]
    healthcheck: {test: pg_isready, interval: 5s}
  job:
    build: ./job
    profiles: [tools]
volumes:
  data: {}
networks:
  back: {}
"""


def run(cwd: Path, *args: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": "/home/user", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pycompose", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=60, env=environ)


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(STACK))
    return tmp_path


def test_yaml_output(stack: Path) -> None:
    out = run(stack, "--profile", "front", "config")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert list(doc) == ["name", "services", "networks", "volumes"]
    assert list(doc["services"]) == ["db", "web"]
    web = doc["services"]["web"]
    assert web["image"] == "nginx:1.25"
    assert web["ports"] == [{"target": 80, "published": "8080", "protocol": "tcp",
                             "mode": "ingress"}]
    assert web["depends_on"] == {"db": {"condition": "service_started", "required": True}}
    assert web["environment"] == {"PRICE": "$$5"}
    assert web["networks"] == {"default": None}
    assert doc["services"]["db"]["healthcheck"] == {"test": ["CMD-SHELL", "pg_isready"],
                                                    "interval": "5s"}
    assert doc["volumes"]["data"] == {"name": "demo_data"}
    assert doc["networks"]["default"] == {"name": "demo_default"}


def test_json_output_and_output_file(stack: Path) -> None:
    out = run(stack, "config", "--format", "json", "-o", "out.json")
    assert out.returncode == 0
    assert out.stdout == ""
    doc = json.loads((stack / "out.json").read_text())
    assert sorted(doc["services"]) == ["db"]


def test_output_loads_back_to_the_same_output(stack: Path) -> None:
    first = run(stack, "--profile", "*", "config").stdout
    (stack / "again.yaml").write_text(first)
    second = run(stack, "--profile", "*", "-f", "again.yaml", "--project-directory", ".",
                 "config").stdout
    assert first == second


@pytest.mark.parametrize(("args", "lines"), [
    (["config", "--services"], ["db"]),
    (["--profile", "front", "config", "--services"], ["db", "web"]),
    (["config", "--volumes"], ["data"]),
    (["config", "--networks"], ["back", "default"]),
    (["config", "--profiles"], ["front", "tools"]),
    (["--profile", "*", "config", "--images"], ["demo-job", "nginx:1.25", "postgres:16"]),
])
def test_listings(stack: Path, args: list[str], lines: list[str]) -> None:
    out = run(stack, *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == lines


def test_quiet(stack: Path) -> None:
    out = run(stack, "config", "-q")
    assert out.returncode == 0
    assert out.stdout == ""


def test_no_interpolate(stack: Path) -> None:
    out = run(stack, "--profile", "front", "config", "--no-interpolate")
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["services"]["web"]["image"] == "nginx:${TAG:-1.25}"


def test_hash(stack: Path) -> None:
    out = run(stack, "--profile", "*", "config", "--hash", "*")
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()]
    assert names == ["db", "job", "web"]
    assert all(len(line.split()[1]) == 64 for line in out.stdout.splitlines())
    one = run(stack, "config", "--hash", "db")
    assert one.stdout.splitlines() == [out.stdout.splitlines()[0]]
    bad = run(stack, "config", "--hash", "nope")
    assert bad.returncode == 1
    assert "no such service: nope" in bad.stderr


def test_service_selection(stack: Path) -> None:
    out = run(stack, "config", "--services", "web")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["db", "web"]


def test_stdin(tmp_path: Path) -> None:
    out = run(tmp_path, "-p", "x", "-f", "-", "config", "--services",
              stdin="services:\n  a: {image: a}\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "a\n"


def test_environment_variables(stack: Path) -> None:
    out = run(stack, "config", "--images", env={"TAG": "2", "COMPOSE_PROFILES": "front"})
    assert "nginx:2" in out.stdout.splitlines()


def test_warnings_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a: {image: 'a:${NOPE}'}\n")
    out = run(tmp_path, "config", "-q")
    assert out.returncode == 0
    assert 'warning: The "NOPE" variable is not set' in out.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("services:\n  web:\n    image: a\n    ports: ['80', '80:abc']\n",
     'error: compose.yaml: services.web.ports[1]: invalid port "80:abc"'),
    ("services:\n  web: {image: a, bogus: 1}\n",
     "error: compose.yaml: services.web.bogus: unknown key (not allowed here)"),
    ("services:\n  web: [1\n", "error: compose.yaml: line 3, column 1:"),
    ("services:\n  a: {image: a, depends_on: [b]}\n  b: {image: a, depends_on: [a]}\n",
     "dependency cycle detected: a -> b -> a"),
    ("a: 1\na: 2\n", "error: compose.yaml: line 2: duplicate key 'a'"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "compose.yaml").write_text(text)
    out = run(tmp_path, "config")
    assert out.returncode == 1
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_several_errors_all_printed(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: a, foo: 1, bar: 2}\n")
    out = run(tmp_path, "config")
    assert out.returncode == 1
    assert "services.web.bar" in out.stderr
    assert "services.web.foo" in out.stderr


def test_no_compose_file(tmp_path: Path) -> None:
    out = run(tmp_path, "config")
    assert out.returncode == 1
    assert "no configuration file provided" in out.stderr


def test_config_does_not_import_heavy_modules(stack: Path) -> None:
    code = ("import sys; from pycompose.cli.main import main; rc = main(['config', '-q']); "
            "print(sorted(m for m in ('trio', 'pyroute2', 'networkx', 'rich') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=stack, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
