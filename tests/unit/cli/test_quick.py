"""``pycompose.cli.quick`` reads a command line exactly as argparse does, or leaves it."""

from __future__ import annotations

import contextlib
import io
import itertools

import pytest

from pycompose.cli import quick
from pycompose.cli.main import find_command
from pycompose.cli.parser import build_parser

GLOBAL_WORDS = ("--progress", "quiet", "--progress=plain", "--progress=nope", "--ansi",
                "never", "--ansi=auto", "--debug", "--debug=1", "-f", "--prog=json")
COMMAND_WORDS = ("image", "pull", "-q", "--quiet", "-qq", "--qui", "app:1", "-h", "--platform",
                 "--", "-x")


def _argparse(argv: list[str]) -> object | None:
    """argparse's reading of ``argv``, or None when it refuses it (or prints help)."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser(find_command(argv), argv).parse_args(argv)
        except SystemExit:
            return None


def _arrangements(words: tuple[str, ...], most: int) -> list[list[str]]:
    return [list(p) for n in range(most + 1) for p in itertools.product(words, repeat=n)]


def _recognised() -> list[list[str]]:
    return [argv for head in _arrangements(GLOBAL_WORDS, 2)
            for tail in _arrangements(COMMAND_WORDS, 4)
            if quick.recognise(argv := head + tail) is not None]


RECOGNISED = _recognised()


def test_the_plain_command_lines_are_recognised() -> None:
    assert ["image", "pull", "app:1"] in RECOGNISED
    assert ["--progress", "quiet", "image", "pull", "-q", "app:1"] in RECOGNISED
    assert ["--debug", "--ansi=auto", "image", "pull", "app:1", "--quiet"] in RECOGNISED
    # About two hundred of the ~2 million arrangements: the rest go to argparse.
    assert 100 < len(RECOGNISED) < 1000


@pytest.mark.parametrize("argv", [
    ["image", "pull"],
    ["image", "pull", "a:1", "b:1"],
    ["image", "pull", "--platform", "linux/arm64", "app:1"],
    ["image", "pull", "-qq", "app:1"],
    ["image", "pull", "--qui", "app:1"],
    ["image", "pull", "-h"],
    ["image", "pull", "--", "app:1"],
    ["--prog=json", "image", "pull", "app:1"],
    ["--progress", "nope", "image", "pull", "app:1"],
    ["--progress"],
    ["--debug=1", "image", "pull", "app:1"],
    ["-f", "x.yml", "image", "pull", "app:1"],
    ["image", "pull", "app:1", "--progress", "quiet"],
    ["pull", "app:1"],
    ["image", "ls"],
])
def test_anything_else_is_left_to_argparse(argv: list[str]) -> None:
    assert quick.recognise(argv) is None


def test_every_recognised_line_means_what_argparse_reads(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.delenv("PYCOMPOSE_DEBUG", raising=False)
    for argv in RECOGNISED:
        mine = quick.recognise(argv)
        theirs = _argparse(argv)
        assert mine is not None
        assert theirs is not None, argv
        got = (mine.reference, mine.quiet, mine.progress, mine.debug)
        want = (theirs.reference, theirs.quiet, theirs.progress,  # type: ignore[attr-defined]
                theirs.debug)  # type: ignore[attr-defined]
        assert got == want, argv
        assert (theirs.command, theirs.image_command, theirs.platform) == (  # type: ignore[attr-defined]
            "image", "pull", None), argv


@pytest.mark.parametrize("value", ["1", ""])
def test_debug_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PYCOMPOSE_DEBUG", value)
    argv = ["image", "pull", "app:1"]
    mine = quick.recognise(argv)
    assert mine is not None
    assert mine.debug is _argparse(argv).debug is (value == "1")  # type: ignore[union-attr]
