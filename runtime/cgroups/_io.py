"""File access for cgroup filesystems: every ``OSError`` becomes a ``CgroupError``.

The message names the path and, for writes, the value written, so a failure
reads ``write "512M" to /sys/fs/cgroup/…/memory.max: Invalid argument``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import CgroupError


def _describe(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or 0)


def read_text(path: Path) -> str:
    """The whole file as text (cgroup files are small)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as exc:
        raise CgroupError(f"read {path}: {_describe(exc)}") from exc


def read_optional(path: Path) -> str | None:
    """Like :func:`read_text` but ``None`` when the file does not exist."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CgroupError(f"read {path}: {_describe(exc)}") from exc


def read_int(path: Path) -> int | None:
    """An integer file; ``None`` for ``max`` (v2's unlimited) or a missing file."""
    text = read_optional(path)
    if text is None:
        return None
    value = text.strip()
    if value == "max":
        return None
    try:
        return int(value)
    except ValueError:
        raise CgroupError(f"read {path}: expected an integer, got {value!r}") from None


def read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file (``key value`` per line: memory.stat, cpu.stat, memory.events)."""
    text = read_optional(path)
    out: dict[str, int] = {}
    if text is None:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def write_value(path: Path, value: str) -> None:
    """Write ``value`` as one ``write(2)``, the way cgroup files expect it."""
    data = value.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"write {value!r} to {path}: {_describe(exc)}") from exc
    try:
        os.write(fd, data)
    except OSError as exc:
        raise CgroupError(f"write {value!r} to {path}: {_describe(exc)}") from exc
    finally:
        os.close(fd)


def write_values(path: Path, values: list[str]) -> None:
    """Write each of ``values`` as its own ``write(2)`` on one open file (rule lists)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"write {values[0]!r} to {path}: {_describe(exc)}") from exc
    try:
        for value in values:
            try:
                os.write(fd, value.encode())
            except OSError as exc:
                raise CgroupError(f"write {value!r} to {path}: {_describe(exc)}") from exc
    finally:
        os.close(fd)


def make_dir(path: Path) -> bool:
    """mkdir; ``True`` when created, ``False`` when it already existed."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return False
    except OSError as exc:
        raise CgroupError(f"create cgroup {path}: {_describe(exc)}") from exc
    return True


def remove_dir(path: Path) -> bool:
    """rmdir; ``True`` when removed, ``False`` when already gone. EBUSY is raised."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise CgroupError(f"remove cgroup {path}: still in use (processes or children)"
                              ) from exc
        raise CgroupError(f"remove cgroup {path}: {_describe(exc)}") from exc
    return True


def subdirs(path: Path) -> list[str]:
    """Names of the child cgroups of ``path`` (sorted; empty when ``path`` is gone)."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CgroupError(f"list {path}: {_describe(exc)}") from exc


def tree_bottom_up(path: Path) -> list[Path]:
    """``path`` and every cgroup below it, deepest first (the rmdir order)."""
    out: list[Path] = []
    for name in subdirs(path):
        out.extend(tree_bottom_up(path / name))
    if path.is_dir():
        out.append(path)
    return out


def read_pids(path: Path) -> list[int]:
    """The pids listed in a ``cgroup.procs`` file (missing file → none)."""
    text = read_optional(path)
    if text is None:
        return []
    return [int(tok) for tok in text.split() if tok.isdigit()]
