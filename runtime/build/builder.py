"""Build an image from a Dockerfile on pycompose's own runtime.

::

    builder = Builder(store, state_root, instance="", log=print)
    image = await builder.build(BuildOptions(context=Path("api"), tags=("api:1",)))

* ``FROM`` an image of the store (pulled when missing, or always with
  ``pull``), ``scratch``, or an earlier stage (``AS name``); only the stages
  the target needs are built.
* ``RUN`` runs in a container of the runtime (host network, as ``docker build
  --network host``; ``network="none"`` for none) and its overlay upper dir
  becomes the layer (whiteouts for deletions). ``RUN --mount`` (repeatable)
  takes ``type=cache``, ``type=bind`` (the context, ``from=`` a stage or an
  image; ``rw`` writes are discarded), ``type=tmpfs``, ``type=secret`` (the
  build's ``secrets``) and ``type=ssh`` (the build's ``ssh`` agents or keys, with
  ``SSH_AUTH_SOCK`` set for the RUN); see ``run_mounts`` and ``ssh``.
* ``COPY``/``ADD`` copy into a fresh directory that becomes the layer: parent
  directories take their metadata from the image, owners are ``0:0`` unless
  ``--chown`` (helpers in ``copying``). Sources: the context (globs,
  ``.dockerignore``), here-documents (``COPY <<EOF /dest``: a 0644 file named
  after the here-document, ``$VAR`` expanded unless the name is quoted), and for
  ``ADD`` local tar archives (extracted) and http(s) URLs (``remote``: mode
  0600, ``Last-Modified`` as mtime, ``--checksum`` verified, never extracted)
  and Git repositories (``gitsource``: ``URL#ref:subdir``, added as a
  directory's contents with their submodules, ``.git`` only with
  ``--keep-git-dir``, ``--checksum=<commit sha or prefix>`` verified on every
  build, cached or not).
* ``COPY --from`` takes an earlier stage, or an image (from the store, pulled
  when missing).
* Metadata instructions change the config only (an empty-layer history entry).
  ``ONBUILD`` records a trigger in the image; a build ``FROM`` such an image
  runs its triggers right after ``FROM`` and does not pass them on.
* Cache: every step's result (its image config) is kept under
  ``<state_root>/build-cache/`` keyed by the parent step's key, the instruction
  (after ARG/ENV substitution, with the build args a RUN sees), a RUN's mount
  options (and a bind mount's source content; never a cache mount's content)
  and, for COPY/ADD, a hash of the copied content (here-documents' text,
  downloads' content: a URL is fetched on every build, and the step hits when
  the content is the same; a Git source's commit, from ``git ls-remote``); a
  hit is used when all its layers are still in the store. A rebuild with
  nothing changed does no container work.

Output: one line per event, as ``docker build --progress plain``:
``#3 [2/4] RUN make``, ``#3 0.52 <output line>``, ``#3 DONE 1.3s``, ``#3 CACHED``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import trio

from pycompose.runtime.build.cache import build_lock_async, cache_dir, touch_entry
from pycompose.runtime.build.context import Ignore, content_hash, copy_entry, expand
from pycompose.runtime.build.copying import (
    ARCHIVE_SUFFIXES,
    chown_ids,
    extract_archive,
    lookup,
    make_parents,
    mount_sources,
    unmount,
)
from pycompose.runtime.build.dockerfile import (
    KNOWN,
    Instruction,
    key_values,
    parse,
    split_words,
    substitute,
)
from pycompose.runtime.build.errors import BuildError, BuildStepError, DockerfileError
from pycompose.runtime.build.gitsource import GitSource, Resolved, checkout, parse_git, resolve
from pycompose.runtime.build.gitsource import parse_checksum as parse_git_checksum
from pycompose.runtime.build.gitsource import verify_checksum as verify_git_checksum
from pycompose.runtime.build.remote import download, is_git, is_url, parse_checksum
from pycompose.runtime.build.run_mounts import (
    RunMount,
    drop_run_mountpoints,
    from_refs,
    parse_mounts,
    prepare_mounts,
)
from pycompose.runtime.build.ssh import SshAgents, serve_agent
from pycompose.runtime.images.config import (
    ContainerConfig,
    Healthcheck,
    ImageConfig,
    empty_config,
)
from pycompose.runtime.images.digest import hex_of
from pycompose.runtime.images.store import Image, ImageStore
from pycompose.runtime.registry.http import HttpClient
from pycompose.runtime.spec import Mount

__all__ = ["BuildOptions", "Builder"]

Log = Callable[[str], None]
DEFAULT_SHELL = ("/bin/sh", "-c")
PREDEFINED_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                   "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
_MOUNTPOINT_FILES = ("etc/hosts", "etc/resolv.conf", "etc/hostname")
_SUPPORTED_FLAGS = {
    "FROM": {"platform"},
    "RUN": {"network", "mount"},
    "COPY": {"from", "chown", "chmod", "link"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
# A here-document named as a COPY/ADD source: <<EOF, <<-EOF, <<"EOF".
_HEREDOC_WORD = re.compile(r"^<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_.-]*)\2$")
# What an ONBUILD trigger may not be (as Docker).
_NOT_TRIGGERS = frozenset({"ONBUILD", "FROM", "MAINTAINER"})


def _check_flags(instr: Instruction, where: str) -> None:
    for flag in instr.flags:
        if flag not in _SUPPORTED_FLAGS.get(instr.keyword, set()):
            raise DockerfileError(f"{where}: {instr.keyword} --{flag} is not supported")


@dataclass(frozen=True)
class BuildOptions:
    context: Path
    dockerfile: Path | None = None          # default: <context>/Dockerfile
    dockerfile_inline: str | None = None
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    network: str | None = None              # None/"host"/"default": host; "none": no network
    secrets: Mapping[str, bytes] = field(default_factory=dict)  # RUN --mount=type=secret
    # RUN --mount=type=ssh, by id: an agent socket, or private key files loaded into an
    # ssh-agent of the build's own; () when the host's agent was asked for but
    # $SSH_AUTH_SOCK is not set (an error when a RUN uses it)
    ssh: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class _Stage:
    index: int
    name: str
    base: str
    from_line: Instruction
    steps: list[Instruction]


@dataclass
class _CopySources:
    """A COPY/ADD's sources by kind (``words``: all of them, as written)."""

    words: list[str]
    dest: str
    paths: list[str] = field(default_factory=list)         # in the context or --from
    urls: list[str] = field(default_factory=list)          # ADD http(s)://
    inline: list[tuple[str, str]] = field(default_factory=list)  # here-documents: name, text
    checksum: tuple[str, str] | None = None                # ADD --checksum (URLs)
    git_checksum: str = ""                                 # ADD --checksum (a Git source)
    digests: list[tuple[str, str]] = field(default_factory=list)  # url, sha256 downloaded
    git: list[GitSource] = field(default_factory=list)     # ADD <git repository>
    resolved: list[Resolved] = field(default_factory=list)  # their commits
    trees: list[Path] = field(default_factory=list)        # and their checkouts
    keep_git_dir: bool = False                             # ADD --keep-git-dir
    state: _State | None = None                            # --from an earlier stage
    image_ref: str | None = None                           # --from an image


