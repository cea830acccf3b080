"""``RUN --mount=…`` (BuildKit syntax): cache, bind and tmpfs mounts for one RUN container.

* ``type=cache``: a directory under ``<state_root>/build-mounts/cache/`` named by a
  hash of ``id`` (default: the target), made with ``mode``/``uid``/``gid`` (0755,
  0:0) when first used and kept across builds. ``sharing=shared`` (default) lets
  concurrent builds use it together, ``locked`` waits for the other user to finish,
  ``private`` takes another instance of the cache when this one is in use. ``ro``
  mounts it read-only. With ``from=`` (an earlier stage or an image) a new cache
  starts as a copy of that one's ``source`` (default: its root); an existing cache
  keeps what it has.
* ``type=bind``: ``source`` (default: the root) of the build context, or of an
  earlier stage or an image with ``from=``; read-only unless ``rw``, and what an
  ``rw`` bind writes is discarded: an overlay over the stage's or image's layers or
  over the context directory, or a copy (a single file, or a context with
  ``.dockerignore`` rules, which the mount must honour).
* ``type=tmpfs``: ``size`` in bytes (``64m``, ``1g``).
* ``type=secret``: the build secret ``id`` (given to the build, e.g. by Compose's
  ``build.secrets``) as a read-only file at ``target`` (default
  ``/run/secrets/<id>``) with ``mode`` (0400), ``uid``, ``gid``; a secret the build
  was not given is an error with ``required``, else the mount is left out. Its content
  is never in the layer nor in the cache key.
* ``type=ssh``: the build's SSH agent ``id`` (default ``default``; given to the build,
  e.g. by Compose's ``build.ssh``) as a socket at ``target`` (default
  ``/run/buildkit/ssh_agent.N``, N counting the step's ssh mounts from 0) with ``mode``
  (0600), ``uid``, ``gid``: a socket of the RUN's own that forwards to the agent (see
  ``ssh``). ``required`` makes a missing agent an error, else the mount is left out.
  The agent is not in the cache key.

A relative target is below the working directory. The mounts are never part of the
layer; neither are the mount points the runtime had to create for them
(:func:`drop_run_mountpoints`). A RUN's cache key holds each mount's options (and a
bind's source content), never a cache mount's content, as BuildKit.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import functools
import hashlib
import os
import posixpath
import re
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio

from pycompose.runtime.build.cache import mounts_dir, try_lock
from pycompose.runtime.build.context import Ignore, copy_entry
from pycompose.runtime.build.copying import lookup, mount_view, unmount
from pycompose.runtime.build.errors import BuildError, DockerfileError
from pycompose.runtime.build.ssh import agent_listener
from pycompose.runtime.rootfs import secure_join
from pycompose.runtime.spec import Mount, MountType

__all__ = ["PreparedMounts", "RunMount", "SshForward", "drop_run_mountpoints", "from_refs",
           "parse_mount", "parse_mounts", "prepare_mounts"]

_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_ALIASES = {"dst": "target", "destination": "target", "src": "source", "ro": "readonly",
            "rw": "readwrite"}
_KEYS = {
    "bind": {"type", "target", "source", "from", "readonly", "readwrite"},
    "cache": {"type", "target", "id", "sharing", "mode", "uid", "gid", "readonly",
              "readwrite", "from", "source"},
    "tmpfs": {"type", "target", "size"},
    "secret": {"type", "target", "id", "required", "mode", "uid", "gid"},
    "ssh": {"type", "target", "id", "required", "mode", "uid", "gid"},
}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?$", re.I)
_FROM = re.compile(r"(?:^|,)\s*from=([^,]+)")
_V = TypeVar("_V")


@dataclass(frozen=True)
class RunMount:
    type: str                 # bind, cache, tmpfs, secret or ssh
    target: str               # absolute path in the container
    source: str = ""          # bind, cache: path in the context, stage or image
    from_ref: str = ""        # bind: a stage or an image, empty: the build context;
    #                           cache: what a new cache starts from, empty: nothing
    read_only: bool = False
    id: str = ""              # cache: what names the cache (default: the target);
    #                           secret, ssh: what the build was given
    sharing: str = "shared"   # cache: shared, private or locked
    mode: int = 0o755         # cache: the directory's mode, owner and group when made
    uid: int = 0
    gid: int = 0
    size: int | None = None   # tmpfs: bytes (None: the kernel's default)
    required: bool = False    # secret, ssh: an error when the build was not given it

    def options(self) -> tuple[object, ...]:
        """What of this mount goes into the RUN's cache key."""
        if self.type == "cache":
            return ("cache", self.target, self.id, self.sharing, self.mode, self.uid,
                    self.gid, self.read_only, self.from_ref, self.source)
        if self.type == "bind":
            return ("bind", self.target, self.source, self.from_ref, self.read_only)
        if self.type in ("secret", "ssh"):  # never the content or the agent (as BuildKit)
            return (self.type, self.target, self.id, self.required, self.mode, self.uid,
                    self.gid)
        return ("tmpfs", self.target, self.size)


