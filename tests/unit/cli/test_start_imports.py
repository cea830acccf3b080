"""What a command that only talks to the engine imports before its request goes out.

Python's start is most of such a command's time (``image pull`` against the engine
is compared with skopeo in ``benchmarks/``), so its path stays off the heavy modules:
``typing`` (~2 ms), ``pathlib`` and ``urllib.parse`` (~3 ms together),
``dataclasses``/``inspect``, the libraries, the engine's own stack; and for the command
lines ``pycompose.cli.quick`` reads itself, argparse, ``re``, ``enum``, ``socket`` and
``json`` too (~7 ms), which load while the engine works.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WATCHED = ("typing", "pathlib", "urllib.parse", "dataclasses", "inspect", "trio", "rich",
           "h11", "http.client",
           "pycompose.compose", "pycompose.runtime", "pycompose.network", "pycompose.engine")
BEFORE_ARGPARSE = ("argparse", "re", "enum", "socket", "json", "contextlib", "collections")

# The request stops at the engine socket's connect (the ``socket.connect`` audit event):
# the modules imported by then (and not by the interpreter's own start, which an
# install's .pth files may extend) are the command's start-up; nothing is sent and no
# engine is started.
PROBE = """
import sys
before = set(sys.modules)
def hook(event, args):
    if event == "socket.connect":
        print(sorted(m for m in {watched!r} if m in sys.modules and m not in before),
              flush=True)
        raise SystemExit(0)
sys.addaudithook(hook)
from pycompose.cli.main import main
main({argv!r})
"""


def _python(tmp_path: Path, code: str) -> str:
    """What a fresh interpreter of this install prints running ``code`` in ``tmp_path``."""
    env = {"PYCOMPOSE_ROOT": str(tmp_path / "root"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _imported_before_connect(tmp_path: Path, argv: list[str],
                             watched: tuple[str, ...] = WATCHED) -> str:
    return _python(tmp_path, PROBE.format(watched=watched, argv=argv))


@pytest.mark.parametrize("argv", [
    ["image", "pull", "example.test/app:1"],
    ["--progress", "quiet", "image", "pull", "-q", "example.test/app@sha256:" + "a" * 64],
    ["image", "pull", "--platform", "linux/arm64", "example.test/app:1"],  # through argparse
])
def test_image_pull_reaches_the_engine_without_heavy_imports(tmp_path: Path,
                                                              argv: list[str]) -> None:
    assert _imported_before_connect(tmp_path, argv) == "[]"
    assert not (tmp_path / "root").exists()  # nothing was started or written


@pytest.mark.parametrize("argv", [
    ["image", "pull", "example.test/app:1"],
    ["--progress=plain", "--debug", "image", "pull", "--quiet", "example.test/app:1"],
])
def test_a_quick_command_line_is_sent_before_argparse_and_json(tmp_path: Path,
                                                               argv: list[str]) -> None:
    assert _imported_before_connect(tmp_path, argv, BEFORE_ARGPARSE) == "[]"


def test_other_command_lines_go_through_argparse(tmp_path: Path) -> None:
    """The probe sees what it watches: a pull with ``--platform`` is read by argparse."""
    argv = ["image", "pull", "--platform", "linux/arm64", "example.test/app:1"]
    assert "argparse" in _imported_before_connect(tmp_path, argv, BEFORE_ARGPARSE)


def test_the_package_is_found_without_an_import_hook(tmp_path: Path) -> None:
    """The install (editable or not) puts a plain path on ``sys.path``: setuptools'
    import hook for mapped folders would import ``pathlib`` and more at every start
    (see setup.py); the subpackages resolve through the links in ``pycompose/``."""
    code = ("import sys; hooks = [m for m in sys.modules if m.startswith('__editable__')]; "
            "import pycompose, pycompose.runtime as r; print(hooks, "
            "r.__file__.startswith(pycompose.__path__[0]))")
    assert _python(tmp_path, code) == "[] True"
