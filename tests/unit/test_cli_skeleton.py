"""The CLI shell: version, help, exit codes, errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pycompose import __version__
from pycompose.cli.main import COMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pycompose", *args],
                          capture_output=True, text=True, timeout=60)


def test_version_flag() -> None:
    out = run_cli("--version")
    assert out.returncode == 0
    assert __version__ in out.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str) -> None:
    out = run_cli(command, "--help")
    assert out.returncode == 0, out.stderr
    assert "usage: pycompose" in out.stdout


def test_unknown_command_is_an_error() -> None:
    out = run_cli("no-such-command")
    assert out.returncode != 0
    assert "invalid choice" in out.stderr


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: pycompose" in capsys.readouterr().err