def from_refs(values: Sequence[str]) -> list[str]:
    """The ``from=`` of each ``--mount`` value (before substitution), for stage ordering."""
    return [m.group(1).strip().strip("\"'") for v in values for m in _FROM.finditer(v)]


def parse_mounts(values: Sequence[str], where: str, workdir: str) -> list[RunMount]:
    """A RUN's ``--mount`` values (after variable substitution), ssh mounts numbered."""
    out: list[RunMount] = []
    for value in values:
        out.append(parse_mount(value, where, workdir,
                               ssh_index=sum(m.type == "ssh" for m in out)))
    return out


def parse_mount(value: str, where: str, workdir: str, *, ssh_index: int = 0) -> RunMount:
    """One ``--mount`` value (after variable substitution): comma-separated ``key=value``
    fields, CSV-quoted as BuildKit; ``ro``/``rw`` may stand alone. ``ssh_index`` numbers
    an ssh mount's default target."""
    what = f"{where}: RUN --mount={value}"
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as exc:
        raise DockerfileError(f"{what}: {exc}") from None
    opts: dict[str, str] = {}
    for item in fields:
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        key = _ALIASES.get(key.strip().lower(), key.strip().lower())
        opts[key] = val.strip() if sep else "true"
    kind = opts.get("type", "bind").lower()
    if kind not in _TYPES:
        raise DockerfileError(f"{what}: unknown mount type {kind!r} "
                              "(expected bind, cache, tmpfs, secret or ssh)")
    for key in opts:
        if key not in _KEYS[kind]:
            raise DockerfileError(f"{what}: {key!r} is not an option of a {kind} mount "
                                  f"(options: {', '.join(sorted(_KEYS[kind]))})")
    if kind == "secret":
        return _secret(opts, what)
    if kind == "ssh":
        return _ssh(opts, what, workdir, ssh_index)
    target = opts.get("target", "")
    if not target:
        raise DockerfileError(f"{what}: a target is required")
    if not target.startswith("/"):
        target = posixpath.join(workdir or "/", target)
    target = posixpath.normpath(target)
    if target in ("/", "//"):
        raise DockerfileError(f"{what}: cannot mount over /")
    read_only = kind == "bind"
    if "readonly" in opts:
        read_only = _bool(opts["readonly"], "readonly", what)
    if "readwrite" in opts:
        read_only = not _bool(opts["readwrite"], "readwrite", what)
    if kind == "tmpfs":
        size = _size(opts["size"], what) if "size" in opts else None
        return RunMount("tmpfs", target, size=size)
    if kind == "bind":
        return RunMount("bind", target, source=opts.get("source", ""),
                        from_ref=opts.get("from", ""), read_only=read_only)
    sharing = opts.get("sharing", "shared").lower()
    if sharing not in ("shared", "private", "locked"):
        raise DockerfileError(f"{what}: sharing must be shared, private or locked, "
                              f"not {sharing!r}")
    if "source" in opts and "from" not in opts:
        raise DockerfileError(f"{what}: a cache mount's source is a path in its from= "
                              "(a stage or an image), which is missing")
    return RunMount("cache", target, id=opts.get("id") or target, sharing=sharing,
                    source=opts.get("source", ""), from_ref=opts.get("from", ""),
                    read_only=read_only, mode=_number(opts.get("mode", "0755"), 8, "mode", what),
                    uid=_number(opts.get("uid", "0"), 10, "uid", what),
                    gid=_number(opts.get("gid", "0"), 10, "gid", what))


def _secret(opts: dict[str, str], what: str) -> RunMount:
    """``type=secret``: ``id`` defaults to the target's name, ``target`` to
    ``/run/secrets/<id>``."""
    secret_id = opts.get("id", "")
    target = opts.get("target", "")
    if not secret_id and not target:
        raise DockerfileError(f"{what}: a secret mount needs an id (or a target)")
    if not secret_id:
        secret_id = posixpath.basename(target.rstrip("/"))
    if not target:
        target = f"/run/secrets/{secret_id}"
    if not target.startswith("/"):
        raise DockerfileError(f"{what}: the target of a secret must be absolute")
    return RunMount("secret", posixpath.normpath(target), id=secret_id, read_only=True,
                    required=_bool(opts.get("required", "false"), "required", what),
                    mode=_number(opts.get("mode", "0400"), 8, "mode", what),
                    uid=_number(opts.get("uid", "0"), 10, "uid", what),
                    gid=_number(opts.get("gid", "0"), 10, "gid", what))