@dataclass
class _State:
    config: ImageConfig
    key: str
    args: dict[str, str | None] = field(default_factory=dict)

    @property
    def cc(self) -> ContainerConfig:
        return self.config.config

    def env(self) -> dict[str, str]:
        """What ``$VAR`` expands to: ARG values, overridden by ENV."""
        out = {k: v for k, v in self.args.items() if v is not None}
        out.update(self.cc.env_map)
        return out


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Builder:
    def __init__(self, store: ImageStore, state_root: Path, *, instance: str = "",
                 log: Log = lambda _l: None, registry_config: Any = None) -> None:
        self.store = store
        self.root = Path(state_root)
        self.instance = instance
        self.log = log
        self.registry_config = registry_config
        self.cache_dir = cache_dir(self.root)
        self._step = 0
        self._runtime: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._agents = SshAgents({})

    # --- entry point ----------------------------------------------------------------------

    async def build(self, options: BuildOptions) -> Image:
        # Held shared for the whole build: a prune (exclusive) never removes a cache entry
        # or a layer this build has made or is about to use before it is in the image.
        async with build_lock_async(self.root):
            return await self._build(options)

    async def _build(self, options: BuildOptions) -> Image:
        started = time.monotonic()
        context, name, text = await trio.to_thread.run_sync(self._dockerfile, options)
        instructions = parse(text, name)
        global_args, stages = self._stages(instructions, name)
        target = self._target(stages, options.target, name)
        needed = self._needed(stages, target)
        ignore = await trio.to_thread.run_sync(Ignore.load, context)
        self._step = 0
        total = sum(len(s.steps) + 1 for s in stages if s.index in needed)
        self._count = 0
        self._total = total
        results: dict[int, _State] = {}
        build_args = dict(options.build_args)
        for key, value in global_args.items():
            if key not in build_args and value is not None:
                build_args.setdefault(key, value)
        globals_env = {k: build_args.get(k, v) or "" for k, v in global_args.items()}
        async with contextlib.AsyncExitStack() as stack:
            self._stack = stack
            self._agents = SshAgents(options.ssh)
            stack.push_async_callback(self._agents.aclose)
            try:
                for stage in stages:
                    if stage.index not in needed:
                        continue
                    results[stage.index] = await self._build_stage(
                        stage, stages, results, options, context, ignore, name, global_args,
                        globals_env, build_args)
            finally:  # the stack closes the runtime: a next build opens its own
                self._stack = None
                self._runtime = None
        final = results[target.index]
        config = final.config
        if options.labels:
            labels = dict(config.config.labels)
            labels.update(options.labels)
            config = replace(config, config=replace(config.config, labels=labels))
        tags = list(options.tags)
        image = await trio.to_thread.run_sync(self.store.create_image, config,
                                              tags[0] if tags else None)
        for tag in tags[1:]:
            image = await trio.to_thread.run_sync(self.store.tag, image.id, tag)
        self._emit(f"#{self._next()} naming to {', '.join(tags) or image.id} done "
                   f"({time.monotonic() - started:.1f}s)")
        return image

    # --- structure ---------------------------------------------------------------------------

    def _dockerfile(self, options: BuildOptions) -> tuple[Path, str, str]:
        context = Path(options.context).absolute()
        if not context.is_dir():
            raise BuildError(f"build context {context} is not a directory")
        if options.dockerfile_inline is not None:
            return context, "Dockerfile (inline)", options.dockerfile_inline
        path = options.dockerfile or Path("Dockerfile")
        if not path.is_absolute():
            path = context / path
        try:
            return context, str(path), path.read_text()
        except FileNotFoundError:
            raise BuildError(f"failed to read dockerfile: {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BuildError(f"failed to read dockerfile: {path}: {exc}") from None

    def _stages(self, instructions: list[Instruction], name: str
                ) -> tuple[dict[str, str | None], list[_Stage]]:
        global_args: dict[str, str | None] = {}
        stages: list[_Stage] = []
        for instr in instructions:
            where = instr.where(name)
            _check_flags(instr, where)
            if instr.keyword == "FROM":
                words = split_words(instr.args, where)
                if len(words) == 3 and words[1].lower() == "as":
                    stage_name = words[2].lower()
                elif len(words) == 1:
                    stage_name = ""
                else:
                    raise DockerfileError(f"{where}: FROM expects IMAGE [AS NAME]")
                stages.append(_Stage(len(stages), stage_name, words[0], instr, []))
            elif not stages:
                if instr.keyword != "ARG":
                    raise DockerfileError(f"{where}: {instr.keyword} before the first FROM "
                                          "(only ARG may come first)")
                for key, value in self._arg_words(instr, where):
                    global_args[key] = value
            else:
                stages[-1].steps.append(instr)
        if not stages:
            raise DockerfileError(f"{name}: no FROM instruction")
        return global_args, stages

    @staticmethod
    def _arg_words(instr: Instruction, where: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for word in split_words(instr.args, where):
            key, sep, value = word.partition("=")
            if not key:
                raise DockerfileError(f"{where}: ARG needs a name")
            out.append((key, value if sep else None))
        return out

    @staticmethod
    def _target(stages: list[_Stage], target: str | None, name: str) -> _Stage:
        if target is None:
            return stages[-1]
        for stage in stages:
            if stage.name == target.lower():
                return stage
        raise BuildError(f"{name}: target stage {target!r} could not be found")

    def _needed(self, stages: list[_Stage], target: _Stage) -> set[int]:
        by_name = {s.name: s.index for s in stages if s.name}
        needed: set[int] = set()
        todo = [target.index]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            stage = stages[i]
            refs = [stage.base.lower()]
            refs += [s.flags["from"].lower() for s in stage.steps
                     if s.keyword == "COPY" and "from" in s.flags]
            refs += [ref.lower() for s in stage.steps if s.keyword == "RUN"
                     for ref in from_refs(s.flag_values("mount"))]
            for ref in refs:
                if ref in by_name and by_name[ref] < i:
                    todo.append(by_name[ref])
                elif ref.isdigit() and int(ref) < i:
                    todo.append(int(ref))
        return needed

    # --- output ------------------------------------------------------------------------------

    def _emit(self, line: str) -> None:
        self.log(line)

    def _next(self) -> int:
        self._step += 1
        return self._step

    # --- stages ------------------------------------------------------------------------------

    async def _build_stage(self, stage: _Stage, stages: list[_Stage], results: dict[int, _State],
                           options: BuildOptions, context: Path, ignore: Ignore, name: str,
                           global_args: dict[str, str | None], globals_env: dict[str, str],
                           build_args: dict[str, str]) -> _State:
        where = stage.from_line.where(name)
        label = stage.name or f"stage-{stage.index}"
        n_steps = len(stage.steps) + 1
        base = substitute(stage.base, globals_env)
        step = self._next()
        self._emit(f"#{step} [{label} 1/{n_steps}] FROM {base}"
                   + (f" AS {stage.name}" if stage.name else ""))
        if "platform" in stage.from_line.flags:
            self._emit(f"#{step} WARNING: {where}: --platform is ignored; building for "
                       "this host's platform")
        state = await self._from(base, stages, results, stage, options, where)
        self._emit(f"#{step} DONE")
        triggers = self._triggers(state, base, where)
        if triggers:  # the base's ONBUILD steps run first, and are not inherited
            config = replace(state.config, config=replace(state.cc, on_build=()))
            state = _State(config, _key(state.key, "ONBUILD"), state.args)
        for trigger, twhere in triggers:
            step = self._next()
            self._emit(f"#{step} [{label} 1/{n_steps}] ONBUILD {trigger.original}")
            t0 = time.monotonic()
            state, cached = await self._step_once(state, trigger, twhere, step, stages,
                                                  results, options, context, ignore,
                                                  global_args, build_args)
            self._emit(f"#{step} CACHED" if cached
                       else f"#{step} DONE {time.monotonic() - t0:.1f}s")
        for i, instr in enumerate(stage.steps, start=2):
            iwhere = instr.where(name)
            step = self._next()
            self._emit(f"#{step} [{label} {i}/{n_steps}] {instr.original}")
            t0 = time.monotonic()
            state, cached = await self._step_once(state, instr, iwhere, step, stages, results,
                                                  options, context, ignore, global_args,
                                                  build_args)
            self._emit(f"#{step} CACHED" if cached
                       else f"#{step} DONE {time.monotonic() - t0:.1f}s")
        return state

    @staticmethod
    def _triggers(state: _State, base: str, where: str) -> list[tuple[Instruction, str]]:
        """The base image's ONBUILD triggers as instructions, each with where it came from."""
        out = []
        for n, text in enumerate(state.cc.on_build, start=1):
            twhere = f"{where}: ONBUILD trigger {n} of {base}"
            parsed = parse(text, twhere)
            if len(parsed) != 1 or parsed[0].keyword in _NOT_TRIGGERS:
                raise DockerfileError(f"{twhere}: {text!r} is not a valid ONBUILD trigger")
            _check_flags(parsed[0], twhere)
            out.append((parsed[0], twhere))
        return out

    async def _from(self, base: str, stages: list[_Stage], results: dict[int, _State],
                    stage: _Stage, options: BuildOptions, where: str) -> _State:
        ref = base.lower()
        for prev in stages[:stage.index]:
            if prev.name and prev.name == ref and prev.index in results:
                st = results[prev.index]
                return _State(st.config, st.key)
        if ref == "scratch":
            return _State(empty_config(), _key("scratch"))
        image = await self._base_image(base, options.pull, where)
        return _State(image.config, _key("image", image.id))

    async def _base_image(self, base: str, pull: bool, where: str, *,
                          what: str | None = None) -> Image:
        from pycompose.runtime.registry.policy import ensure_image

        try:
            return await ensure_image(self.store, base, "always" if pull else "missing",
                                      config=self.registry_config,
                                      work_dir=self.root / "downloads")
        except BuildError:
            raise
        except Exception as exc:
            if isinstance(exc, (trio.Cancelled, KeyboardInterrupt)):
                raise
            raise BuildError(f"{where}: {what or f'FROM {base}'}: {exc}") from None

    # --- one instruction ---------------------------------------------------------------------

    async def _step_once(self, state: _State, instr: Instruction, where: str, step: int,
                         stages: list[_Stage], results: dict[int, _State],
                         options: BuildOptions, context: Path, ignore: Ignore,
                         global_args: dict[str, str | None],
                         build_args: dict[str, str]) -> tuple[_State, bool]:
        kw = instr.keyword
        env = state.env()
        if kw == "ARG":
            args = dict(state.args)
            for key, default in self._arg_words(instr, where):
                if default is not None:
                    default = substitute(default, env)
                elif key in global_args:
                    default = global_args[key]
                args[key] = build_args.get(key, default)
            key = _key(state.key, "ARG", sorted((k, v) for k, v in args.items()))
            return _State(state.config, key, args), False
        if kw in ("RUN", "COPY", "ADD"):
            return await self._fs_step(state, instr, where, step, stages, results, options,
                                       context, ignore)
        cc = self._metadata(state, instr, where, env)
        shown = instr.args if kw in ("CMD", "ENTRYPOINT") else substitute(instr.args, env)
        created_by = f"{kw} {shown}"
        key = _key(state.key, "META", created_by, cc.to_json())
        cached = self._cache_get(key, options)
        if cached is not None:
            return _State(cached, key, state.args), True
        diff_ids: list[str] = []
        if kw == "WORKDIR":  # the directory exists in the image, as BuildKit makes it
            diff_ids = await trio.to_thread.run_sync(self._workdir_layer, state.config,
                                                     cc.working_dir)
        config = state.config.derive(diff_ids=diff_ids, config=cc,
                                     created_by=created_by.strip(),
                                     comment="buildkit.dockerfile.v0")
        self._cache_put(key, config)
        return _State(config, key, state.args), False

    def _workdir_layer(self, config: ImageConfig, path: str) -> list[str]:
        lowers = self._layer_paths(config)
        rel = os.path.normpath(path).lstrip("/")
        if not rel or rel == "." or lookup(lowers, rel) is not None:
            return []
        work = Path(tempfile.mkdtemp(prefix="build-workdir-", dir=self.root))
        try:
            make_parents(work, lowers, rel)
            return [self.store.add_layer_from_dir(work).diff_id]
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _metadata(self, state: _State, instr: Instruction, where: str,
                  env: dict[str, str]) -> ContainerConfig:
        cc = state.cc
        kw = instr.keyword
        text = instr.args
        if kw == "ENV":
            current = dict(cc.env_map)
            order = [e.partition("=")[0] for e in cc.env]
            for key, value in key_values(text, where, legacy=True):
                current[key] = substitute(value, {**env, **current})
                if key not in order:
                    order.append(key)
            return replace(cc, env=tuple(f"{k}={current[k]}" for k in order))
        if kw == "LABEL":
            labels = dict(cc.labels)
            for key, value in key_values(substitute(text, env), where, legacy=True):
                labels[key] = value
            return replace(cc, labels=labels)
        if kw == "MAINTAINER":
            labels = dict(cc.labels)
            labels["maintainer"] = text
            return replace(cc, labels=labels)
        if kw in ("CMD", "ENTRYPOINT"):
            argv = instr.exec_form if instr.exec_form is not None else \
                (*(cc.shell or DEFAULT_SHELL), text)
            if kw == "CMD":
                return replace(cc, cmd=tuple(argv))
            return replace(cc, entrypoint=tuple(argv), cmd=None)
        if kw == "WORKDIR":
            path = substitute(text, env)
            if not path.startswith("/"):
                path = (cc.working_dir or "/").rstrip("/") + "/" + path
            return replace(cc, working_dir=os.path.normpath(path))
        if kw == "USER":
            return replace(cc, user=substitute(text, env).strip())
        if kw == "EXPOSE":
            ports = list(cc.exposed_ports)
            for word in split_words(substitute(text, env), where):
                port = word if "/" in word else f"{word}/tcp"
                if port not in ports:
                    ports.append(port)
            return replace(cc, exposed_ports=tuple(ports))
        if kw == "VOLUME":
            words = instr.exec_form if instr.exec_form is not None else \
                tuple(split_words(substitute(text, env), where))
            return replace(cc, volumes=tuple(sorted(set(cc.volumes) | set(words))))
        if kw == "STOPSIGNAL":
            sig = substitute(text, env).strip()
            if not sig:
                raise DockerfileError(f"{where}: STOPSIGNAL needs a signal")
            if not sig.isdigit():
                try:
                    signal.Signals[sig if sig.startswith("SIG") else f"SIG{sig}"]
                except KeyError:
                    raise DockerfileError(f"{where}: invalid signal {sig!r}") from None
            return replace(cc, stop_signal=sig)
        if kw == "SHELL":
            if instr.exec_form is None or not instr.exec_form:
                raise DockerfileError(f"{where}: SHELL requires the JSON form, "
                                      'e.g. SHELL ["/bin/bash", "-c"]')
            return replace(cc, shell=tuple(instr.exec_form))
        if kw == "HEALTHCHECK":
            return replace(cc, healthcheck=self._healthcheck(instr, where, cc))
        if kw == "ONBUILD":
            trigger = text.strip()
            first = trigger.split(None, 1)[0].upper() if trigger else ""
            if first in _NOT_TRIGGERS:
                raise DockerfileError(f"{where}: ONBUILD {first} is not allowed")
            if first not in KNOWN:
                raise DockerfileError(f"{where}: ONBUILD needs an instruction to trigger"
                                      + (f" ({first!r} is none)" if first else ""))
            return replace(cc, on_build=(*cc.on_build, trigger))
        raise DockerfileError(f"{where}: {kw} is not supported")

    def _healthcheck(self, instr: Instruction, where: str, cc: ContainerConfig) -> Healthcheck:
        text = instr.args.strip()
        if text.upper() == "NONE":
            return Healthcheck(test=("NONE",))
        word, _, rest = text.partition(" ")
        if word.upper() != "CMD":
            raise DockerfileError(f"{where}: HEALTHCHECK expects CMD or NONE")
        rest = rest.strip()
        try:
            value = json.loads(rest) if rest.startswith("[") else None
        except ValueError:
            value = None
        test = ("CMD", *value) if isinstance(value, list) else ("CMD-SHELL", rest)
        durations = {}
        for flag in ("interval", "timeout", "start-period", "start-interval"):
            if flag in instr.flags:
                durations[flag] = _duration_ns(instr.flags[flag], f"{where}: --{flag}")
        retries = 0
        if "retries" in instr.flags:
            try:
                retries = int(instr.flags["retries"])
            except ValueError:
                raise DockerfileError(f"{where}: --retries must be a number") from None
        return Healthcheck(test=test, interval=durations.get("interval", 0),
                           timeout=durations.get("timeout", 0),
                           start_period=durations.get("start-period", 0),
                           start_interval=durations.get("start-interval", 0), retries=retries)

    # --- cache ---------------------------------------------------------------------------------

    def _cache_get(self, key: str, options: BuildOptions) -> ImageConfig | None:
        if options.no_cache:
            return None
        try:
            path = self.cache_dir / f"{key}.json"
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            config = ImageConfig.from_json(data, source=f"build cache {key[:12]}")
        except Exception:  # noqa: BLE001 - a damaged cache entry is a miss
            return None
        if not all(self.store.has_layer(d) for d in config.diff_ids):
            return None
        touch_entry(path)  # last used now: what builder prune --keep-duration measures
        return config

    def _cache_put(self, key: str, config: ImageConfig) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{key}.{secrets.token_hex(4)}"
        tmp.write_bytes(config.to_json())
        os.rename(tmp, self.cache_dir / f"{key}.json")

    # --- filesystem steps ----------------------------------------------------------------------

    def _layer_paths(self, config: ImageConfig) -> list[Path]:
        # The store's documented layout: layers/<hex>/diff is a layer's directory.
        return [self.store.root / "layers" / hex_of(d) / "diff" for d in config.diff_ids]

    async def _fs_step(self, state: _State, instr: Instruction, where: str, step: int,
                       stages: list[_Stage], results: dict[int, _State], options: BuildOptions,
                       context: Path, ignore: Ignore) -> tuple[_State, bool]:
        env = state.env()
        if instr.keyword == "RUN":
            return await self._run_step(state, instr, where, step, stages, results, options,
                                        context, ignore)
        src = self._copy_args(instr, where, env, stages, results)
        if src.image_ref is not None:
            image = await self._base_image(src.image_ref, options.pull, where,
                                           what=f"COPY --from={src.image_ref}")
            src.state = _State(image.config, _key("image", image.id))
        fetched = Path(await trio.to_thread.run_sync(
            lambda: tempfile.mkdtemp(prefix="build-add-", dir=self.root)))
        try:
            extra = await self._fetch_extra(src, fetched, where, step)
            if src.state is None:
                cwhere = f"{where}: {instr.keyword}"
                entries = await trio.to_thread.run_sync(
                    lambda: [e for s in src.paths for e in expand(context, s, ignore, cwhere)])
                digest = await trio.to_thread.run_sync(content_hash, entries, ignore)
            else:
                entries = []
                digest = src.state.key
            if extra or src.digests:  # here-documents' text, downloads' content, commits
                digest = _key(digest, [(n, b) for n, b in src.inline],
                              [(u, d) for u, d in src.digests])
            # A Git source's --checksum only checks the commit, which the key names.
            flags = {k: v for k, v in instr.flags.items()
                     if not (src.git and k == "checksum")}
            key = _key(state.key, instr.keyword, src.words, src.dest, flags, digest)
            created_by = f"{instr.keyword} {substitute(instr.args, env)}"
            cached = self._cache_get(key, options)
            if cached is not None:
                return _State(cached, key, state.args), True
            await self._git_trees(src, fetched, where, step)
            layer_dir, cleanup = await self._copy(state, instr, where, src, entries, extra,
                                                  context, ignore)
            return await self._commit_layer(state, key, created_by, layer_dir, cleanup), False
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(
                    lambda: shutil.rmtree(fetched, ignore_errors=True))

    async def _commit_layer(self, state: _State, key: str, created_by: str, layer_dir: Path,
                            cleanup: Callable[[], Awaitable[None]]) -> _State:
        try:
            has_content = await trio.to_thread.run_sync(lambda: any(layer_dir.iterdir()))
            diff_ids: list[str] = []
            if has_content:
                layer = await trio.to_thread.run_sync(self.store.add_layer_from_dir, layer_dir)
                diff_ids = [layer.diff_id]
        finally:
            await cleanup()
        config = state.config.derive(diff_ids=diff_ids, created_by=created_by,
                                     comment="buildkit.dockerfile.v0")
        self._cache_put(key, config)
        return _State(config, key, state.args)

    async def _run_step(self, state: _State, instr: Instruction, where: str, step: int,
                        stages: list[_Stage], results: dict[int, _State],
                        options: BuildOptions, context: Path, ignore: Ignore
                        ) -> tuple[_State, bool]:
        env = state.env()
        argv = self._run_argv(state, instr)
        run_env = {k: v for k, v in state.args.items() if v is not None}
        network = instr.flags.get("network") or options.network or "host"
        mounts = parse_mounts([substitute(value, env) for value in instr.flag_values("mount")],
                              where, state.cc.working_dir or "/")
        bind_layers: list[list[Path] | None] = []
        mount_keys: list[tuple[object, ...]] = []
        for m in mounts:
            layers, digest = await self._mount_source(m, where, stages, results, options,
                                                      context, ignore)
            bind_layers.append(layers)
            mount_keys.append((*m.options(), digest))
        key = _key(state.key, "RUN", argv, sorted(run_env.items()), network,
                   *([mount_keys] if mount_keys else []))
        created_by = f"RUN {instr.args}" if not instr.heredocs else f"RUN {instr.original}"
        cached = self._cache_get(key, options)
        if cached is not None:
            return _State(cached, key, state.args), True

        def log(line: str) -> None:
            self._emit(f"#{step} {line}")

        agents: dict[str, str] = {}
        for m in mounts:
            if m.type == "ssh" and m.id not in agents:
                agent = await self._agents.socket(
                    m.id, f"{where}: RUN --mount=type=ssh,id={m.id}", log)
                if agent is not None:
                    agents[m.id] = agent
        ssh_targets = [m.target for m in mounts if m.type == "ssh"]
        if ssh_targets and "SSH_AUTH_SOCK" not in env:
            # As BuildKit: the first ssh mount's socket, not part of the cache key.
            run_env = {**run_env, "SSH_AUTH_SOCK": ssh_targets[0]}
        prepared = await prepare_mounts(mounts, bind_layers, root=self.root, context=context,
                                        ignore=ignore, where=where, log=log,
                                        secrets=options.secrets, ssh=agents)

        async def release() -> None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(prepared.release)

        try:
            layer_dir, remove = await self._run(
                state, argv, run_env, network, where, step, prepared.mounts,
                [functools.partial(serve_agent, f.listener, f.agent) for f in prepared.ssh])
        except BaseException:
            await release()
            raise

        async def cleanup() -> None:
            try:
                await remove()
            finally:
                await release()

        return await self._commit_layer(state, key, created_by, layer_dir, cleanup), False

    async def _mount_source(self, m: RunMount, where: str, stages: list[_Stage],
                            results: dict[int, _State], options: BuildOptions, context: Path,
                            ignore: Ignore) -> tuple[list[Path] | None, str]:
        """For a bind mount: the layers of its ``from=`` (None: the build context), and a
        digest of what it shows for the cache key (the source's content in the context,
        the stage's cache key, the image's id); likewise for a cache mount's ``from=``."""
        if m.type not in ("bind", "cache") or (m.type == "cache" and not m.from_ref):
            return None, ""
        if not m.from_ref:
            mwhere = f"{where}: RUN --mount"
            entries = await trio.to_thread.run_sync(
                lambda: expand(context, m.source or ".", ignore, mwhere))
            return None, await trio.to_thread.run_sync(content_hash, entries, ignore)
        for stage in stages:
            if stage.name == m.from_ref.lower() or str(stage.index) == m.from_ref:
                if stage.index not in results:
                    raise DockerfileError(f"{where}: RUN --mount from={m.from_ref}: stage "
                                          f"{m.from_ref!r} is not an earlier stage of this "
                                          "build")
                st = results[stage.index]
                return self._layer_paths(st.config), st.key
        image = await self._base_image(m.from_ref, options.pull, where,
                                       what=f"RUN --mount from={m.from_ref}")
        return self._layer_paths(image.config), image.id

    def _run_argv(self, state: _State, instr: Instruction) -> tuple[str, ...]:
        if instr.heredocs:
            # RUN <<EOF: the here-document is the script (any text before it is ignored
            # except a leading interpreter, e.g. ``RUN python3 <<EOF``).
            head = instr.args.split("<<", 1)[0].strip()
            body = instr.heredocs[0][1]
            if head:
                return (*(state.cc.shell or DEFAULT_SHELL),
                        f"{head} <<'__PC_EOF__'\n{body}__PC_EOF__\n")
            return (*(state.cc.shell or DEFAULT_SHELL), body)
        if instr.exec_form is not None:
            return instr.exec_form
        return (*(state.cc.shell or DEFAULT_SHELL), instr.args)

    async def _get_runtime(self) -> Any:
        if self._runtime is None:
            from pycompose.runtime.client import open_runtime

            assert self._stack is not None
            self._runtime = await self._stack.enter_async_context(
                open_runtime(self.root, self.instance))
        return self._runtime

    async def _run(self, state: _State, argv: tuple[str, ...], run_env: dict[str, str],
                   network: str, where: str, step: int, mounts: Sequence[Mount] = (),
                   services: Sequence[Callable[[], Awaitable[None]]] = ()
                   ) -> tuple[Path, Callable[[], Awaitable[None]]]:
        """Run ``argv`` in a container of ``state``; ``services`` run while it runs."""
        from pycompose.runtime.logs import follow, read_logs
        from pycompose.runtime.rootfs import container_dir
        from pycompose.runtime.spec import ContainerSpec, EtcFile, ImageDefaults

        rt = await self._get_runtime()
        cid = secrets.token_hex(32)
        layers = tuple(str(p) for p in self._layer_paths(state.config))
        if not layers:
            raise BuildStepError(f"{where}: RUN needs a base image with a shell "
                                 "(FROM scratch has none)")
        host = network in ("host", "default", "")
        spec = ContainerSpec(
            id=cid, name=f"pycompose-build-{cid[:12]}", layers=layers,
            image=ImageDefaults.from_config(state.cc), entrypoint=(), command=argv,
            env=run_env, working_dir=state.cc.working_dir or None,
            user=state.cc.user or None, netns="host" if host else "none",
            resolv_conf=EtcFile(path="/etc/resolv.conf") if host else None,
            etc_hosts=EtcFile(path="/etc/hosts") if host else None,
            mounts=tuple(mounts), labels={"org.pycompose.build": "1"})
        await rt.create(spec)
        removed = False

        async def cleanup() -> None:
            nonlocal removed
            if not removed:
                removed = True
                with trio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await rt.remove(cid, force=True)

        t0 = time.monotonic()
        printed = 0

        def show(entry: Any) -> None:
            for line in entry.text.rstrip("\n").split("\n"):
                self._emit(f"#{step} {time.monotonic() - t0:.3f} {line}")

        try:
            await rt.start(cid)
            log_path = rt.log_path(cid)

            async def pump() -> None:
                nonlocal printed
                async with contextlib.aclosing(follow(log_path)) as entries:
                    async for entry in entries:
                        show(entry)
                        printed += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump)
                for service in services:
                    nursery.start_soon(service)
                status = await rt.wait(cid)
                nursery.cancel_scope.cancel()
            for entry in (await trio.to_thread.run_sync(read_logs, log_path))[printed:]:
                show(entry)
            if status.code != 0:
                what = f"exit code {status.code}"
                if status.oom_killed:
                    what += " (out of memory)"
                raise BuildStepError(f"{where}: RUN {' '.join(argv[-1:])!r} did not complete "
                                     f"successfully: {what}")
            upper = Path(container_dir(str(self.root), cid)) / "upper"
            await trio.to_thread.run_sync(drop_mountpoints, upper)
            if mounts:
                await trio.to_thread.run_sync(
                    drop_run_mountpoints, upper, self._layer_paths(state.config),
                    [m.target for m in mounts])
        except BaseException:
            await cleanup()
            raise
        return upper, cleanup

    def _copy_args(self, instr: Instruction, where: str, env: dict[str, str],
                   stages: list[_Stage], results: dict[int, _State]) -> _CopySources:
        """The sources by kind, the destination, and what ``--from`` names: an earlier
        stage's state, or an image reference."""
        kw = instr.keyword
        words = list(instr.exec_form) if instr.exec_form is not None else \
            split_words(instr.args, where)
        words = [substitute(w, env) for w in words]
        if len(words) < 2:
            raise DockerfileError(f"{where}: {kw} requires at least two arguments")
        bodies = {name: (body, quoted) for (name, body), quoted
                  in zip(instr.heredocs, instr.heredoc_quoted or [False] * len(instr.heredocs),
                         strict=True)}
        src = _CopySources(words=words[:-1], dest=words[-1])
        for word in words[:-1]:
            m = _HEREDOC_WORD.match(word)
            if m and m.group(3) in bodies:
                body, quoted = bodies[m.group(3)]
                src.inline.append((m.group(3), body if quoted else substitute(body, env)))
            elif is_git(word):
                if kw != "ADD":
                    raise DockerfileError(f"{where}: COPY does not take Git sources ({word}); "
                                          "use ADD")
                src.git.append(parse_git(word, where))
            elif is_url(word):
                if kw != "ADD":
                    raise DockerfileError(f"{where}: COPY does not take URLs ({word}); "
                                          "use ADD")
                src.urls.append(word)
            else:
                src.paths.append(word)
        if "checksum" in instr.flags:
            value = substitute(instr.flags["checksum"], env)
            if src.git and len(src.words) == 1:  # as BuildKit: one Git source
                src.git_checksum = parse_git_checksum(value, src.git[0], where)
            elif not src.urls or src.paths or src.inline or src.git:
                raise DockerfileError(f"{where}: ADD --checksum needs http(s) URL sources "
                                      "only, or a single Git source")
            else:
                src.checksum = parse_checksum(value, where)
        if "keep-git-dir" in instr.flags:
            value = substitute(instr.flags["keep-git-dir"], env).lower()
            if value not in ("true", "false"):
                raise DockerfileError(f"{where}: ADD --keep-git-dir={value}: expected true or "
                                      "false")
            src.keep_git_dir = value == "true"
        if "from" in instr.flags:
            if src.urls or src.git:
                raise DockerfileError(f"{where}: {kw} --from does not take URLs")
            ref = substitute(instr.flags["from"], env)
            for stage in stages:
                if stage.name == ref.lower() or str(stage.index) == ref:
                    if stage.index not in results:
                        raise DockerfileError(f"{where}: COPY --from={ref}: stage {ref!r} is "
                                              "not an earlier stage of this build")
                    src.state = results[stage.index]
                    break
            else:
                src.image_ref = ref  # an image, found in the store or pulled (as BuildKit)
        return src

    async def _fetch_extra(self, src: _CopySources, into: Path, where: str,
                           step: int) -> list[tuple[Path, str]]:
        """The here-documents as files (0644) and the downloads (0600) in ``into``."""
        extra: list[tuple[Path, str]] = []
        if src.inline:
            def write() -> None:
                for n, (name, body) in enumerate(src.inline):
                    (into / f"inline-{n}").mkdir()
                    path = into / f"inline-{n}" / name
                    path.write_text(body)
                    os.chmod(path, 0o644)
                    extra.append((path, name))

            await trio.to_thread.run_sync(write)
        if src.urls:
            async with HttpClient() as http:
                for n, url in enumerate(src.urls):
                    self._emit(f"#{step} downloading {url}")
                    folder = into / f"url-{n}"
                    await trio.to_thread.run_sync(folder.mkdir)
                    got = await download(url, folder, where, checksum=src.checksum, http=http)
                    if not got.name and (src.dest.endswith("/") or len(src.words) > 1):
                        raise DockerfileError(f"{where}: ADD {url}: cannot name the file "
                                              "from the URL; give a file name as destination")
                    src.digests.append((url, got.digest))
                    extra.append((got.path, got.path.name))
        for n, git in enumerate(src.git):  # the commit now: the cache key names it
            self._emit(f"#{step} resolving {git.remote}#{git.ref or 'HEAD'}")
            got_commit = await resolve(git, into / f"git-{n}", where)
            if src.git_checksum:  # on every build: a cache hit does not skip it
                verify_git_checksum(git, got_commit, src.git_checksum, where)
            src.resolved.append(got_commit)
            src.digests.append((git.text, f"git {got_commit.commit} {src.keep_git_dir} "
                                          "submodules"))
        return extra

    async def _git_trees(self, src: _CopySources, into: Path, where: str, step: int) -> None:
        """Check out the Git sources' commits in ``into`` (``src.trees``)."""
        for n, (git, resolved) in enumerate(zip(src.git, src.resolved, strict=True)):
            self._emit(f"#{step} fetching {git.remote} {resolved.commit[:12]}")
            src.trees.append(await checkout(git, resolved, into / f"git-{n}", where,
                                            keep_git_dir=src.keep_git_dir))

    async def _copy(self, state: _State, instr: Instruction, where: str, src: _CopySources,
                    entries: list[tuple[Path, str]], extra: list[tuple[Path, str]],
                    context: Path, ignore: Ignore) -> tuple[Path, Callable[[], Awaitable[None]]]:
        work = Path(tempfile.mkdtemp(prefix="build-copy-", dir=self.root))

        def remove() -> None:
            unmount(work / "src")  # never remove anything through a source mount
            shutil.rmtree(work, ignore_errors=True)

        async def cleanup() -> None:
            await trio.to_thread.run_sync(remove)

        lowers = self._layer_paths(state.config)
        try:
            uid, gid = chown_ids(instr.flags.get("chown"), lowers, where)
            mode = None
            if "chmod" in instr.flags:
                try:
                    mode = int(instr.flags["chmod"], 8)
                except ValueError:
                    raise DockerfileError(f"{where}: --chmod={instr.flags['chmod']}: expected "
                                          "octal permissions") from None
            dest = src.dest
            workdir = state.cc.working_dir or "/"
            target = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
            dir_dest = dest.endswith("/") or len(src.words) > 1 or dest in (".", "./")
            diff = work / "diff"
            diff.mkdir()
            from_stage = src.state is not None
            if src.state is not None:
                src_layers = self._layer_paths(src.state.config)
                entries = await trio.to_thread.run_sync(
                    mount_sources, work, src_layers, src.paths, where)
                ignore = Ignore()
            if len(entries) + len(extra) > 1 or src.trees:
                dir_dest = True

            def do_copy() -> None:
                rel_target = os.path.normpath(target).lstrip("/")
                into_dir = dir_dest
                existing = lookup(lowers, rel_target)
                if existing is not None and existing.is_dir() and not existing.is_symlink():
                    into_dir = True  # COPY file /existing/dir: into it, as Docker
                make_parents(diff, lowers, rel_target if into_dir else
                             os.path.dirname(rel_target))
                for path, rel in entries:
                    if path.is_dir() and not path.is_symlink():
                        out = diff / rel_target
                        copy_entry(path, out, uid=uid, gid=gid, mode=mode,
                                   ignore=None if from_stage else ignore, rel=rel)
                    elif instr.keyword == "ADD" and path.name.endswith(ARCHIVE_SUFFIXES):
                        extract_archive(path, diff / rel_target, where)
                    else:
                        out = diff / rel_target / path.name if into_dir else diff / rel_target
                        copy_entry(path, out, uid=uid, gid=gid, mode=mode)
                for path, name in extra:  # never extracted (downloads: as Docker)
                    out = diff / rel_target / name if into_dir else diff / rel_target
                    copy_entry(path, out, uid=uid, gid=gid, mode=mode)
                for tree in src.trees:  # a repository's contents, as a directory's
                    copy_entry(tree, diff / rel_target, uid=uid, gid=gid, mode=mode)

            try:
                await trio.to_thread.run_sync(do_copy)
            finally:
                await trio.to_thread.run_sync(unmount, work / "src")
        except BaseException:
            await cleanup()
            raise
        return diff, cleanup


def _duration_ns(text: str, where: str) -> int:
    import re

    total = 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    matches = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not matches or "".join(a + b for a, b in matches) != text:
        raise DockerfileError(f"{where}: invalid duration {text!r} (e.g. 30s, 1m30s)")
    for number, unit in matches:
        total += float(number) * units[unit]
    return int(total * 1e9)


def drop_mountpoints(upper: Path) -> None:
    """Files the runtime created only as bind-mount targets are not part of the layer."""
    for rel in _MOUNTPOINT_FILES:
        path = upper / rel
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                path.unlink()
    etc = upper / "etc"
    with contextlib.suppress(OSError):
        if etc.is_dir() and not any(etc.iterdir()) and not os.listxattr(etc):
            etc.rmdir()
