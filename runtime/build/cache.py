"""The Dockerfile builder's cache on disk: its lock, its usage, and pruning it.

Layout under the state root (the builder writes the entries, see ``builder.py``)::

    build-cache/.lock                 flock: shared while a build runs, exclusive to prune
    build-cache/<key>.json            one step's resulting image config (a cache entry)
    build-cache/.<key>.<hex>          an entry being written (renamed into place when done)
    build-mounts/cache/<id>/          ``RUN --mount=type=cache`` directories

An entry can hit only while every layer of its ``diff_ids`` is in the image
store; its file's mtime is when it was last written or hit (``touch_entry``).
The layers a build made live in the image store, referenced by no image until
one uses them, so the cache is what keeps intermediate stages and superseded
steps on disk. :func:`prune_build_cache` removes entries, then those of their
layers no image uses.

What prune removes (as ``docker builder prune``):

* always: entries that can never hit again (a layer gone, unreadable) and temp
  files of writers that died;
* by default, *dangling* entries: those whose layers are not the bottom of any
  image's layers, i.e. the step is part of no image in the store (intermediate
  stages, steps a changed Dockerfile superseded, builds whose image was removed);
* with ``all``: every entry, and the cache-mount directories;
* ``keep_duration`` (seconds) spares entries (and cache mounts) used more
  recently than that; ``None`` spares none. It never spares dead entries.

Entries the builder is writing are never seen half-done: prune holds the
exclusive lock, which waits for running builds (a bounded time) and keeps new
ones out until it is done. Image layers are removed under the image store's own
lock, and only when no image uses them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from pycompose.runtime.build.errors import BuildCacheBusyError, BuildError
from pycompose.runtime.images.config import ImageConfig
from pycompose.runtime.images.store import ImageStore

__all__ = [
    "CacheEntry", "CachePruneResult", "CacheUsage", "build_lock", "build_lock_async",
    "cache_dir", "cache_usage", "mounts_dir", "prune_build_cache", "touch_entry",
]

LOCK_NAME = ".lock"
PRUNE_WAIT = 10.0  # seconds prune waits for running builds before giving up
_ENTRY_RE = re.compile(r"^([0-9a-f]{64})\.json$")
_TEMP_RE = re.compile(r"^\.[0-9a-f]{64}\.[0-9a-f]+$")


def cache_dir(state_root: Path) -> Path:
    return Path(state_root) / "build-cache"


def mounts_dir(state_root: Path) -> Path:
    """Where ``RUN --mount=type=cache`` directories live (one per cache id)."""
    return Path(state_root) / "build-mounts" / "cache"


@contextlib.contextmanager
def _map_os_errors(what: str) -> Iterator[None]:
    """A raw ``OSError`` leaves as a ``BuildError`` naming the path."""
    try:
        yield
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise BuildError(f"{what}: {where}{exc.strerror or exc}") from exc


# --- the lock ------------------------------------------------------------------------------


def _open_lock(state_root: Path) -> int:
    directory = cache_dir(state_root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BuildError(f"build cache: {directory / LOCK_NAME}: {exc.strerror or exc}") from None


def try_lock(fd: int, *, exclusive: bool) -> bool:
    """flock ``fd`` without waiting; False when another holder has it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _busy(state_root: Path) -> BuildCacheBusyError:
    return BuildCacheBusyError(
        f"a build is running (it holds {cache_dir(state_root) / LOCK_NAME}); "
        "try again when it has finished")


@contextlib.contextmanager
def build_lock(state_root: Path, *, exclusive: bool,
               timeout: float | None = PRUNE_WAIT) -> Iterator[None]:
    """Hold the build-cache lock: ``exclusive=False`` while building (several builds at
    once), ``exclusive=True`` to prune. Waits at most ``timeout`` seconds (``None``:
    as long as it takes), then raises :class:`BuildCacheBusyError` ("a build is running").

    Blocks the calling thread; a build in trio uses :func:`build_lock_async` for the
    whole of ``Builder.build``::

        async with build_lock_async(self.root):
            ...
    """
    fd = _open_lock(state_root)
    try:
        # flock has no descriptor to wait on and no timeout: poll with a growing pause,
        # bounded by the deadline (a prune or a build holds it for seconds, not ms).
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while not try_lock(fd, exclusive=exclusive):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise _busy(state_root)
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 0.5)
        yield
    finally:
        os.close(fd)  # releases the flock