def _ssh(opts: dict[str, str], what: str, workdir: str, index: int) -> RunMount:
    """``type=ssh``: ``id`` defaults to ``default``, ``target`` to
    ``/run/buildkit/ssh_agent.<index>``."""
    target = opts.get("target") or f"/run/buildkit/ssh_agent.{index}"
    if not target.startswith("/"):
        target = posixpath.join(workdir or "/", target)
    target = posixpath.normpath(target)
    if target in ("/", "//"):
        raise DockerfileError(f"{what}: cannot mount over /")
    return RunMount("ssh", target, id=opts.get("id") or "default",
                    required=_bool(opts.get("required", "false"), "required", what),
                    mode=_number(opts.get("mode", "0600"), 8, "mode", what),
                    uid=_number(opts.get("uid", "0"), 10, "uid", what),
                    gid=_number(opts.get("gid", "0"), 10, "gid", what))


def _bool(value: str, key: str, what: str) -> bool:
    low = value.lower()
    if low in ("", "true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise DockerfileError(f"{what}: {key}={value!r}: expected true or false")


def _number(value: str, base: int, key: str, what: str) -> int:
    try:
        number = int(value, base)
    except ValueError:
        number = -1
    if number < 0:
        kind = "octal permissions" if base == 8 else "a number"
        raise DockerfileError(f"{what}: {key}={value!r}: expected {kind}")
    return number


def _size(value: str, what: str) -> int:
    m = _SIZE.match(value.strip())
    if not m:
        raise DockerfileError(f"{what}: size={value!r}: expected bytes, e.g. 64m or 1g")
    power = " kmgtp".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * 1024 ** power)


# --- setting the mounts up ---------------------------------------------------------------


@dataclass
class SshForward:
    """An ssh mount's socket (listening) and the agent it forwards to."""

    listener: socket.socket
    agent: str


@dataclass
class PreparedMounts:
    """The runtime mounts of one RUN, and what has to be undone after it. ``ssh``: the
    sockets to serve (``ssh.serve_agent``) while the RUN runs."""

    mounts: list[Mount] = field(default_factory=list)
    work: Path | None = None
    views: list[Path] = field(default_factory=list)   # host mounts made here
    lock_fds: list[int] = field(default_factory=list)
    ssh: list[SshForward] = field(default_factory=list)

    def release(self) -> None:
        """Unmount the views, remove the work directory, drop the cache locks (blocking).
        The work directory is kept if a view could not be unmounted: removing it would
        reach into the layers below."""
        for forward in self.ssh:
            forward.listener.close()
        self.ssh.clear()
        try:
            for view in reversed(self.views):
                try:
                    unmount(view)
                except OSError as exc:
                    raise BuildError(f"cannot unmount {view}: {exc.strerror}") from None
            self.views.clear()
            if self.work is not None:
                shutil.rmtree(self.work, ignore_errors=True)
                self.work = None
        finally:
            for fd in self.lock_fds:
                os.close(fd)
            self.lock_fds.clear()


