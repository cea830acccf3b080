"""The public loader: Compose files (+ environment) -> a validated, immutable Project.

::

    options = LoadOptions(files=["compose.yaml"], working_dir="/src/app",
                          environ=dict(os.environ))
    project = load_project(options)          # raises ComposeError subclasses
    for warning in project.warnings: ...     # the caller prints them

The stages, each a small pure module (stop after any with
:func:`load_document` and ``until=Stage.X``):

1. :mod:`.yamlread`      YAML text -> data (``!reset``, ``!override``, anchors)
2. :mod:`.interpolation` ``${VAR}`` against the project environment
3. :mod:`.schema`        unknown keys and types, all errors collected, casts
4. :mod:`.canonical`     short syntax -> long form, relative paths resolved
5. ``include`` (here) and :mod:`.extends`
6. :mod:`.merge`         the ``-f`` files in order
7. :mod:`.profiles`      enabled vs disabled services
8. :mod:`.environment`   ``env_file`` + ``environment`` per service
9. :mod:`.checks`        references, exclusive keys, cycles
10. :mod:`.build`        -> :class:`~.model.Project`

The loader never reads or writes ``os.environ``, never changes directory and
never exits: the environment comes in through :class:`LoadOptions` and
warnings come back in ``Project.warnings``.
"""

from __future__ import annotations

import enum
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from .canonical import Context, build_defaults, canonicalize
from .checks import check_project
from .errors import (
    ComposeError,
    ComposeFileError,
    ComposeFileErrors,
    InterpolationError,
    MergeError,
    ProjectNotFoundError,
    SchemaError,
)
from .extends import apply_extends
from .merge import merge, merge_documents, strip_markers
from .profiles import apply_profiles
from .schema import check_document
from .support import unsupported_warnings
from .yamlread import read_yaml

if TYPE_CHECKING:
    from .model import Project

__all__ = [
    "DEFAULT_FILES",
    "LoadOptions",
    "LoadedDocument",
    "Stage",
    "load_document",
    "load_project",
    "load_record",
    "normalize_project_name",
]

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml",
                  "docker-compose.override.yaml", "docker-compose.override.yml")
STDIN = "-"


class Stage(enum.IntEnum):
    """Where :func:`load_document` stops (each includes the ones before)."""

    READ = 1          # parsed YAML of each file, merged without canonicalising
    INTERPOLATE = 2   # ... interpolated
    NORMALIZE = 3     # checked, canonical, include/extends resolved, files merged
    PROFILES = 4      # disabled services removed
    RESOLVE = 5       # service environments resolved, project checked


class LoadOptions(NamedTuple):
    """Everything the loader needs; nothing is read from the process itself.

    ``files``: ``-f`` values in order (``"-"`` is ``stdin``); empty means
    ``COMPOSE_FILE`` from ``environ`` or the project's ``.env``, else the default
    names looked up from ``working_dir`` upwards. Relative paths are taken against
    ``working_dir``. (A named tuple, as :class:`LoadedDocument`: the ``dataclasses``
    import alone costs a short command some 8 ms. Pass the fields by keyword.)
    """

    working_dir: str
    files: Sequence[str] = ()
    project_directory: str | None = None
    project_name: str | None = None
    environ: Mapping[str, str] = MappingProxyType({})
    env_files: Sequence[str] = ()
    profiles: Sequence[str] = ()
    services: Sequence[str] = ()
    interpolate: bool = True
    stdin: str | None = None
    resolve_environment: bool = True
    check_unsupported: bool = True


class LoadedDocument(NamedTuple):
    """A plain document at some stage, plus what was learnt on the way."""

    doc: dict[str, Any]
    name: str
    working_dir: str
    files: tuple[str, ...]
    environment: dict[str, str]
    profiles: tuple[str, ...]
    warnings: tuple[str, ...]
    disabled: dict[str, Any]