@contextlib.asynccontextmanager
async def build_lock_async(state_root: Path) -> AsyncIterator[None]:
    """The shared build lock for a build running in trio, held for the whole build so a
    prune never removes an entry or layer the build is about to use. Waits (cancellably,
    without blocking the event loop) while a prune holds it exclusively."""
    import trio

    fd = _open_lock(state_root)
    try:
        pause = 0.01
        while not try_lock(fd, exclusive=False):
            await trio.sleep(pause)  # a prune is short; flock gives nothing to wait on
            pause = min(pause * 2, 0.5)
        yield
    finally:
        os.close(fd)


def touch_entry(path: Path) -> None:
    """Mark the cache entry at ``path`` used now (the builder calls it on a hit), so
    ``keep_duration`` measures time since last use. A missing entry is ignored."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


# --- reading the cache ---------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    """One cache entry. ``layer`` is the layer its step made (None for a metadata step);
    ``dead`` entries can never hit (a layer gone, an unreadable file)."""

    key: str
    path: Path
    file_size: int
    last_used: float            # mtime, seconds since the epoch
    diff_ids: tuple[str, ...]
    layer: str | None
    dead: bool


def _entries(store: ImageStore, state_root: Path) -> tuple[list[CacheEntry], list[Path]]:
    """The entries (sorted by key) and the temp files in the cache directory."""
    directory = cache_dir(state_root)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return [], []
    entries: list[CacheEntry] = []
    temps: list[Path] = []
    for name in names:
        path = directory / name
        if _TEMP_RE.match(name):
            temps.append(path)
            continue
        match = _ENTRY_RE.match(name)
        if match is None:
            continue  # not ours (the lock, or something a user put there): left alone
        try:
            st = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        try:
            config = ImageConfig.from_json(data, source=f"build cache {name}")
        except Exception:  # noqa: BLE001 - any unreadable entry is a miss for the builder too
            entries.append(CacheEntry(match.group(1), path, st.st_size, st.st_mtime, (),
                                      None, dead=True))
            continue
        made = bool(config.diff_ids) and bool(config.history) and \
            not config.history[-1].empty_layer
        entries.append(CacheEntry(
            key=match.group(1), path=path, file_size=st.st_size, last_used=st.st_mtime,
            diff_ids=config.diff_ids, layer=config.diff_ids[-1] if made else None,
            dead=not all(store.has_layer(d) for d in config.diff_ids),
        ))
    return entries, temps


def _image_chains(store: ImageStore) -> tuple[set[tuple[str, ...]], set[str]]:
    """Every bottom part (prefix) of every image's layers, and every layer images use."""
    prefixes: set[tuple[str, ...]] = set()
    used: set[str] = set()
    for image in store.list():
        ids = image.config.diff_ids
        used.update(ids)
        prefixes.update(ids[:n] for n in range(len(ids) + 1))
    return prefixes, used


