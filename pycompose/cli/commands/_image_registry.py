"""``pycompose image pull|push|bootstrap``: the registry and bootstrap subcommands of
``pycompose image`` (hooked into ``image.py`` by ``ARGUMENTS`` and ``HANDLERS``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from typing import Any

    from pycompose.runtime.images import ImageStore


def _pull_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                   help="Platform to pull from a multi-platform image (default: this host)")
    p.add_argument("-q", "--quiet", action="store_true", help="Print only the image name")


def _push_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", metavar="NAME[:TAG]")
    p.add_argument("--chunk-size", type=int, metavar="BYTES",
                   help="Upload blobs in chunks of this size (default: one request each)")
    p.add_argument("--oci", action="store_true", help="Push an OCI manifest (default: Docker v2)")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")


def _bootstrap_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="busybox | debian:SUITE | debian:SUITE-slim")
    p.add_argument("--mirror", metavar="URL",
                   help="Debian mirror (default: the host's apt source)")
    p.add_argument("--tag", metavar="NAME[:TAG]", help="store under this name instead")


ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "pull": _pull_args, "push": _push_args, "bootstrap": _bootstrap_args,
}


def _platform(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    parts = text.split("/")
    if len(parts) < 2 or not all(parts):
        from pycompose.errors import UsageError

        raise UsageError(f"--platform {text!r}: expected OS/ARCH[/VARIANT]")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        out["variant"] = parts[2]
    return out


def _pull(store: ImageStore | None, args: argparse.Namespace) -> int:
    """Through the engine, as ``docker pull`` goes through dockerd: this process imports
    no trio and no registry client (``pycompose.cli.quick`` reads the plainest command
    lines itself)."""
    from pycompose.cli.quick import image_pull

    _platform(args.platform)  # a usage error before any connection
    return image_pull(args.reference, quiet=args.quiet, progress=args.progress,
                      platform=args.platform)


def _push(store: ImageStore, args: argparse.Namespace) -> int:
    import trio

    from pycompose.cli.commands._registry import Renderer, registry_config, use_tty, work_dir
    from pycompose.runtime.registry import push_image

    renderer = Renderer(tty=use_tty(args.progress), quiet=args.quiet)
    with renderer.running():
        trio.run(lambda: push_image(store, args.reference, config=registry_config(),
                                    work_dir=work_dir(), progress=renderer.callback(),
                                    chunk_size=args.chunk_size, oci=args.oci))
    return 0


def _bootstrap(store: ImageStore, args: argparse.Namespace) -> int:
    from pycompose.runtime.bootstrap import bootstrap

    image = bootstrap(store, args.name, mirror=args.mirror, tag=args.tag,
                      log=lambda line: print(line, flush=True))
    print(image.id)
    return 0


HANDLERS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "pull": _pull, "push": _push, "bootstrap": _bootstrap,
}
