"""``pycompose config``: validate and print the resolved Compose model."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE",
                        help="Only these services (and what they depend on)")
    parser.add_argument("--format", choices=["yaml", "json"], default="yaml",
                        help="Output format (default: yaml)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="Only validate the configuration, print nothing")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--services", dest="list_services", action="store_true",
                      help="Print the service names, one per line")
    what.add_argument("--volumes", dest="list_volumes", action="store_true",
                      help="Print the volume names, one per line")
    what.add_argument("--networks", dest="list_networks", action="store_true",
                      help="Print the network names, one per line")
    what.add_argument("--profiles", dest="list_profiles", action="store_true",
                      help="Print the profile names, one per line")
    what.add_argument("--images", dest="list_images", action="store_true",
                      help="Print the image names, one per line")
    what.add_argument("--hash", metavar="SERVICE",
                      help="Print the config hash of SERVICE (comma-separated, or '*')")
    parser.add_argument("--no-interpolate", action="store_true",
                        help="Do not interpolate environment variables")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="Write the output to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    from pycompose.cli.project import load_options, print_warnings
    from pycompose.compose import loader

    if args.no_interpolate:
        options = load_options(args, services=args.services, interpolate=False)
        loaded = loader.load_document(options, loader.Stage.PROFILES)
        print_warnings(loaded.warnings)
        doc: dict[str, Any] = {"name": loaded.name, **{k: v for k, v in loaded.doc.items()
                                                        if k != "name"}}
        if args.quiet:
            return 0
        from pycompose.compose import serialize

        return _emit(args, _render(serialize.to_output(doc, escape_dollars=False), args.format))

    options = load_options(args, services=args.services)
    if args.quiet:
        # Every check runs on the plain document; the typed model adds nothing here.
        print_warnings(loader.load_document(options).warnings)
        return 0
    project = loader.load_project(options)
    print_warnings(project.warnings)
    if args.services:
        keep = _with_dependencies(project, args.services)
        from dataclasses import replace

        from pycompose.compose.model import FrozenDict
        project = replace(project, services=FrozenDict(
            (n, s) for n, s in project.services.items() if n in keep))
    if args.list_services:
        return _emit(args, _lines(project.services))
    if args.list_volumes:
        return _emit(args, _lines(project.volumes))
    if args.list_networks:
        return _emit(args, _lines(project.networks))
    if args.list_profiles:
        return _emit(args, _lines(project.all_profiles()))
    if args.list_images:
        return _emit(args, _lines(
            s.image or f"{project.name}-{s.name}" for s in project.services.values()))
    if args.hash:
        return _hashes(args, project)
    from pycompose.compose import serialize

    doc = serialize.to_output(serialize.project_to_dict(project))
    return _emit(args, _render(doc, args.format))


def _with_dependencies(project: Any, names: list[str]) -> set[str]:
    keep: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in keep or name not in project.services:
            continue
        keep.add(name)
        todo.extend(project.services[name].dependencies())
    return keep


def _hashes(args: argparse.Namespace, project: Any) -> int:
    from pycompose.compose.errors import ComposeError
    from pycompose.compose.hashing import config_hash

    wanted = sorted(project.services) if args.hash.strip() == "*" else [
        n.strip() for n in args.hash.split(",") if n.strip()]
    missing = [n for n in wanted if n not in project.services]
    if missing:
        raise ComposeError(f"no such service: {', '.join(missing)}")
    return _emit(args, "".join(f"{n} {config_hash(project.services[n])}\n" for n in wanted))


def _lines(items: Any) -> str:
    return "".join(f"{item}\n" for item in sorted(items))


def _render(doc: dict[str, Any], fmt: str) -> str:
    from pycompose.compose import serialize

    text: str = serialize.dump_json(doc) if fmt == "json" else serialize.dump_yaml(doc)
    return text


def _emit(args: argparse.Namespace, text: str) -> int:
    if args.output:
        from pycompose.errors import UsageError

        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        sys.stdout.write(text)
    return 0
