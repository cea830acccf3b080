"""``pycompose commit``: a new image from a service container's changes (as
``docker compose commit``).

The container's overlay upper dir (what it changed on top of its image) is
copied aside, with the files the runtime only mounted over (``/etc/hosts``,
``/etc/resolv.conf``, ``/etc/hostname``) left out, and stored as one new layer
on top of the container's image; ``--change`` applies Dockerfile instructions
(``CMD``, ``ENV``, …) to the config, ``-m`` and ``-a`` set the comment and
author. A running container is paused meanwhile (``--pause``, the default),
so the copy is consistent.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", metavar="SERVICE")
    parser.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    parser.add_argument("-a", "--author", default="",
                        help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    parser.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                        help="Apply Dockerfile instruction to the created image")
    parser.add_argument("--index", type=int, default=1,
                        help="index of the container if service has multiple replicas")
    parser.add_argument("-m", "--message", default="", help="Commit message")
    parser.add_argument("-p", "--pause", action=argparse.BooleanOptionalAction, default=True,
                        help="Pause container during commit (default true)")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.cli.commands._registry import open_store, state_root
    from pycompose.errors import UsageError
    from pycompose.runtime.build.builder import drop_mountpoints

    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    if project is not None:
        ec.check_services(project, [args.service])
    c = ec.client()
    ctr = ec.service_container(c, name, args.service, args.index)
    upper = state_root() / "containers" / ctr["Id"] / "upper"
    if not upper.is_dir():
        raise UsageError(f"container {ctr['Name']} has no filesystem to commit ({upper})")
    store = open_store()
    parent = store.get(ctr["Image"])
    paused = False
    work = Path(tempfile.mkdtemp(prefix="commit-", dir=state_root()))
    try:
        copy = work / "upper"
        try:
            if args.pause and ctr["State"] == "running":
                c.post(ec.path("containers", ctr["Id"], "pause"))
                paused = True
            # cp -a keeps owners, modes, times, xattrs (opaque dirs) and whiteout devices.
            done = subprocess.run(["cp", "-a", "--", str(upper), str(copy)],
                                  capture_output=True, text=True)
        finally:
            if paused:
                with contextlib.suppress(Exception):
                    c.post(ec.path("containers", ctr["Id"], "unpause"))
        if done.returncode != 0:
            raise UsageError(f"commit {ctr['Name']}: copying {upper}: {done.stderr.strip()}")
        drop_mountpoints(copy)
        image = store.commit(copy, parent=parent, ref=args.repository, changes=args.change,
                             comment=args.message, author=args.author,
                             created_by=f"pycompose commit {args.service}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(image.id)
    return 0