def _layer_size(store: ImageStore, diff_id: str) -> int:
    # The store's documented layout: layers/<hex>/layer.json holds the layer's size.
    try:
        meta = json.loads((store.root / "layers" / diff_id.partition(":")[2]
                           / "layer.json").read_bytes())
        return int(meta.get("size", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def _tree_size(path: Path) -> int:
    """Bytes of file content under ``path`` (not following symlinks)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def _mounts(state_root: Path) -> list[tuple[Path, float]]:
    """The cache-mount directories and their mtimes (their ``<name>.lock`` files, for
    ``sharing=locked|private``, go with them)."""
    try:
        children = sorted(mounts_dir(state_root).iterdir())
    except FileNotFoundError:
        return []
    out = []
    for path in children:
        with contextlib.suppress(FileNotFoundError):
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                out.append((path, st.st_mtime))
    return out


@dataclass(frozen=True)
class CacheUsage:
    """What ``builder du`` shows: the entries, the dangling ones, the layer bytes each made
    (only layers no image uses count: those prune can reclaim), and the cache mounts."""

    entries: tuple[CacheEntry, ...]
    dangling: frozenset[str]            # keys
    sizes: dict[str, int]               # key -> bytes of the cache-only layer it made
    mounts: tuple[tuple[str, int], ...]  # (cache mount id, bytes)
    reclaimable: int                     # what ``prune --all`` would reclaim
    total: int                           # that and the layers images share with the cache


def cache_usage(store: ImageStore, state_root: Path) -> CacheUsage:
    """Measure the cache (a snapshot; takes no lock)."""
    with _map_os_errors("build cache"):
        return _usage(store, Path(state_root))


def _usage(store: ImageStore, state_root: Path) -> CacheUsage:
    entries, temps = _entries(store, state_root)
    prefixes, used = _image_chains(store)
    dangling = frozenset(e.key for e in entries if e.dead or e.diff_ids not in prefixes)
    sizes: dict[str, int] = {}
    made: dict[str, int] = {}     # layer -> bytes, each layer counted once
    for entry in entries:
        size = 0
        if entry.layer is not None and not entry.dead:
            size = made.setdefault(entry.layer, _layer_size(store, entry.layer))
        sizes[entry.key] = size if entry.layer not in used else 0
    mounts = tuple((p.name, _tree_size(p)) for p, _ in _mounts(state_root))
    files = sum(e.file_size for e in entries) + sum(_file_size(p) for p in temps)
    other = files + sum(size for _, size in mounts)
    return CacheUsage(
        entries=tuple(entries), dangling=dangling, sizes=sizes, mounts=mounts,
        reclaimable=other + sum(n for layer, n in made.items() if layer not in used),
        total=other + sum(made.values()),
    )


def _file_size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


# --- pruning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachePruneResult:
    """What a prune removed. ``reclaimed`` counts the layers' file content, the entry and
    temp files, and the cache mounts' file content."""

    removed: tuple[str, ...]       # keys of the entries removed (live and dead), sorted
    dead: int                      # of them, entries that could no longer hit
    temp_files: int                # leftover temp files of dead writers
    layers: tuple[str, ...]        # diff-ids of the image-store layers removed
    mounts: tuple[str, ...]        # cache mount ids removed
    reclaimed: int


def _rmtree(path: Path) -> None:
    """Remove a tree even when a build left directories in it without write permission
    (a non-root user cannot unlink from those otherwise)."""
    if os.geteuid() != 0:
        os.chmod(path, 0o700)
        for dirpath, dirs, _files in os.walk(path):
            for name in dirs:
                child = os.path.join(dirpath, name)
                if not os.path.islink(child):
                    os.chmod(child, 0o700)  # before os.walk lists it
    shutil.rmtree(path)


def prune_build_cache(store: ImageStore, state_root: Path, *, all: bool,
                      keep_duration: float | None = None,
                      timeout: float | None = PRUNE_WAIT) -> CachePruneResult:
    """Prune the build cache under ``state_root`` and the layers only it kept in ``store``
    (see the module docstring for what goes). Holds the exclusive build lock throughout:
    raises :class:`BuildCacheBusyError` when a build still runs after ``timeout`` seconds.
    Never removes a layer an image uses."""
    if keep_duration is not None and keep_duration < 0:
        raise BuildError(f"keep duration must not be negative (got {keep_duration})")
    state_root = Path(state_root)
    with build_lock(state_root, exclusive=True, timeout=timeout), \
            _map_os_errors("build cache prune"):
        return _prune(store, state_root, all=all, keep_duration=keep_duration)


def _prune(store: ImageStore, state_root: Path, *, all: bool,
           keep_duration: float | None) -> CachePruneResult:
    now = time.time()

    def old(mtime: float) -> bool:
        return keep_duration is None or now - mtime > keep_duration

    entries, temps = _entries(store, state_root)
    prefixes = _image_chains(store)[0] if not all else set()
    doomed = [e for e in entries
              if e.dead or (old(e.last_used) and (all or e.diff_ids not in prefixes))]
    doomed_keys = {e.key for e in doomed}
    reclaimed = 0
    for path in temps:
        reclaimed += _file_size(path)
        path.unlink(missing_ok=True)
    for entry in doomed:
        reclaimed += entry.file_size
        entry.path.unlink(missing_ok=True)
    # Layers the removed entries kept, unless an entry that stays still needs them.
    kept = {d for e in entries if e.key not in doomed_keys for d in e.diff_ids}
    candidates = {d for e in doomed for d in e.diff_ids} - kept
    layers = store.remove_unused_layers(candidates) if candidates else {}
    reclaimed += sum(layers.values())
    mounts: list[str] = []
    if all:
        for path, mtime in _mounts(state_root):
            if not old(mtime):
                continue
            size = _tree_size(path)
            # Renamed first, so an interrupted removal leaves no half-emptied cache mount.
            trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
            try:
                os.rename(path, trash)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                raise
            _rmtree(trash)
            path.with_name(f"{path.name}.lock").unlink(missing_ok=True)
            mounts.append(path.name)
            reclaimed += size
    return CachePruneResult(
        removed=tuple(sorted(doomed_keys)), dead=sum(e.dead for e in doomed),
        temp_files=len(temps), layers=tuple(sorted(layers)), mounts=tuple(mounts),
        reclaimed=reclaimed,
    )