_NAME_OK = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def normalize_project_name(name: str) -> str:
    """A directory name -> a valid project name (lowercase ``[a-z0-9_-]``, starting
    with a letter or digit), as docker compose does."""
    name = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return name.lstrip("_-")


def _check_project_name(name: str, source: str) -> str:
    if not _NAME_OK.match(name):
        raise ComposeFileError(None, None, f'invalid project name "{name}" (from {source}): '
                               "it must contain only lowercase letters, digits, '-' and '_', "
                               "and start with a letter or a digit")
    return name


def find_compose_files(start: str, warnings: list[str] | None = None) -> list[str]:
    """The default file (and its override) in ``start`` or the nearest parent."""
    if warnings is None:
        warnings = []
    directory = posixpath.abspath(start)
    while True:
        found = [n for n in DEFAULT_FILES if os.path.isfile(posixpath.join(directory, n))]
        if len(found) > 1:
            warnings.append(f"found several compose files in {directory} "
                            f"({', '.join(found)}); using {found[0]}")
        if found:
            files = [posixpath.join(directory, found[0])]
            for n in OVERRIDE_FILES:
                if os.path.isfile(posixpath.join(directory, n)):
                    files.append(posixpath.join(directory, n))
                    break
            return files
        parent = posixpath.dirname(directory)
        if parent == directory:
            raise ProjectNotFoundError(
                f"no configuration file provided: none of {', '.join(DEFAULT_FILES)} found "
                f"in {start} or its parents")
        directory = parent


