"""``pycompose image``: import, load, save, ls, inspect, history, rm, prune, tag.

These work on the image store under ``$PYCOMPOSE_ROOT/images`` directly (the
engine will call the same ``ImageStore`` methods). Output follows ``docker
image``: a rich table on a terminal, aligned plain text otherwise, one JSON
object per line with ``--format json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from pycompose.cli.parser import add_subcommands

TYPE_CHECKING = False  # typing.TYPE_CHECKING; importing typing costs the CLI's start ~2 ms
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    from pycompose.runtime.images import Image, ImageStore


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE",
                   help="tar archive (plain, gzip, zstd, bzip2, xz); '-' reads stdin")
    p.add_argument("name", nargs="?", metavar="NAME[:TAG]", help="name for the image")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                   help='Dockerfile instruction to apply, e.g. \'CMD ["sh"]\' (repeatable)')
    p.add_argument("-m", "--message", default="", help="commit message for the image")


def _load_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", required=True, metavar="FILE",
                   help="docker save tar, OCI archive tar, or OCI layout directory")
    p.add_argument("-q", "--quiet", action="store_true", help="Print nothing on success")


def _save_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="Write to FILE instead of standard output")


def _ls_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]",
                   help="only images with this name")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="Show full image IDs")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("-a", "--all", action="store_true",
                   help="Show all images (there are no hidden intermediate images)")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="dangling=true|false, reference=PATTERN (repeatable)")


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _history_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show layer diff-ids")
    p.add_argument("--format", choices=["table", "json"], default="table")


def _rm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true",
                   help="Remove an image with several names, or untag one in use")


def _prune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true",
                   help="Remove all images not used by a container, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not ask for confirmation")


def _tag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE[:TAG]")
    p.add_argument("target", metavar="TARGET[:TAG]")


def _registry_args(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        from pycompose.cli.commands import _image_registry  # pull, push, bootstrap

        _image_registry.ARGUMENTS[name](p)

    return add


# name -> (help, aliases, its arguments); main builds only the one on the command line.
SUBCOMMANDS: dict[str, tuple[str, tuple[str, ...], Callable[[argparse.ArgumentParser], None]]] = {
    "import": ("Create an image from a root filesystem tarball", (), _import_args),
    "load": ("Load images from a docker save archive or an OCI layout", (), _load_args),
    "save": ("Save images to a tar archive (docker save / OCI format)", (), _save_args),
    "ls": ("List images", ("list",), _ls_args),
    "inspect": ("Show detailed information on images (JSON)", (), _inspect_args),
    "history": ("Show the history of an image", (), _history_args),
    "rm": ("Remove images", ("remove",), _rm_args),
    "prune": ("Remove unused images", (), _prune_args),
    "tag": ("Create a name TARGET that refers to SOURCE", (), _tag_args),
    "pull": ("Download an image from a registry", (), _registry_args("pull")),
    "push": ("Upload an image to a registry", (), _registry_args("push")),
    "bootstrap": ("Build a base image without a registry "
                  "(busybox, debian:bookworm, debian:bookworm-slim)", (),
                  _registry_args("bootstrap")),
}


def add_arguments(parser: argparse.ArgumentParser, subcommand: str | None = None) -> None:
    add_subcommands(parser, "image_command", SUBCOMMANDS, subcommand)


def open_store() -> ImageStore:
    from pycompose.paths import host_paths
    from pycompose.runtime.images import ImageStore

    return ImageStore(host_paths().root / "images")


def run(args: argparse.Namespace) -> int:
    command = {"list": "ls", "remove": "rm"}.get(args.image_command, args.image_command)
    if command == "pull":  # in the engine: no store opened here
        from pycompose.cli.commands._image_registry import HANDLERS

        return HANDLERS[command](None, args)
    store = open_store()
    if command in ("push", "bootstrap"):
        from pycompose.cli.commands._image_registry import HANDLERS

        return HANDLERS[command](store, args)
    handler = {
        "import": _import, "load": _load, "ls": _ls, "inspect": _inspect, "rm": _rm,
        "prune": _prune, "tag": _tag, "history": _history, "save": _save,
    }[command]
    return handler(store, args)


def _import(store: ImageStore, args: argparse.Namespace) -> int:
    from pathlib import Path  # not at the top: `image pull` needs no pathlib

    source = sys.stdin.buffer if args.file == "-" else Path(args.file)
    image = store.import_rootfs(source, args.name, changes=args.change, message=args.message)
    print(image.id)
    return 0


def _load(store: ImageStore, args: argparse.Namespace) -> int:
    from pathlib import Path

    images = store.load(Path(args.input))
    if not args.quiet:
        for image in images:
            if image.repo_tags:
                for name in image.repo_tags:
                    print(f"Loaded image: {name}")
            else:
                print(f"Loaded image ID: {image.id}")
    return 0


def _save(store: ImageStore, args: argparse.Namespace) -> int:
    if args.output:
        from pathlib import Path

        store.save(args.images, Path(args.output))
        return 0
    if sys.stdout.isatty():
        from pycompose.errors import UsageError

        raise UsageError("refusing to write an archive to a terminal: use -o FILE or redirect")
    sys.stdout.flush()
    store.save(args.images, sys.stdout.buffer)
    sys.stdout.buffer.flush()
    return 0


def _rows(images: Sequence[Image], reference: str | None) -> list[tuple[str, str, Image]]:
    from pycompose.runtime.images import parse_reference

    want = parse_reference(reference) if reference else None
    rows = []
    for image in images:
        refs = [parse_reference(n) for n in image.names]
        if want is not None:
            explicit_tag = ":" in reference.rsplit("/", 1)[-1] if reference else False
            refs = [r for r in refs if r.repository == want.repository
                    and (not explicit_tag or r.tag == want.tag)]
            if not refs:
                continue
        if not refs:
            rows.append(("<none>", "<none>", image))
        for ref in refs:
            rows.append((ref.familiar_repository, ref.tag or "<none>", image))
    return rows


def _filters(specs: Sequence[str]) -> list[tuple[str, str]]:
    from pycompose.errors import UsageError

    out = []
    for spec in specs:
        key, eq, value = spec.partition("=")
        if not eq or key not in ("dangling", "reference"):
            raise UsageError(f"--filter {spec!r}: use dangling=true|false or reference=PATTERN")
        if key == "dangling" and value not in ("true", "false"):
            raise UsageError(f"--filter {spec!r}: dangling takes true or false")
        out.append((key, value))
    return out


def _keep(row: tuple[str, str, Image], filters: Sequence[tuple[str, str]]) -> bool:
    import fnmatch

    repo, tag, image = row
    for key, value in filters:
        if key == "dangling" and (value == "true") != (not image.names):
            return False
        if key == "reference" and not (
            fnmatch.fnmatchcase(repo, value) or fnmatch.fnmatchcase(f"{repo}:{tag}", value)
        ):
            return False
    return True


def _ls(store: ImageStore, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime  # not imported by `image pull`, which needs no dates

    now = datetime.now(UTC)
    filters = _filters(args.filter)
    rows = [r for r in _rows(store.list(), args.reference) if _keep(r, filters)]
    if args.quiet:
        seen: set[str] = set()
        for _, _, image in rows:
            shown = image.id if args.no_trunc else image.short_id
            if shown not in seen:
                seen.add(shown)
                print(shown)
        return 0
    records = []
    for repo, tag, image in rows:
        created = image.created or image.added
        records.append({
            "Repository": repo,
            "Tag": tag,
            "ID": image.id if args.no_trunc else image.short_id,
            "CreatedAt": created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC"),
            "CreatedSince": human_since(created, now),
            "Size": human_size(image.size),
        })
    if args.format == "json":
        for record in records:
            print(json.dumps(record))
        return 0
    header = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
    cells = [(r["Repository"], r["Tag"], r["ID"], r["CreatedSince"], r["Size"]) for r in records]
    _table(header, cells)
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    if console.is_terminal:
        from rich import box
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for title in header:
            table.add_column(title, no_wrap=True)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        line = "   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")


def _inspect(store: ImageStore, args: argparse.Namespace) -> int:
    from pycompose.runtime.errors import ImageError
    from pycompose.runtime.images.inspect import inspect_image

    found: list[dict[str, Any]] = []
    errors: list[Exception] = []
    for ref in args.images:
        try:
            found.append(inspect_image(store.get(ref)))
        except ImageError as exc:
            errors.append(exc)
    print(json.dumps(found, indent=4))
    if errors:
        raise errors[0] if len(errors) == 1 else ExceptionGroup("image inspect", errors)
    return 0


def _history(store: ImageStore, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pycompose.runtime.images.config import parse_time

    image = store.get(args.image)
    now = datetime.now(UTC)
    layers = iter(image.layers)
    records = []
    for entry in image.config.history:
        layer = None if entry.empty_layer else next(layers, None)
        created = parse_time(entry.created) if entry.created else None
        created_by = entry.created_by
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        records.append({
            "CreatedSince": human_since(created, now) if created else "<missing>",
            "CreatedAt": entry.created,
            "CreatedBy": created_by,
            "Size": human_size(layer.size if layer else 0),
            "Comment": entry.comment,
            "DiffID": layer.diff_id if layer else "",
        })
    records.reverse()  # newest first, as docker history
    if args.quiet:
        for record in records:
            if record["DiffID"]:
                print(record["DiffID"])
    elif args.format == "json":
        for record in records:
            print(json.dumps(record))
    else:
        _table(("CREATED", "CREATED BY", "SIZE", "COMMENT"),
               [(r["CreatedSince"], r["CreatedBy"], r["Size"], r["Comment"]) for r in records])
    return 0


def _rm(store: ImageStore, args: argparse.Namespace) -> int:
    from pycompose.runtime.errors import ImageError

    errors: list[Exception] = []
    for ref in args.images:
        try:
            for line in store.remove(ref, force=args.force):
                print(line)
        except ImageError as exc:
            errors.append(exc)
    if errors:
        raise errors[0] if len(errors) == 1 else ExceptionGroup("image rm", errors)
    return 0


def _prune(store: ImageStore, args: argparse.Namespace) -> int:
    if not args.force:
        what = ("all images without at least one container associated to them" if args.all
                else "all dangling images")
        print(f"WARNING! This will remove {what}.")
        sys.stdout.write("Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    from pycompose.paths import host_paths
    from pycompose.runtime.build.cache import build_lock

    # Unused layers include those a running build has made and not yet put in an
    # image: wait for builds to finish (a bounded wait, then a clear error).
    with build_lock(host_paths().root, exclusive=True):
        result = store.prune(all=args.all)
    from pycompose.cli.commands._registry import work_dir
    from pycompose.runtime.registry import prune_kept_layers

    # Layers that failed pulls kept for a retry are not images, but space all the same.
    kept = prune_kept_layers(work_dir())
    if result.deleted or result.untagged:
        print("Deleted Images:")
        for name in result.untagged:
            print(f"untagged: {name}")
        for image_id in result.deleted:
            print(f"deleted: {image_id}")
        print()
    print(f"Total reclaimed space: {human_size(result.reclaimed + kept)}")
    return 0


def _tag(store: ImageStore, args: argparse.Namespace) -> int:
    store.tag(args.source, args.target)
    return 0


def human_size(size: int) -> str:
    """Decimal units with three significant digits, as Docker prints sizes (``4.26MB``)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_since(when: datetime, now: datetime) -> str:
    """``2 hours ago``, ``About a minute ago``: Docker's relative times."""
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 1:
        return "Less than a second ago"
    if seconds < 60:
        return f"{int(seconds)} seconds ago"
    minutes = seconds / 60
    if round(minutes) == 1:
        return "About a minute ago"
    if minutes < 60:
        return f"{int(minutes)} minutes ago"
    hours = minutes / 60
    if round(hours) == 1:
        return "About an hour ago"
    if hours < 48:
        return f"{int(hours)} hours ago"
    days = hours / 24
    if days < 14:
        return f"{int(days)} days ago"
    if days < 60:
        return f"{int(days / 7)} weeks ago"
    if days < 365 * 2:
        return f"{int(days / 30)} months ago"
    return f"{int(days / 365)} years ago"