async def prepare_mounts(mounts: Sequence[RunMount], bind_layers: Sequence[list[Path] | None],
                         *, root: Path, context: Path, ignore: Ignore, where: str,
                         log: Callable[[str], None],
                         secrets: Mapping[str, bytes] | None = None,
                         ssh: Mapping[str, str] | None = None) -> PreparedMounts:
    """Set up ``mounts`` for a RUN container. ``bind_layers[i]`` is, for a bind mount
    ``from=`` a stage or an image, its layer directories (None: the build context);
    ``secrets`` are the build's secrets by id, ``ssh`` its SSH agents' sockets by id."""
    prepared = PreparedMounts()
    try:
        for m, layers in zip(mounts, bind_layers, strict=True):
            if m.type == "ssh":
                agent = _given(ssh, m, where, "an SSH agent or key", "build.ssh")
                if agent is None:
                    log(f"{where}: no SSH agent {m.id!r} was given: {m.target} is left out")
                    continue  # not required: left out, as BuildKit
                path = await _work(prepared, root) / f"ssh-{len(prepared.mounts)}"
                listener = await trio.to_thread.run_sync(functools.partial(
                    agent_listener, path, uid=m.uid, gid=m.gid, mode=m.mode))
                prepared.ssh.append(SshForward(listener, agent))
                prepared.mounts.append(Mount(MountType.BIND, m.target, source=str(path),
                                             create_host_path=False))
                continue
            if m.type == "secret":
                content = _given(secrets, m, where, "a secret", "build.secrets")
                if content is None:
                    continue  # not required: left out, as BuildKit
                source = await trio.to_thread.run_sync(
                    _secret_file, await _work(prepared, root), len(prepared.mounts), m,
                    content)
                prepared.mounts.append(Mount(MountType.BIND, m.target, source=str(source),
                                             read_only=True, create_host_path=False))
            elif m.type == "tmpfs":
                prepared.mounts.append(Mount(MountType.TMPFS, m.target, tmpfs_size=m.size))
            elif m.type == "cache":
                source = await _cache_dir(m, layers, root, prepared, where, log)
                prepared.mounts.append(Mount(MountType.BIND, m.target, source=str(source),
                                             read_only=m.read_only, create_host_path=False))
            else:
                await _work(prepared, root)
                source = await trio.to_thread.run_sync(
                    _bind_source, m, layers, context, ignore, prepared, where)
                prepared.mounts.append(Mount(MountType.BIND, m.target, source=str(source),
                                             read_only=m.read_only, create_host_path=False))
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(prepared.release)
        raise
    return prepared


def _secret_file(work: Path, index: int, m: RunMount, content: bytes) -> Path:
    """The secret as a file of its own in the RUN's private work directory (0700)."""
    path = work / f"secret-{index}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode)
    return path


def _given(given: Mapping[str, _V] | None, m: RunMount, where: str, what: str,
           compose: str) -> _V | None:
    """What the build was given for ``m.id``; None when it was not and ``m`` does not
    require it (an error naming the line when it does)."""
    value = (given or {}).get(m.id)
    if value is None and m.required:
        raise DockerfileError(f"{where}: RUN --mount=type={m.type},id={m.id}: the build was "
                              f"not given {what} {m.id!r} (Compose: {compose})")
    return value


async def _work(prepared: PreparedMounts, root: Path) -> Path:
    """The RUN's private work directory (secrets, sockets, bind views), made on first use."""
    if prepared.work is None:
        prepared.work = Path(await trio.to_thread.run_sync(
            lambda: tempfile.mkdtemp(prefix="build-mounts-", dir=root)))
    return prepared.work


async def _cache_dir(m: RunMount, layers: list[Path] | None, root: Path,
                     prepared: PreparedMounts, where: str, log: Callable[[str], None]) -> Path:
    base = mounts_dir(root)
    name = hashlib.sha256(m.id.encode()).hexdigest()[:32]
    await trio.to_thread.run_sync(lambda: base.mkdir(parents=True, exist_ok=True))
    if m.sharing == "shared":
        path = base / name
    elif m.sharing == "locked":
        fd = _open_lock(base / f"{name}.lock")
        prepared.lock_fds.append(fd)
        if not try_lock(fd, exclusive=True):
            log(f"{where}: waiting for the cache mount {m.id!r} (sharing=locked), "
                "in use by another build")
            await trio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX,
                                          abandon_on_cancel=True)
        path = base / name
    else:  # private: the first instance nobody else holds
        n = 0
        while True:
            instance = name if n == 0 else f"{name}-{n}"
            fd = _open_lock(base / f"{instance}.lock")
            if try_lock(fd, exclusive=True):
                prepared.lock_fds.append(fd)
                path = base / instance
                break
            os.close(fd)
            n += 1
    await trio.to_thread.run_sync(_make_cache, path, m, layers, where)
    return path


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _make_cache(path: Path, m: RunMount, layers: list[Path] | None, where: str) -> None:
    """The cache directory, with the mount's mode and owner when it is made (as BuildKit:
    an existing cache keeps what it has); with ``from=`` (``layers``) it starts as a copy
    of ``source`` in them. Made beside and renamed into place: a build that meets it
    sees it whole."""
    if os.path.lexists(path):
        return
    new = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if layers is not None:
            _seed_cache(new, m, layers, where)
        os.chown(new, m.uid, m.gid)
        os.chmod(new, m.mode)
        try:
            os.rename(new, path)
        except OSError as exc:  # another build made it meanwhile: that one is the cache
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    finally:
        if new.exists():
            shutil.rmtree(new)


