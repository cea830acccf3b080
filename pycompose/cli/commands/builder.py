"""``pycompose builder``: prune and measure the Dockerfile builder's cache.

As ``docker builder prune`` / ``du``, working directly on the state root
(``$PYCOMPOSE_ROOT/build-cache`` and the image store), like ``image prune``.
What is removed is described in ``pycompose.runtime.build.cache``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycompose.runtime.images import ImageStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="builder_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("prune", help="Remove build cache")
    p.add_argument("-a", "--all", action="store_true",
                   help="Remove all unused build cache, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--keep-duration", metavar="DURATION",
                   help="Keep cache used within this duration (e.g. 24h, 90m)")
    p.add_argument("--filter", action="append", default=[], metavar="until=DURATION",
                   help="Remove only cache not used within DURATION (as --keep-duration)")

    p = sub.add_parser("du", help="Show build cache disk usage")
    p.add_argument("--verbose", action="store_true", help="Show every entry, also metadata steps")


def run(args: argparse.Namespace) -> int:
    from pycompose.paths import host_paths
    from pycompose.runtime.images import ImageStore

    root = host_paths().root
    store = ImageStore(root / "images")
    if args.builder_command == "du":
        return _du(store, root, args)
    return _prune(store, root, args)


def _keep_duration(args: argparse.Namespace) -> float | None:
    from pycompose.compose.units import parse_duration
    from pycompose.errors import UsageError

    texts = [("--keep-duration", args.keep_duration)] if args.keep_duration else []
    for spec in args.filter:
        key, eq, value = spec.partition("=")
        if key.strip() != "until" or not eq:
            raise UsageError(f"--filter {spec!r}: only until=DURATION is supported")
        texts.append(("--filter until", value))
    longest: float | None = None
    for option, text in texts:
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise UsageError(f"{option}: {exc}") from None
        longest = seconds if longest is None else max(longest, seconds)
    return longest


def _prune(store: ImageStore, root: Path, args: argparse.Namespace) -> int:
    from pycompose.cli.commands.image import human_size
    from pycompose.runtime.build.cache import prune_build_cache

    keep = _keep_duration(args)  # a bad duration fails before the question
    if not args.force:
        what = "all build cache" if args.all else "all dangling build cache"
        sys.stdout.write(f"WARNING! This will remove {what}. "
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline()
        if not answer:
            sys.stdout.write("\n")  # EOF: end the prompt's line
        if answer.strip().lower() not in ("y", "yes"):
            return 0  # as docker: cancelled is not an error
    result = prune_build_cache(store, root, all=args.all, keep_duration=keep)
    if result.removed or result.mounts:
        print("Deleted build cache objects:")
        for key in result.removed:
            print(key[:12])
        for mount in result.mounts:
            print(f"cache mount {mount}")
        print()
    print(f"Total reclaimed space: {human_size(result.reclaimed)}")
    return 0


def _du(store: ImageStore, root: Path, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pycompose.cli.commands.image import _table, human_since, human_size
    from pycompose.runtime.build.cache import cache_usage

    usage = cache_usage(store, root)
    now = datetime.now(UTC)
    rows = []
    for entry in sorted(usage.entries, key=lambda e: (-e.last_used, e.key)):
        if entry.layer is None and not entry.dead and not args.verbose:
            continue  # a metadata step: no data of its own
        rows.append((
            entry.key[:12],
            "true" if entry.key in usage.dangling else "false",
            human_size(usage.sizes.get(entry.key, 0)),
            human_since(datetime.fromtimestamp(entry.last_used, UTC), now),
        ))
    for mount, size in usage.mounts:
        rows.append((f"cache:{mount}"[:25], "true", human_size(size), ""))
    if rows:
        _table(("ID", "DANGLING", "SIZE", "LAST ACCESSED"), rows)
    print(f"Entries:\t{len(usage.entries)}")
    print(f"Reclaimable:\t{human_size(usage.reclaimable)}")
    print(f"Total:\t\t{human_size(usage.total)}")
    return 0
