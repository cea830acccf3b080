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


def _image_subcommands(argv: list[str]) -> set[str]:
    import argparse

    from pycompose.cli.parser import build_parser

    parser = build_parser("image", argv)
    image = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    image_parser = image.choices["image"]
    sub = next(a for a in image_parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_only_the_image_subcommand_given_is_built() -> None:
    assert _image_subcommands(["--progress", "quiet", "image", "pull", "-q", "x"]) == {"pull"}
    assert _image_subcommands(["image", "list"]) == {"ls", "list"}
    everything = _image_subcommands(["image", "--help"])
    assert {"pull", "push", "bootstrap", "import", "ls", "list", "rm", "tag"} <= everything
    assert _image_subcommands(["image", "nosuch"]) == everything  # argparse lists them all


@pytest.mark.parametrize("sub", ["import", "load", "save", "ls", "inspect", "history", "rm",
                                 "prune", "tag", "pull", "push", "bootstrap"])
def test_every_image_subcommand_has_help(sub: str) -> None:
    out = subprocess.run([sys.executable, "-m", "pycompose", "image", sub, "--help"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert f"usage: pycompose image {sub}" in out.stdout