class _Session:
    """State of one load: environment, warnings, file cache, error list."""

    def __init__(self, options: LoadOptions, env: dict[str, str]) -> None:
        from .interpolation import Interpolator

        self.options = options
        self.env = env
        self.warnings: list[str] = []
        self.errors: list[ComposeFileError] = []
        self.interpolator = Interpolator(env, self.warnings.append)
        self.home = options.environ.get("HOME")
        self.cache: dict[tuple[str, str, bool], dict[str, Any]] = {}

    def display(self, path: str) -> str:
        """A path as errors show it: relative to the working directory when inside it."""
        if path == STDIN:
            return "(stdin)"
        rel = posixpath.relpath(path, self.options.working_dir)
        return path if rel.startswith("..") else rel

    def read(self, path: str) -> list[Any]:
        if path == STDIN:
            text = self.options.stdin or ""
        else:
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except FileNotFoundError:
                raise ComposeFileError(self.display(path), None, "file not found") from None
            except IsADirectoryError:
                raise ComposeFileError(self.display(path), None, "is a directory") from None
            except UnicodeDecodeError:
                raise ComposeFileError(self.display(path), None, "not UTF-8 text") from None
            except OSError as exc:
                raise ComposeFileError(self.display(path), None,
                                       f"cannot read: {exc.strerror}") from None
            except ValueError:  # open() refuses a path with a NUL byte
                raise ComposeFileError(repr(path), None, "invalid file name") from None
        return read_yaml(text, file=self.display(path))

    def stage_file(self, path: str, base_dir: str, until: Stage,
                   env: Mapping[str, str] | None = None,
                   include_stack: tuple[str, ...] = (),
                   extends: bool = True) -> dict[str, Any]:
        """One file through read .. normalise (+ include, and extends unless ``extends``
        is false: a file loaded as an ``extends`` base has its chains followed by
        :mod:`.extends` itself, which also catches loops across files)."""
        key = (path, base_dir, extends)
        if key in self.cache and env is None:
            return self.cache[key]
        shown = self.display(path)
        docs = self.read(path)
        out: dict[str, Any] = {}
        errors_before = len(self.errors)
        for doc in docs:
            if doc is None:
                continue
            if self.options.interpolate and until >= Stage.INTERPOLATE:
                if env is None:
                    doc = self.interpolator.document(doc, file=shown)
                else:
                    from .interpolation import Interpolator
                    doc = Interpolator(env, self.warnings.append).document(doc, file=shown)
            if until < Stage.NORMALIZE:
                out = merge(out, doc) if out else doc
                continue
            checked, errors = check_document(doc, file=shown)
            self.errors.extend(errors)
            ctx = Context(file=shown, base_dir=base_dir, home=self.home,
                          raw=not self.options.interpolate)
            canon = canonicalize(checked, ctx)
            self.errors.extend(ctx.errors)
            out = merge(out, canon) if out else canon
        if until >= Stage.NORMALIZE and not docs_have_content(docs) and path != STDIN:
            self.errors.append(SchemaError(shown, None, "empty compose file"))
        if until >= Stage.NORMALIZE and len(self.errors) == errors_before:
            # include and extends rely on a well-formed document
            if isinstance(out.get("include"), list):
                out = self.apply_include(out, path, include_stack)
            if extends:
                load_file = self.extends_file if env is None else (
                    # an included file's own extends files see the included project's
                    # environment, as the file itself does
                    lambda p: self.stage_file(p, posixpath.dirname(p), Stage.NORMALIZE,
                                              env=env, extends=False))
                out = apply_extends(out, file=path, load_file=load_file,
                                    display=self.display)
        if env is None:
            self.cache[key] = out
        return out

    def extends_file(self, path: str) -> dict[str, Any]:
        return self.stage_file(path, posixpath.dirname(path), Stage.NORMALIZE, extends=False)

    def apply_include(self, doc: dict[str, Any], path: str,
                      stack: tuple[str, ...]) -> dict[str, Any]:
        from .dotenv import read_env_files

        result = {k: v for k, v in doc.items() if k != "include"}
        for item in doc["include"]:
            paths = item["path"]
            for p in paths:
                if p in (*stack, path):
                    chain = " -> ".join(self.display(x) for x in (*stack, path, p))
                    raise MergeError(self.display(path), "include", f"include cycle: {chain}")
            project_dir = item.get("project_directory") or posixpath.dirname(paths[0])
            env_files = item.get("env_file")
            if env_files is None:
                default = posixpath.join(project_dir, ".env")
                env_files = [default] if os.path.isfile(default) else []
            local_env = dict(read_env_files(env_files, self.options.environ)) if env_files else {}
            env = {**local_env, **self.env}
            sub: dict[str, Any] = {}
            for p in paths:
                part = self.stage_file(p, project_dir, Stage.NORMALIZE, env=env,
                                       include_stack=(*stack, path))
                sub = merge(sub, part) if sub else part
            sub = build_defaults(sub, project_dir)
            for section in ("services", "networks", "volumes", "secrets", "configs"):
                for name, value in (sub.get(section) or {}).items():
                    mine = result.get(section) or {}
                    if name in mine and mine[name] != value:
                        raise MergeError(self.display(path), f"{section}.{name}",
                                         f"conflicts with the {section[:-1]} \"{name}\" imported "
                                         f"from {self.display(paths[0])}")
                    result[section] = {**mine, name: value}
        return result


def docs_have_content(docs: list[Any]) -> bool:
    return any(d is not None for d in docs)


def _project_env(options: LoadOptions, project_dir: str) -> dict[str, str]:
    """The interpolation environment: ``--env-file``s or ``.env``, under the shell's."""
    from .dotenv import read_env_files

    if options.env_files:
        paths = [posixpath.join(options.working_dir, p) for p in options.env_files]
        dotenv = read_env_files(paths, options.environ, required=True)
    else:
        default = posixpath.join(project_dir, ".env")
        dotenv = read_env_files([default], options.environ) if os.path.isfile(default) else {}
    return {**dotenv, **options.environ}


def _resolve_files(options: LoadOptions, warnings: list[str],
                   env: Mapping[str, str], project_dir: str | None) -> list[str]:
    """``-f`` files (relative to the working directory), else ``COMPOSE_FILE`` (relative to
    ``--project-directory`` when given), else the default lookup."""
    files = list(options.files)
    base = options.working_dir
    if not files:
        env_files = env.get("COMPOSE_FILE")
        if env_files:
            sep = env.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
            files = [f for f in env_files.split(sep) if f]
            base = project_dir or base
    if not files:
        return find_compose_files(options.working_dir, warnings)
    return [f if f == STDIN else posixpath.normpath(posixpath.join(base, f)) for f in files]


