"""Command lines whose request goes to the engine before argparse loads.

A command that only asks the engine for something spends much of its time starting
Python, and argparse (with the ``re`` and ``enum`` it imports) is ~7 ms of that. The
command lines below are read here, word by word; the request is sent first, and what
only the answer needs (JSON, the progress display) loads while the engine works::

    pycompose [--progress MODE] [--ansi WHEN] [--debug] image pull [-q|--quiet] NAME[:TAG|@DIGEST]

Anything else (another option, an abbreviation, ``--help``, a mistake) is left to
argparse, which stays what a command line means: ``tests/unit/cli/test_quick.py``
holds the two readings to the same answer over some two million arrangements of these
words and their near misses.
"""

from __future__ import annotations

from pycompose.cli.main import ANSI_MODES, PROGRESS_MODES, env_debug

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from collections.abc import Sequence

_QUIET = ("-q", "--quiet")


class ImagePull:
    """``image pull`` as argparse reads it: the same names as its ``Namespace``."""

    __slots__ = ("debug", "progress", "quiet", "reference")

    def __init__(self, reference: str, *, quiet: bool, progress: str, debug: bool) -> None:
        self.reference = reference
        self.quiet = quiet
        self.progress = progress
        self.debug = debug

    def run(self) -> int:
        return image_pull(self.reference, quiet=self.quiet, progress=self.progress)


def recognise(argv: Sequence[str]) -> ImagePull | None:
    """The command line ``argv`` if it is one of this module's, else ``None``."""
    progress = "auto"
    debug = env_debug()
    at = 0
    while at < len(argv) and argv[at].startswith("-"):
        option, has_value, value = argv[at].partition("=")
        if option in ("--progress", "--ansi"):
            if not has_value:
                at += 1
                if at == len(argv):
                    return None
                value = argv[at]
            if value not in (PROGRESS_MODES if option == "--progress" else ANSI_MODES):
                return None
            if option == "--progress":
                progress = value
        elif argv[at] == "--debug":
            debug = True
        else:
            return None
        at += 1
    if list(argv[at:at + 2]) != ["image", "pull"]:
        return None
    rest = argv[at + 2:]
    words = [word for word in rest if word not in _QUIET]
    if len(words) != 1 or words[0].startswith("-"):
        return None
    return ImagePull(words[0], quiet=len(words) < len(rest), progress=progress, debug=debug)


def image_pull(reference: str, *, quiet: bool, progress: str, platform: str | None = None) -> int:
    """``pycompose image pull``: the pull runs in the engine (as ``docker pull`` in
    dockerd), which gets the request before this process loads anything to show it."""
    from pycompose.client import connect

    with connect() as client:
        stream = client.pull(reference, platform=platform)
        from pycompose.cli.commands._registry import Renderer, render_pull, use_tty

        renderer = Renderer(tty=use_tty(progress), quiet=quiet)
        with renderer.running():
            done = render_pull(stream, renderer, reference)
    print(done["reference"])
    return 0
