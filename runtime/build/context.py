"""The build context: ``.dockerignore``, source globs, content hashes, and copying.

``.dockerignore`` follows Docker's rules: one pattern a line, ``#`` comments,
paths relative to the context (a leading ``/`` is dropped), ``*`` and ``?``
within one path component, ``**`` across any number of them, ``!`` re-includes;
the last matching pattern wins, and a pattern that matches a directory
matches everything below it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pycompose.runtime.build.errors import DockerfileError


def _compile(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i:i + 2] == "**":
                i += 2
                if pattern[i:i + 1] == "/":
                    i += 1
                    out += "(?:.*/)?"
                else:
                    out += ".*"
                continue
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(c)
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out += f"[{body}]"
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(f"^{out}$")


@dataclass(frozen=True)
class Ignore:
    rules: tuple[tuple[bool, re.Pattern[str]], ...] = ()  # (exclude?, regex)

    @classmethod
    def load(cls, context: Path) -> Ignore:
        path = context / ".dockerignore"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls()
        rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            pattern = line if exclude else line[1:].strip()
            pattern = posixpath.normpath(pattern).lstrip("/")
            if pattern in ("", "."):
                continue
            rules.append((exclude, _compile(pattern)))
        return cls(tuple(rules))

    def ignored(self, rel: str) -> bool:
        """True when the context path ``rel`` (``a/b/c``) is excluded."""
        if not self.rules:
            return False
        parts = rel.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for exclude, regex in self.rules:
            if any(regex.match(p) for p in prefixes):
                result = exclude
        return result

    @property
    def has_exceptions(self) -> bool:
        return any(not exclude for exclude, _ in self.rules)


def expand(context: Path, source: str, ignore: Ignore, where: str) -> list[tuple[Path, str]]:
    """The context entries ``source`` (a path or glob) names: ``(path, rel)`` pairs."""
    rel = posixpath.normpath(source.lstrip("/")) if source not in ("", ".", "/") else "."
    if rel.startswith(".."):
        raise DockerfileError(f"{where}: {source!r} is outside the build context")
    if any(ch in rel for ch in "*?["):
        matches = sorted(glob.glob(rel, root_dir=context, include_hidden=True))
        found = [(context / m, m) for m in matches if not ignore.ignored(m)]
        if not found:
            raise DockerfileError(f"{where}: no source files were specified "
                                  f"(nothing in the context matches {source!r})")
        for path, m in found:
            _check_inside(context, path, m, where)
        return found
    path = context if rel == "." else context / rel
    if not (path.exists() or path.is_symlink()) or (rel != "." and ignore.ignored(rel)):
        raise DockerfileError(f"{where}: {source!r} not found in the build context"
                              f"{' (excluded by .dockerignore)' if path.exists() else ''}")
    _check_inside(context, path, rel, where)
    return [(path, rel)]


def _check_inside(context: Path, path: Path, rel: str, where: str) -> None:
    """A directory symlink on the way must not lead out of the context (the entry itself
    may be a symlink: it is copied as one)."""
    if rel != "." and not path.parent.resolve().is_relative_to(context.resolve()):
        raise DockerfileError(f"{where}: {rel!r} is outside the build context "
                              "(through a symbolic link)")


def walk(path: Path, rel: str, ignore: Ignore) -> Iterator[tuple[Path, str]]:
    """``path`` and, for a directory, everything below it not ignored (sorted)."""
    yield path, rel
    if path.is_dir() and not path.is_symlink():
        for entry in sorted(os.listdir(path)):
            child_rel = entry if rel == "." else f"{rel}/{entry}"
            if ignore.ignored(child_rel) and not (ignore.has_exceptions
                                                  and (path / entry).is_dir()):
                continue
            yield from walk(path / entry, child_rel, ignore)


def content_hash(entries: list[tuple[Path, str]], ignore: Ignore) -> str:
    """sha256 over names, modes, link targets and file contents (not mtimes)."""
    h = hashlib.sha256()
    for top, top_rel in entries:
        for path, rel in walk(top, top_rel, ignore):
            if ignore.ignored(rel) and rel != top_rel:
                continue
            st = os.lstat(path)
            h.update(f"{rel}\0{stat.S_IMODE(st.st_mode):o}\0{stat.S_IFMT(st.st_mode):o}\0"
                     .encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode() + b"\0")
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                h.update(b"\0")
    return "sha256:" + h.hexdigest()


def copy_entry(src: Path, dest: Path, *, uid: int | None, gid: int | None,
               mode: int | None, ignore: Ignore | None = None, rel: str = ".") -> None:
    """Copy a file, symlink or directory tree to ``dest`` (metadata kept; owner/mode
    replaced when given)."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        dest.mkdir(parents=True, exist_ok=True)
        for entry in sorted(os.listdir(src)):
            child_rel = entry if rel == "." else f"{rel}/{entry}"
            if ignore is not None and ignore.ignored(child_rel) and not (
                    ignore.has_exceptions and (src / entry).is_dir()):
                continue
            copy_entry(src / entry, dest / entry, uid=uid, gid=gid, mode=mode, ignore=ignore,
                       rel=child_rel)
        _meta(dest, st, uid, gid, mode)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() or dest.is_symlink():
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        else:
            dest.unlink()
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
        os.lchown(dest, uid if uid is not None else 0, gid if gid is not None else 0)
        return
    if not stat.S_ISREG(st.st_mode):
        return  # sockets, fifos, devices are not copied (as Docker)
    shutil.copyfile(src, dest, follow_symlinks=False)
    _meta(dest, st, uid, gid, mode)


def _meta(dest: Path, st: os.stat_result, uid: int | None, gid: int | None,
          mode: int | None) -> None:
    os.lchown(dest, uid if uid is not None else 0, gid if gid is not None else 0)
    os.chmod(dest, mode if mode is not None else stat.S_IMODE(st.st_mode))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
