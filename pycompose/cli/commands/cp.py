"""``pycompose cp``: copy files between a service container and the host.

The copy travels as a tar stream through ``exec`` (``tar`` inside the container,
Python's ``tarfile`` on the host, extracted with the ``data`` filter so no entry
can land outside the destination): the image needs a ``tar`` (busybox has one).
"""

from __future__ import annotations

import argparse
import io
import posixpath
import sys
import tarfile
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="SERVICE:SRC_PATH or a host path")
    parser.add_argument("dest", metavar="DEST", help="SERVICE:DEST_PATH or a host path")
    parser.add_argument("--index", type=int, default=1, help="Index of the container")
    parser.add_argument("-a", "--archive", action="store_true",
                        help="Keep uid/gid (as root, the default here)")
    parser.add_argument("-L", "--follow-link", action="store_true",
                        help="Follow symbolic links in SRC")


def _split(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        service, _, path = arg.partition(":")
        return service, path
    return None, arg


def run(args: argparse.Namespace) -> int:
    from pycompose.cli import engine_client as ec
    from pycompose.errors import UsageError

    src_svc, src = _split(args.source)
    dst_svc, dst = _split(args.dest)
    if (src_svc is None) == (dst_svc is None):
        raise UsageError("cp copies between a container and the host: exactly one of SRC and "
                         "DEST must be SERVICE:PATH")
    project = ec.try_load(args)
    name = project.name if project is not None else ec.project_name(args)
    service = src_svc or dst_svc
    assert service is not None
    if project is not None:
        ec.check_services(project, [service])
    c = ec.client()
    ctr = ec.service_container(c, name, service, args.index)
    path = ec.path("containers", ctr["Id"], "exec")
    err = io.BytesIO()
    if src_svc is not None:  # container -> host
        parent, base = posixpath.split(src.rstrip("/") or "/")
        flags = "chf" if args.follow_link else "cf"
        with tempfile.TemporaryFile() as out:
            result = c.attach(path, {"Cmd": ["tar", flags, "-", "-C", parent or "/", base]},
                              stdin=None, stdout=out, stderr=err)
            if result.get("exit_code") != 0:
                raise UsageError(f"cp {args.source}: {_why(result, err)}")
            out.seek(0)
            target = Path(dst)
            with tarfile.open(fileobj=out) as tar:
                members = tar.getmembers()
                if target.is_dir():
                    tar.extractall(target, filter="data")
                else:  # copy to a new name: rename the top entry
                    for m in members:
                        m.name = target.name + m.name[len(base):]
                    tar.extractall(target.parent or Path("."), members=members, filter="data")
        print(f"Copied {ctr['Name']}:{src} to {dst}", file=sys.stderr)
        return 0
    # host -> container
    src_path = Path(src)
    if not src_path.exists():
        raise UsageError(f"cp: {src}: no such file or directory")
    with tempfile.TemporaryFile() as archive:
        with tarfile.open(fileobj=archive, mode="w", dereference=args.follow_link) as tar:
            tar.add(src_path, arcname=posixpath.basename(dst.rstrip("/")) if not
                    dst.endswith("/") else src_path.name)
        archive.seek(0)
        into = dst if dst.endswith("/") else posixpath.dirname(dst) or "/"
        result = c.attach(path, {"Cmd": ["tar", "xf", "-", "-C", into]},
                          stdin=archive.fileno(), stdout=io.BytesIO(), stderr=err)
    if result.get("exit_code") != 0:
        raise UsageError(f"cp to {args.dest}: {_why(result, err)}")
    print(f"Copied {src} to {ctr['Name']}:{dst}", file=sys.stderr)
    return 0


def _why(result: dict[str, object], err: io.BytesIO) -> str:
    text = err.getvalue().decode(errors="replace").strip() or str(result.get("error") or "")
    return text or f"tar exited with code {result.get('exit_code')}"