def _seed_cache(new: Path, m: RunMount, layers: list[Path], where: str) -> None:
    """Copy ``m.source`` of the stage's or image's ``layers`` into the new cache ``new``."""
    what = f"{where}: RUN --mount type=cache,from={m.from_ref},source={m.source or '/'}"
    view = new.parent / f"{new.name}.view"
    view.mkdir()
    try:
        if layers:
            mount_view(view, layers, upper=None)
        try:
            src = Path(secure_join(str(view), posixpath.normpath(m.source.lstrip("/") or ".")))
            if not os.path.isdir(src):
                raise DockerfileError(f"{what}: not a directory in {m.from_ref}")
            # As a snapshot would be: owners, modes, times, links and xattrs kept.
            done = subprocess.run(["cp", "-a", "--", f"{src}/.", str(new)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BuildError(f"{what}: copying into the new cache failed: "
                                 f"{done.stderr.strip()}")
        finally:
            if layers:
                unmount(view)
    finally:
        view.rmdir()


def _bind_source(m: RunMount, layers: list[Path] | None, context: Path, ignore: Ignore,
                 prepared: PreparedMounts, where: str) -> Path:
    """The host path to bind for ``m``: in the context, or in a view of a stage's or an
    image's layers (writable over a private upper dir for ``rw``)."""
    assert prepared.work is not None
    n = len(prepared.mounts)
    work = prepared.work / f"bind-{n}"
    work.mkdir()
    rel = posixpath.normpath(m.source.lstrip("/")) if m.source.strip("/") else "."
    what = f"{where}: RUN --mount source={m.source or '/'}"
    if layers is not None:
        view = work / "view"
        view.mkdir()
        if layers or not m.read_only:
            mount_view(view, layers, upper=None if m.read_only else work)
            prepared.views.append(view)
        path = Path(secure_join(str(view), rel))
        if not os.path.lexists(path):
            raise DockerfileError(f"{what}: not found in {m.from_ref}")
        return path
    if rel == ".." or rel.startswith("../"):
        raise DockerfileError(f"{what}: outside the build context")
    path = Path(secure_join(str(context), rel))
    if not os.path.lexists(path):
        raise DockerfileError(f"{what}: not found in the build context")
    if rel != "." and ignore.ignored(rel):
        raise DockerfileError(f"{what}: excluded by .dockerignore")
    if ignore.rules:
        # The mount shows what the build may see: a copy without the ignored files.
        copy = work / "copy"
        copy_entry(path, copy, uid=None, gid=None, mode=None, ignore=ignore,
                   rel=str(path.relative_to(context)) if path != context else ".")
        return copy
    if m.read_only:
        return path
    if path.is_dir():
        view = work / "view"
        view.mkdir()
        try:
            mount_view(view, [path], upper=work)
        except OSError:
            shutil.rmtree(view)
            shutil.copytree(path, view, symlinks=True)  # no overlay over this filesystem
            return view
        prepared.views.append(view)
        return view
    copy = work / "copy"
    shutil.copy2(path, copy, follow_symlinks=False)
    return copy


def drop_run_mountpoints(upper: Path, lowers: Sequence[Path], targets: Sequence[str]) -> None:
    """Remove from a RUN's upper dir the mount points the runtime made for ``targets``
    (empty directories and files the image does not have), with the parent
    directories made or copied up only for them."""
    for target in sorted(targets, key=lambda t: t.count("/"), reverse=True):
        parts = [p for p in target.split("/") if p]
        while parts:
            rel = "/".join(parts)
            if not _drop_one(upper / rel, lookup(lowers, rel)):
                break
            parts.pop()


def _drop_one(path: Path, lower: Path | None) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True  # nothing here: look at the parent
    if stat.S_ISREG(st.st_mode):
        if lower is None and st.st_size == 0:
            path.unlink()
            return True
        return False
    if not stat.S_ISDIR(st.st_mode) or any(path.iterdir()):
        return False
    if lower is not None:
        # Copied up only because a mount point was made below it: unchanged but for
        # its mtime. An opaque directory was replaced by the RUN: it stays.
        try:
            opaque = os.getxattr(path, "trusted.overlay.opaque") == b"y"
        except OSError:
            opaque = False
        lst = os.lstat(lower)
        if opaque or not stat.S_ISDIR(lst.st_mode) or \
                (st.st_mode, st.st_uid, st.st_gid) != (lst.st_mode, lst.st_uid, lst.st_gid):
            return False
    path.rmdir()
    return True