def load_document(options: LoadOptions, until: Stage = Stage.RESOLVE) -> LoadedDocument:
    """Run the pipeline up to ``until`` and return the plain document."""
    lookup_warnings: list[str] = []
    explicit_dir = (posixpath.normpath(posixpath.join(options.working_dir,
                                                      options.project_directory))
                    if options.project_directory else None)
    early_env: dict[str, str] | None = None
    if not options.files and "COMPOSE_FILE" not in options.environ:
        # As docker compose does, the project's .env (or --env-file) is read before the
        # files are known, so that it can name them (COMPOSE_FILE); it is the .env of
        # --project-directory, else of the working directory.
        early_env = _project_env(options, explicit_dir or options.working_dir)
    files = _resolve_files(options, lookup_warnings, early_env or options.environ,
                           explicit_dir)
    first = files[0]
    if explicit_dir:
        project_dir = explicit_dir
    else:
        project_dir = options.working_dir if first == STDIN else posixpath.dirname(first)
    if early_env is not None and (early_env.get("COMPOSE_FILE") or explicit_dir):
        # The .env that named the files (or the one of --project-directory) is the one.
        env = early_env
    else:
        env = _project_env(options, project_dir)
    if options.project_name:
        # As docker compose does: -p is visible to interpolation.
        env["COMPOSE_PROJECT_NAME"] = options.project_name
    session = _Session(options, env)
    session.warnings.extend(lookup_warnings)

    docs = [session.stage_file(f, project_dir, until) for f in files]
    if session.errors:
        _raise(session.errors)
    doc = merge_documents(docs)
    doc = strip_markers(doc)
    if until >= Stage.NORMALIZE:
        doc = build_defaults(doc, project_dir)
    if "version" in doc:
        session.warnings.append('the attribute "version" is obsolete and ignored')

    name = _project_name(options, env, doc, project_dir)
    profiles = tuple(options.profiles) or tuple(
        p for p in (env.get("COMPOSE_PROFILES") or "").split(",") if p.strip())
    profiles = tuple(p.strip() for p in profiles)
    disabled: dict[str, Any] = {}
    if until >= Stage.PROFILES:
        services = doc.get("services") or {}
        unknown = [s for s in options.services if s not in services]
        if unknown:
            raise ComposeError(f"no such service: {', '.join(unknown)}")
        enabled, disabled = apply_profiles(services, profiles, options.services)
        doc = {**doc, "services": enabled}
    if until >= Stage.RESOLVE and options.interpolate:
        # Errors about a service name the last -f file that defines or changes it.
        owners: dict[str, str] = {}
        for path, part in zip(files, docs, strict=True):
            part_services = part.get("services")
            for service in part_services if isinstance(part_services, dict) else ():
                owners[service] = session.display(path)
        doc = _resolve(doc, disabled, session, owners)
    return LoadedDocument(doc=doc, name=name, working_dir=project_dir,
                          files=tuple(files), environment=env, profiles=profiles,
                          warnings=tuple(dict.fromkeys(session.warnings)), disabled=disabled)


