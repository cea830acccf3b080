"""What a command that only talks to the engine imports before its request goes out.

Python's start is most of such a command's time (``image pull`` against the engine
is compared with skopeo in ``benchmarks/``), so its path stays off the heavy modules:
``typing`` (~2 ms), ``dataclasses``/``inspect``, the libraries, the engine's own stack.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WATCHED = ("typing", "dataclasses", "inspect", "trio", "rich", "h11", "http.client",
           "pycompose.compose", "pycompose.runtime", "pycompose.network", "pycompose.engine")

# The request stops at the engine socket's connect: the modules imported by then are
# the command's start-up; nothing is sent and no engine is started.
PROBE = """
import socket, sys
def connect(self, address):
    print(sorted(m for m in {watched!r} if m in sys.modules), flush=True)
    raise SystemExit(0)
socket.socket.connect = connect
from pycompose.cli.main import main
main({argv!r})
"""


def _imported_before_connect(tmp_path: Path, argv: list[str]) -> str:
    env = {"PYCOMPOSE_ROOT": str(tmp_path / "root"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE.format(watched=WATCHED, argv=argv)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize("argv", [
    ["image", "pull", "example.test/app:1"],
    ["--progress", "quiet", "image", "pull", "-q", "example.test/app@sha256:" + "a" * 64],
])
def test_image_pull_reaches_the_engine_without_heavy_imports(tmp_path: Path,
                                                              argv: list[str]) -> None:
    assert _imported_before_connect(tmp_path, argv) == "[]"
    assert not (tmp_path / "root").exists()  # nothing was started or written
