"""``pycompose build``: build the images of services with ``build:`` (as ``docker compose build``).

The image is named by the service's ``image:``, else ``<project>-<service>``
(Docker Compose's name), plus ``build.tags``. Output is the builder's plain
progress (``#N [stage i/n] INSTRUCTION``, output lines, ``DONE``/``CACHED``).
:func:`service_build` maps a service's ``build:`` to ``BuildOptions`` for any
caller (``up --build`` in the engine can use it too).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycompose.compose.model import Project
    from pycompose.runtime.build import BuildOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("services", nargs="*", metavar="SERVICE")
    parser.add_argument("--no-cache", action="store_true",
                        help="Do not use cache when building the image")
    parser.add_argument("--pull", action="store_true",
                        help="Always attempt to pull a newer version of the image")
    parser.add_argument("--build-arg", action="append", default=[], metavar="KEY=VAL",
                        help="Set build-time variables for services")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="Don't print anything to STDOUT")
    parser.add_argument("--ssh", action="append", default=[], metavar="ID[=PATH]",
                        help="SSH agent socket or keys for RUN --mount=type=ssh "
                             "('default' for your SSH agent)")


def image_name(project: Project, service: str) -> str:
    svc = project.services[service]
    return svc.image or f"{project.name}-{service}"


def service_build(project: Project, service: str, *, no_cache: bool = False,
                  pull: bool = False, build_args: dict[str, str] | None = None,
                  ssh: Sequence[str] = ()) -> BuildOptions:
    from pycompose.errors import UsageError
    from pycompose.runtime.build import BuildOptions

    svc = project.services[service]
    b = svc.build
    if b is None:
        raise UsageError(f"service {service!r} has no build section")
    if "://" in b.context or b.context.startswith("git@"):
        raise UsageError(f"service {service!r}: build context {b.context!r}: remote contexts "
                         "are not supported")
    args = {k: v for k, v in b.args.items() if v is not None}
    for k, v in b.args.items():
        if v is None and k in project.environment:
            args[k] = project.environment[k]
    args.update(build_args or {})
    dockerfile = Path(b.dockerfile) if b.dockerfile else None
    tags = (image_name(project, service), *b.tags)
    return BuildOptions(
        context=Path(b.context), dockerfile=dockerfile, dockerfile_inline=b.dockerfile_inline,
        tags=tags, build_args=args, target=b.target, labels=dict(b.labels),
        no_cache=no_cache or b.no_cache, pull=pull or b.pull, network=b.network,
        secrets=build_secrets(project, service), ssh=build_ssh(project, service, ssh))


def build_secrets(project: Project, service: str) -> dict[str, bytes]:
    """``build.secrets`` of ``service``: each top-level secret it names, by the id the
    Dockerfile uses (``target``, default the secret's name) for ``RUN --mount=type=secret``."""
    from pycompose.compose.model import FileReference
    from pycompose.engine.files import file_content
    from pycompose.errors import UsageError

    build = project.services[service].build
    out: dict[str, bytes] = {}
    for entry in (build.extra.get("secrets") or ()) if build is not None else ():
        ref = FileReference(source=entry) if isinstance(entry, str) else FileReference(
            source=str(entry["source"]), target=entry.get("target"))
        obj = project.secrets.get(ref.source)
        if obj is None:
            raise UsageError(f"service {service!r}: build.secrets: {ref.source!r} is not "
                             "defined under the top-level secrets")
        out[ref.target or ref.source] = file_content(project, "secrets", ref, obj)
    return out


_SSH_ID = re.compile(r"^[^\s,=]+$")


def build_ssh(project: Project, service: str, overrides: Sequence[str] = ()
              ) -> dict[str, tuple[str, ...]]:
    """``build.ssh`` of ``service`` (then ``build --ssh`` entries, which win by id): each id
    with an agent socket or key files for ``RUN --mount=type=ssh``. An id without a path
    (``default``) is the host's agent, ``$SSH_AUTH_SOCK``; relative paths are below the
    project directory."""
    import os

    from pycompose.compose.errors import ComposeFileError
    from pycompose.errors import UsageError

    build = project.services[service].build
    entries: dict[str, tuple[object, str]] = {}
    raw = (build.extra.get("ssh") or {}) if build is not None else {}
    where = f"services.{service}.build.ssh"
    compose_file = project.compose_files[0] if project.compose_files else None
    if not isinstance(raw, dict):
        raise ComposeFileError(compose_file, where, "expected a list of ID[=PATH] or a mapping")
    for key, value in raw.items():
        entries[str(key)] = (value, "compose")
    for item in overrides:
        key, sep, value = item.partition("=")
        entries[key] = (value if sep else None, "cli")
    out: dict[str, tuple[str, ...]] = {}
    for key, (value, origin) in entries.items():
        paths = [] if value is None else [p.strip() for p in str(value).split(",")]
        problem = ""
        if not _SSH_ID.match(key):
            problem = f"{key!r}: an id is a word without spaces, commas or '='"
        elif value is not None and (not isinstance(value, str) or not all(paths)):
            problem = f"{key}={value!r}: expected an agent socket or key files (comma-separated)"
        if problem and origin == "cli":
            raise UsageError(f"--ssh: {problem}")
        if problem:
            raise ComposeFileError(compose_file, f"{where}.{key}", problem)
        if not paths:
            sock = os.environ.get("SSH_AUTH_SOCK", "")
            out[key] = (sock,) if sock else ()
        else:
            out[key] = tuple(os.path.join(project.working_dir, os.path.expanduser(p))
                             for p in paths)
    return out


def run(args: argparse.Namespace) -> int:
    import trio

    from pycompose.cli.commands._registry import open_store, registry_config
    from pycompose.cli.project import load_project
    from pycompose.errors import UsageError
    from pycompose.paths import host_paths
    from pycompose.runtime.build import Builder

    project = load_project(args, services=args.services)
    names = list(args.services) or list(project.service_names)
    unknown = [n for n in names if n not in project.services]
    if unknown:
        raise UsageError(f"no such service: {', '.join(unknown)}")
    build_args: dict[str, str] = {}
    for item in args.build_arg:
        key, sep, value = item.partition("=")
        if not sep:
            import os

            value = os.environ.get(key, "")
        build_args[key] = value
    targets = [n for n in sorted(names) if project.services[n].build is not None]
    if not targets:
        if not args.quiet:
            print("No services to build", file=sys.stderr)
        return 0
    paths = host_paths()
    store = open_store()

    def log(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    async def main() -> None:
        builder = Builder(store, paths.root, instance=paths.instance, log=log,
                          registry_config=registry_config())
        for name in targets:
            options = service_build(project, name, no_cache=args.no_cache, pull=args.pull,
                                    build_args=build_args, ssh=args.ssh)
            log(f"Building {name} ({options.tags[0]})")
            await builder.build(options)
            log(f"{name} Built")

    trio.run(main)
    return 0