def _resolve(doc: dict[str, Any], disabled: dict[str, Any], session: _Session,
             owners: Mapping[str, str]) -> dict[str, Any]:
    services = doc.get("services") or {}
    all_services = {**services, **disabled}

    def file_of(service: str) -> str | None:
        return owners.get(service)

    doc = _fill_defaults(doc)
    services = doc.get("services") or {}
    errors = check_project(doc, file_of=file_of, all_services=all_services)
    if errors:
        _raise(errors)
    if session.options.check_unsupported:
        session.warnings.extend(unsupported_warnings(services))
    if not session.options.resolve_environment:
        return doc
    from .environment import resolve_environment, resolve_labels
    from .errors import EnvFileError

    resolved = {}
    env_errors: list[ComposeFileError] = []
    for name, svc in services.items():
        try:
            env = resolve_environment(svc, session.env, session.warnings.append)
        except (EnvFileError, InterpolationError) as exc:
            where = ": ".join(p for p in (exc.file, exc.path) if p)
            env_errors.append(EnvFileError(file_of(name), f"services.{name}.env_file",
                                           f"{where}: {exc.message}"))
            continue
        if svc.get("label_file"):
            try:
                labels = resolve_labels(svc, session.env, session.warnings.append)
            except (EnvFileError, InterpolationError) as exc:
                where = ": ".join(p for p in (exc.file, exc.path) if p)
                env_errors.append(EnvFileError(file_of(name), f"services.{name}.label_file",
                                               f"{where}: {exc.message}"))
                continue
            svc = {k: v for k, v in svc.items() if k != "label_file"} | {"labels": labels}
        svc = {k: v for k, v in svc.items() if k != "env_file"} | {"environment": env} \
            if (env or "environment" in svc) else svc
        resolved[name] = svc
    if env_errors:
        _raise(env_errors)
    return {**doc, "services": resolved}


def _fill_defaults(doc: dict[str, Any]) -> dict[str, Any]:
    """Services without networks join ``default``, which then exists at the top level."""
    services = doc.get("services") or {}
    out = {}
    for name, svc in services.items():
        if not svc.get("networks") and not svc.get("network_mode"):
            svc = {**svc, "networks": {"default": None}}
        out[name] = svc
    doc = {**doc, "services": out}
    uses_default = any("default" in (s.get("networks") or {}) for s in out.values())
    if uses_default and "default" not in (doc.get("networks") or {}):
        doc["networks"] = {**(doc.get("networks") or {}), "default": {}}
    return doc


def _project_name(options: LoadOptions, env: Mapping[str, str], doc: Mapping[str, Any],
                  project_dir: str) -> str:
    if options.project_name:
        return _check_project_name(options.project_name, "--project-name")
    if env.get("COMPOSE_PROJECT_NAME"):
        return _check_project_name(env["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME")
    if doc.get("name"):
        return _check_project_name(str(doc["name"]), 'the top-level "name"')
    name = normalize_project_name(posixpath.basename(project_dir.rstrip("/")))
    if not name:
        raise ComposeFileError(None, None, f'cannot derive a project name from "{project_dir}"; '
                               "use --project-name")
    return name


def _raise(errors: Sequence[ComposeFileError]) -> None:
    unique = list(dict.fromkeys(errors))
    ordered = sorted(unique, key=lambda e: (e.file or "", e.path or "", e.message))
    if len(ordered) == 1:
        raise ordered[0]
    raise ComposeFileErrors(ordered)


def load_record(options: LoadOptions) -> dict[str, Any]:
    """What :func:`load_project` returns, as plain data in the shape of
    :func:`.serialize.project_to_record`, without building the model: for a caller that
    only hands the project on (``up`` sends it to the engine, which builds it).
    ``build.project_from_record(load_record(o)) == load_project(o)``."""
    if not options.interpolate:
        raise ValueError("a project needs interpolation; use load_document for raw output")
    loaded = load_document(options, Stage.RESOLVE)
    return {
        "name": loaded.name,
        "working_dir": loaded.working_dir,
        "document": loaded.doc,
        "disabled": loaded.disabled,
        "compose_files": list(loaded.files),
        "profiles": list(loaded.profiles),
        "environment": loaded.environment,
        "warnings": list(loaded.warnings),
    }


def load_project(options: LoadOptions) -> Project:
    """Load, resolve and validate; return the immutable :class:`Project`.

    Raises :class:`ComposeFileError` (one problem) or :class:`ComposeFileErrors`
    (several, all listed), :class:`ProjectNotFoundError`, ...
    """
    from .build import project_from_record

    return project_from_record(load_record(options))
