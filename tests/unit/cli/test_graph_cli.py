"""``pycompose graph``: tree, dot and mermaid output; cycles are clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STACK = """services:
  web:
    image: a
    depends_on:
      db: {condition: service_healthy}
      cache: {condition: service_started}
  db: {image: pg}
  cache: {image: redis}
  other: {image: o}
"""


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/home/user", "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "pycompose", "-p", "g", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=env)


def test_tree(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    out = run(tmp_path, "graph")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "g"
    text = out.stdout
    assert "db (service_healthy)" in text
    assert "cache (service_started)" in text
    assert text.index("other") < text.index("web")


def test_dot(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    out = run(tmp_path, "graph", "--format", "dot")
    assert out.returncode == 0
    assert '"web" -> "db" [label="service_healthy"];' in out.stdout


def test_mermaid_selection(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(STACK)
    out = run(tmp_path, "graph", "--format", "mermaid", "web")
    assert out.returncode == 0, out.stderr
    assert '"other"' not in out.stdout
    assert '["db"]' in out.stdout


def test_cycle_error(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a: {image: a, links: [b]}\n  b: {image: b, volumes_from: [a]}\n")
    out = run(tmp_path, "graph")
    assert out.returncode == 1
    assert "dependency cycle detected: a -> b -> a" in out.stderr
    assert "Traceback" not in out.stderr
