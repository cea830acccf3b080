"""``pycompose images``: the images the project's containers use."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display IDs")
    parser.add_argument("--format", default="table", choices=["table", "json"])


def run(args: argparse.Namespace) -> int:
    from pycompose.cli.commands._each import targets
    from pycompose.paths import host_paths
    from pycompose.runtime.errors import ImageError
    from pycompose.runtime.images import ImageStore

    _, _, items = targets(args)
    store = ImageStore(host_paths().root / "images")
    rows = []
    for i in items:
        try:
            image = store.get(i["Image"])
        except ImageError:
            continue
        repo, _, tag = (image.repo_tags[0] if image.repo_tags else "<none>:<none>"
                        ).rpartition(":")
        rows.append({"ContainerName": i["Name"], "Repository": repo, "Tag": tag,
                     "ID": image.short_id, "Size": image.size})
    if args.quiet:
        for r in sorted({r["ID"] for r in rows}):
            print(r)
    elif args.format == "json":
        print(json.dumps(rows))
    else:
        table = [("CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE")] + [
            (r["ContainerName"], r["Repository"], r["Tag"], r["ID"], _size(r["Size"]))
            for r in rows]
        widths = [max(len(str(t[k])) for t in table) for k in range(5)]
        for t in table:
            print("   ".join(str(v).ljust(w) for v, w in zip(t, widths, strict=True)).rstrip())
    return 0


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n:.3g}TB"
