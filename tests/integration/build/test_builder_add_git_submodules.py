"""ADD <git repository> with submodules, from repositories the test makes and serves on
127.0.0.1 (``git daemon --inetd`` per connection, and git's dumb HTTP, which has no
shallow fetch): a submodule with a nested one, both by relative URL and pinned to
commits that are not their branches' tips; ``.git`` removed everywhere or kept as git
leaves it; a subdirectory that is a submodule; submodules that cannot be fetched
(missing, or on the host's file system) fail the step and leave nothing, as does a
build cancelled while a submodule's server does not answer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pycompose.runtime.build import Builder, BuildError, BuildOptions
from pycompose.runtime.images import ImageStore
from tests.helpers.builds import leftovers
from tests.helpers.gitserve import (
    Listener,
    dumb_http,
    git,
    git_daemon,
    git_processes,
    hang,
    mode,
    stored,
)

pytestmark = pytest.mark.root


def add_submodule(work: Path, path: str, url: str, commit: str) -> None:
    """Record ``path`` as a submodule of the work tree ``work`` at ``commit`` of ``url``
    (as ``git submodule add`` would, without cloning it here)."""
    git("config", "-f", ".gitmodules", f"submodule.{path}.path", path, cwd=work)
    git("config", "-f", ".gitmodules", f"submodule.{path}.url", url, cwd=work)
    git("update-index", "--add", "--cacheinfo", f"160000,{commit},{path}", cwd=work)
    git("add", ".gitmodules", cwd=work)


class Repos:
    """``top`` with the submodule ``lib`` (``../lib.git``), which has the submodule
    ``deep`` (``../nested.git``); each pinned to a commit behind its branch's tip.
    The bare repositories are in ``served``."""

    def __init__(self, top: Path) -> None:
        self.served = top / "served"
        self.served.mkdir()
        self.work = top / "work"
        self.work.mkdir()
        self.commits: dict[str, str] = {}
        self.tree("nested", {"nested.txt": "nested one\n"})
        self.pinned_nested = self.commits["nested"]
        self.tree("nested", {"nested.txt": "nested two\n"})  # the tip moves past it
        self.tree("lib", {"lib.txt": "lib one\n", "tool.sh": "#!/bin/sh\n"},
                  {"deep": ("../nested.git", self.pinned_nested)})
        self.pinned_lib = self.commits["lib"]
        self.tree("lib", {"lib.txt": "lib two\n"})
        self.tree("top", {"top.txt": "top\n"}, {"lib": ("../lib.git", self.pinned_lib)})
        for name in ("nested", "lib", "top"):
            self.serve(name)

    def serve(self, name: str) -> None:
        bare = self.served / f"{name}.git"
        git("clone", "-q", "--bare", str(self.work / name), str(bare), cwd=self.work)
        git("update-server-info", cwd=bare)  # for the dumb HTTP server

    def tree(self, name: str, files: dict[str, str],
             submodules: dict[str, tuple[str, str]] | None = None) -> None:
        work = self.work / name
        if not work.exists():
            git("init", "-q", "-b", "main", str(work), cwd=self.work)
        for path, text in files.items():
            (work / path).write_text(text)
            if text.startswith("#!"):
                os.chmod(work / path, 0o755)
        git("add", "-A", cwd=work)
        for path, (url, commit) in (submodules or {}).items():
            add_submodule(work, path, url, commit)
        git("commit", "-q", "-m", name, cwd=work)
        self.commits[name] = git("rev-parse", "HEAD", cwd=work)

    def with_submodule(self, name: str, url: str) -> None:
        """A repository ``name`` whose submodule ``broken`` is at ``url``."""
        self.tree(name, {"x.txt": "x\n"}, {"broken": (url, self.pinned_nested)})
        self.serve(name)


@pytest.fixture
def repos(tmp_path: Path) -> Repos:
    (tmp_path / "repos").mkdir()
    return Repos(tmp_path / "repos")


@pytest.fixture
def daemon(repos: Repos) -> Iterator[str]:
    with git_daemon(repos.served) as url:
        yield url


@pytest.fixture
def http(repos: Repos) -> Iterator[str]:
    with dumb_http(repos.served) as url:
        yield url


def git_entries(top: Path) -> list[str]:
    """Every path named ``.git`` under ``top``."""
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        found += [os.path.relpath(os.path.join(dirpath, n), top)
                  for n in (*dirnames, *filenames) if n == ".git"]
    return sorted(found)


async def test_add_git_submodules(repos: Repos, daemon: str, http: str, store: ImageStore,
                                  state_root: Path, tmp_path: Path) -> None:
    builder = Builder(store, state_root)
    dockerfile = (
        "FROM busybox\n"
        f"ADD {daemon}/top.git /src\n"
        f"ADD --keep-git-dir=true {daemon}/top.git#main /kept\n"
        f"ADD {http}/top.git#main /http\n"
        f"ADD {daemon}/top.git#main:lib /lib\n")
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    src, kept, over_http, lib = image.layer_dirs[-4:]

    # The submodules at the commits the superproject records, not their tips;
    # relative URLs against the superproject's; git's modes; no .git anywhere.
    for top in (src / "src", over_http / "http"):
        assert (top / "top.txt").read_text() == "top\n"
        assert (top / "lib" / "lib.txt").read_text() == "lib one\n"
        assert (top / "lib" / "deep" / "nested.txt").read_text() == "nested one\n"
        assert (top / ".gitmodules").is_file()
        assert mode(top / "lib" / "tool.sh") == 0o755
        assert mode(top / "lib" / "deep") == 0o755
        assert git_entries(top) == []
    # A subdirectory that is a submodule: its checkout, with its own submodule.
    assert sorted(os.listdir(lib / "lib")) == [".gitmodules", "deep", "lib.txt", "tool.sh"]
    assert (lib / "lib" / "deep" / "nested.txt").read_text() == "nested one\n"

    # --keep-git-dir: the submodules' git data as git leaves it (in .git/modules,
    # the submodules' .git files pointing there), each at its pinned commit.
    top = kept / "kept"
    assert git_entries(top) == [".git", "lib/.git", "lib/deep/.git"]
    assert (top / "lib" / ".git").read_text() == "gitdir: ../.git/modules/lib\n"
    assert (top / ".git" / "modules" / "lib" / "modules" / "deep" / "HEAD").is_file()
    assert git("-c", "safe.directory=*", "rev-parse", "HEAD",
               cwd=top / "lib" / "deep") == repos.pinned_nested
    status = git("-c", "safe.directory=*", "submodule", "status", "--recursive", cwd=top)
    assert [line.split()[:2] for line in status.splitlines()] == [
        [repos.pinned_lib, "lib"], [repos.pinned_nested, "lib/deep"]]
    assert leftovers(state_root) == []
    assert git_processes(state_root) == []


async def test_add_git_submodule_errors(repos: Repos, daemon: str, store: ImageStore,
                                        state_root: Path, tmp_path: Path) -> None:
    """A submodule that cannot be fetched fails the step, naming the source and git's
    error; one on the host's file system is refused (no file transport for
    submodules), and nothing is left behind."""
    builder = Builder(store, state_root)
    repos.with_submodule("missing", "../nothere.git")
    repos.with_submodule("local", str(repos.served / "nested.git"))
    repos.with_submodule("fileurl", f"file://{repos.served / 'nested.git'}")
    await builder.build(BuildOptions(context=tmp_path, dockerfile_inline="FROM busybox\n"))
    before = stored(builder, store)
    for name, message in (
            ("missing", rf"cannot check out the submodules of {daemon}/missing.git at "
                        rf"{repos.commits['missing'][:12]}: fatal: "),
            ("local", r"cannot check out the submodules of .*transport 'file' not allowed"),
            ("fileurl", r"cannot check out the submodules of .*transport 'file' not allowed")):
        with pytest.raises(BuildError, match=rf":2: ADD {daemon}/{name}.git: {message}"):
            await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
                f"FROM busybox\nADD {daemon}/{name}.git /src\n")))
        assert stored(builder, store) == before
        assert leftovers(state_root) == []
        assert git_processes(state_root) == []


async def test_add_git_submodule_cancelled(repos: Repos, daemon: str, store: ImageStore,
                                          state_root: Path, tmp_path: Path) -> None:
    """A submodule's server that never answers: cancelling the build ends git (the
    submodule command and the clones it started) and removes the work directory."""
    listener = Listener(hang)
    try:
        repos.with_submodule("hangs", f"git://127.0.0.1:{listener.port}/x.git")
        builder = Builder(store, state_root)
        options = BuildOptions(context=tmp_path, dockerfile_inline=(
            f"FROM busybox\nADD {daemon}/hangs.git /src\n"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(builder.build, options)
            await trio.to_thread.run_sync(listener.connected.wait)  # the submodule's clone
            assert git_processes(state_root) != []
            nursery.cancel_scope.cancel()
        assert git_processes(state_root) == []
        assert leftovers(state_root) == []
    finally:
        listener.close()
