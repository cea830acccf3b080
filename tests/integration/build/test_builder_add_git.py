"""ADD <git repository> from repositories the test makes and serves on 127.0.0.1: the
git protocol (``git daemon --inetd`` per connection, started by the test) and git's
dumb HTTP (an http.server): branches, tags, commits, subdirectories, ``.git``, the
cache by commit, ``--checksum``, errors, cancellation, and nothing left behind."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pycompose.runtime.build import Builder, BuildError, BuildOptions, DockerfileError, gitsource
from pycompose.runtime.client import Runtime
from pycompose.runtime.images import ImageStore
from tests.helpers.builds import leftovers, run_in
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


class Repo:
    """A work tree and the bare repository it pushes to (what the servers serve)."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.work = top / "work"
        self.bare = top / "served" / "repo.git"
        self.work.mkdir()
        git("init", "-q", "-b", "main", str(self.work), cwd=top)
        (self.work / "README").write_text("one\n")
        (self.work / "bin").mkdir()
        (self.work / "bin" / "run.sh").write_text("#!/bin/sh\necho run\n")
        os.chmod(self.work / "bin" / "run.sh", 0o755)
        (self.work / "sub").mkdir()
        (self.work / "sub" / "inner.txt").write_text("inner one\n")
        os.symlink("README", self.work / "link")
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "-m", "one", cwd=self.work)
        self.first = git("rev-parse", "HEAD", cwd=self.work)
        git("tag", "-a", "v1", "-m", "v1", cwd=self.work)
        self.commit("two", {"README": "two\n", "sub/inner.txt": "inner two\n"})
        git("clone", "-q", "--bare", str(self.work), str(self.bare), cwd=top)
        git("update-server-info", cwd=self.bare)  # for the dumb HTTP server
        os.symlink("repo.git", top / "served" / "plain")  # a URL without .git

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            (self.work / name).write_text(text)
        git("commit", "-q", "-a", "-m", message, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self) -> None:
        git("push", "-q", str(self.bare), "main", cwd=self.work)
        git("update-server-info", cwd=self.bare)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "served").mkdir()
    return Repo(tmp_path / "repo")


@pytest.fixture
def daemon(repo: Repo) -> Iterator[str]:
    """``git://127.0.0.1:<port>``, serving ``repo``."""
    with git_daemon(repo.bare.parent) as url:
        yield url


@pytest.fixture
def http(repo: Repo) -> Iterator[str]:
    """``http://127.0.0.1:<port>``: git's dumb HTTP for ``repo``."""
    with dumb_http(repo.bare.parent) as url:
        yield url


async def test_add_git_refs(repo: Repo, daemon: str, http: str, store: ImageStore,
                            state_root: Path, tmp_path: Path) -> None:
    builder = Builder(store, state_root)
    dockerfile = (
        "FROM busybox\n"
        f"ADD {daemon}/repo.git /src\n"
        f"ADD {daemon}/repo.git#v1:sub /tagged\n"
        f"ADD {daemon}/repo.git#{repo.first} /bysha/\n"
        f"ADD --keep-git-dir=true --chown=7:8 {daemon}/repo.git#main /kept\n"
        f"ADD {http}/repo.git#v1 /http\n"
        f"ADD {http}/plain#main:sub /plain\n")
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    src, tagged, bysha, kept, over_http, plain = image.layer_dirs[-6:]

    # The branch (the remote's HEAD): its tree, git's modes, symlinks, no .git.
    assert (src / "src" / "README").read_text() == "two\n"
    assert mode(src / "src" / "README") == 0o644
    assert mode(src / "src" / "bin" / "run.sh") == 0o755
    assert mode(src / "src" / "bin") == 0o755
    assert os.readlink(src / "src" / "link") == "README"
    assert not (src / "src" / ".git").exists()
    st = os.stat(src / "src" / "README")
    assert (st.st_uid, st.st_gid) == (0, 0)
    # A tag's subdirectory: its contents only, at the tag.
    assert sorted(os.listdir(tagged / "tagged")) == ["inner.txt"]
    assert (tagged / "tagged" / "inner.txt").read_text() == "inner one\n"
    # A commit by its sha.
    assert (bysha / "bysha" / "README").read_text() == "one\n"
    assert not (bysha / "bysha" / ".git").exists()
    # --keep-git-dir: a repository on the branch, at its commit; --chown applies.
    head = kept / "kept" / ".git" / "HEAD"
    assert head.read_text() == "ref: refs/heads/main\n"
    at = git("-c", "safe.directory=*", "rev-parse", "HEAD", cwd=kept / "kept")
    assert at == git("rev-parse", "main", cwd=repo.bare)
    st = os.stat(kept / "kept" / "README")
    assert (st.st_uid, st.st_gid) == (7, 8)
    # Dumb HTTP (no shallow fetch there), with .git and without it (and a #fragment).
    assert (over_http / "http" / "README").read_text() == "one\n"
    assert (plain / "plain" / "inner.txt").read_text() == "inner two\n"
    assert leftovers(state_root) == []
    assert git_processes(state_root) == []


async def test_add_git_cache(repo: Repo, daemon: str, store: ImageStore, state_root: Path,
                             tmp_path: Path, rt: Runtime) -> None:
    lines: list[str] = []
    builder = Builder(store, state_root, log=lines.append)
    dockerfile = (f"FROM busybox\nADD {daemon}/repo.git#main /src\n"
                  f"ADD {daemon}/repo.git#v1 /tag\n")
    first = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    assert sum(line.endswith("CACHED") for line in lines) == 0
    # The refs unchanged: both steps hit, nothing is fetched.
    lines.clear()
    again = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    assert again.id == first.id
    assert sum(line.endswith("CACHED") for line in lines) == 2
    assert not any("fetching" in line for line in lines)
    # A new commit on the branch: that step runs again, the tag's after it too.
    repo.commit("three", {"README": "three\n"})
    repo.push()
    lines.clear()
    moved = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    assert moved.id != first.id
    assert sum(line.endswith("CACHED") for line in lines) == 0
    assert (await run_in(rt, moved, "cat", "/src/README", "/tag/README")) == "three\none\n"
    # --keep-git-dir is part of the key.
    lines.clear()
    kept = await builder.build(BuildOptions(
        context=tmp_path, dockerfile_inline=dockerfile.replace(
            "ADD ", "ADD --keep-git-dir=true ", 1)))
    assert kept.id != moved.id
    assert (kept.layer_dirs[-2] / "src" / ".git").is_dir()
    assert leftovers(state_root) == []
    assert git_processes(state_root) == []


async def test_add_git_errors(repo: Repo, daemon: str, store: ImageStore, state_root: Path,
                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builder = Builder(store, state_root)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there
    missing = "0" * 40
    cases = (
        (f"ADD {daemon}/repo.git#nope /src", BuildError,
         rf":2: ADD {daemon}/repo.git#nope: no branch or tag 'nope' in {daemon}/repo.git"),
        (f"ADD {daemon}/repo.git#{repo.first[:8]} /src", BuildError,
         r":2: ADD .*: no branch or tag .* \(a commit is given by its full sha\)"),
        (f"ADD {daemon}/repo.git#v1:nothere /src", BuildError,
         rf":2: ADD {daemon}/repo.git#v1:nothere: no directory 'nothere' in .* at v1 "),
        (f"ADD {daemon}/repo.git#main:README /src", BuildError,
         r":2: ADD .*: 'README' is not a directory in "),
        (f"ADD {daemon}/repo.git#{missing} /src", BuildError,
         rf":2: ADD .*: cannot fetch commit {missing} from "),
        (f"ADD {daemon}/other.git /src", BuildError,
         rf":2: ADD {daemon}/other.git: cannot read the repository {daemon}/other.git"),
        (f"ADD git://127.0.0.1:{port}/repo.git /src", BuildError,
         r":2: ADD .*: cannot read the repository .*: fatal: unable to connect"),
        (f"ADD {daemon}/repo.git#main:../x /src", DockerfileError, r":2: ADD .*outside"),
        (f"COPY {daemon}/repo.git /src", DockerfileError, r":2: COPY does not take Git"),
        (f"ADD --keep-git-dir=maybe {daemon}/repo.git /src", DockerfileError,
         r":2: ADD --keep-git-dir=maybe: expected true or false"),
    )
    for line, kind, message in cases:
        with pytest.raises(kind, match=message):
            await builder.build(BuildOptions(context=tmp_path,
                                             dockerfile_inline=f"FROM busybox\n{line}\n"))
        assert leftovers(state_root) == []
    # No git on the host: which package to install.
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(BuildError, match=r":2: ADD .*: git is not installed on the host "
                                         r"\(install the Debian package 'git'\)"):
        await builder.build(BuildOptions(
            context=tmp_path, dockerfile_inline=f"FROM busybox\nADD {daemon}/repo.git /s\n"))
    assert leftovers(state_root) == []
    assert git_processes(state_root) == []


async def test_add_git_cancelled_and_timeout(store: ImageStore, state_root: Path,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never answers: cancelling the build, or git's time running out,
    ends git (by its process group) and removes the work directory."""
    listener = Listener(hang)
    try:
        builder = Builder(store, state_root)
        options = BuildOptions(context=tmp_path, dockerfile_inline=(
            f"FROM busybox\nADD git://127.0.0.1:{listener.port}/repo.git /src\n"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(builder.build, options)
            await trio.to_thread.run_sync(listener.connected.wait)  # git is talking to it
            assert git_processes(state_root) != []
            nursery.cancel_scope.cancel()
        assert git_processes(state_root) == []
        assert leftovers(state_root) == []

        monkeypatch.setattr(gitsource, "GIT_TIMEOUT", 0.5)
        with pytest.raises(BuildError, match=r":2: ADD .*: git ls-remote did not finish "
                                             r"within 0.5s"):
            await builder.build(options)
        assert git_processes(state_root) == []
        assert leftovers(state_root) == []
    finally:
        listener.close()


async def test_add_git_checksum(repo: Repo, daemon: str, store: ImageStore, state_root: Path,
                                tmp_path: Path) -> None:
    """--checksum names the commit (full, a prefix, any case) or an annotated tag's
    own sha; any other value fails before anything is fetched or stored."""
    builder = Builder(store, state_root)
    main = git("rev-parse", "main", cwd=repo.bare)
    tag_object = git("rev-parse", "v1", cwd=repo.bare)
    assert tag_object != repo.first  # v1 is an annotated tag
    dockerfile = (
        "FROM busybox\n"
        f"ADD --checksum={main} {daemon}/repo.git#main /src\n"
        f"ADD --checksum={repo.first[:7]} {daemon}/repo.git#v1 /tag\n"
        f"ADD --checksum={tag_object[:10]} {daemon}/repo.git#v1:sub /tagobj\n"
        f"ADD --checksum={repo.first.upper()} {daemon}/repo.git#{repo.first} /bysha\n"
        f"ARG SUM={main[:12]}\n"
        f"ADD --checksum=$SUM {daemon}/repo.git /head\n")
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    src, tag, tagobj, bysha, head = (image.layer_dirs[-5:])
    assert (src / "src" / "README").read_text() == "two\n"
    assert (tag / "tag" / "README").read_text() == "one\n"
    assert (tagobj / "tagobj" / "inner.txt").read_text() == "inner one\n"
    assert (bysha / "bysha" / "README").read_text() == "one\n"
    assert (head / "head" / "README").read_text() == "two\n"

    before = stored(builder, store)

    async def refused(error: type[Exception], lines: tuple[tuple[str, str], ...]) -> None:
        """Each line fails with ``error`` matching its message; nothing is left behind."""
        for line, message in lines:
            with pytest.raises(error, match=message):
                await builder.build(BuildOptions(context=tmp_path,
                                                 dockerfile_inline=f"FROM busybox\n{line}\n"))
            assert stored(builder, store) == before
            assert leftovers(state_root) == []
            assert git_processes(state_root) == []

    cases = (
        (f"ADD --checksum={repo.first} {daemon}/repo.git#main /src",
         rf":2: ADD {daemon}/repo.git#main: checksum mismatch: expected commit "
         rf"{repo.first}, got {main} \(refs/heads/main\)$"),
        (f"ADD --checksum={main[:8]} {daemon}/repo.git#v1 /src",
         rf":2: ADD {daemon}/repo.git#v1: checksum mismatch: expected commit {main[:8]}, "
         rf"got {repo.first} or annotated tag {tag_object} \(refs/tags/v1\)$"),
        (f"ADD --checksum={main} {daemon}/repo.git#{repo.first} /src",
         rf":2: ADD {daemon}/repo.git#{repo.first}: checksum mismatch: expected commit "
         rf"{main}, got {repo.first}$"),
        (f"ADD --checksum={main}0 {daemon}/repo.git#main /src",  # longer than the sha
         rf"checksum mismatch: expected commit {main}0, got {main} "),
    )
    await refused(BuildError, cases)

    malformed = (
        (f"ADD --checksum=sha256:{'a' * 64} {daemon}/repo.git /src",
         rf":2: ADD --checksum=sha256:a+: expected a commit sha \(or a prefix of one, in hex "
         rf"digits\) for the Git source {daemon}/repo.git$"),
        (f"ADD --checksum=xyz {daemon}/repo.git /src", r":2: ADD --checksum=xyz: expected a "),
        (f"ADD --checksum= {daemon}/repo.git /src", r":2: ADD --checksum=: expected a "),
        (f"ADD --checksum={'a' * 65} {daemon}/repo.git /src", r":2: ADD --checksum=a+: expec"),
        (f"ADD --checksum={main} {daemon}/repo.git {daemon}/repo.git#v1 /src/",
         r":2: ADD --checksum needs http\(s\) URL sources only, or a single Git source"),
        (f"ADD --checksum={main} {daemon}/repo.git README /src/",
         r":2: ADD --checksum needs .* or a single Git source"),
    )
    await refused(DockerfileError, malformed)


async def test_add_git_checksum_cache_hit(repo: Repo, daemon: str, store: ImageStore,
                                          state_root: Path, tmp_path: Path) -> None:
    """The key names the commit, not --checksum: a step cached without it is a hit with
    the right one, and still fails with a wrong one; a pinned branch that moves fails
    the next build."""
    lines: list[str] = []
    builder = Builder(store, state_root, log=lines.append)
    main = git("rev-parse", "main", cwd=repo.bare)

    def build(checksum: str) -> BuildOptions:
        flag = f"--checksum={checksum} " if checksum else ""
        return BuildOptions(context=tmp_path, dockerfile_inline=(
            f"FROM busybox\nADD {flag}{daemon}/repo.git#main /src\n"))

    first = await builder.build(build(""))
    lines.clear()
    pinned = await builder.build(build(main))
    assert pinned.id == first.id
    assert sum(line.endswith("CACHED") for line in lines) == 1
    before = stored(builder, store)
    # The same key is in the cache: the check still runs, nothing is fetched or added.
    lines.clear()
    with pytest.raises(BuildError, match=rf":2: ADD {daemon}/repo.git#main: checksum "
                                         rf"mismatch: expected commit {repo.first}, "
                                         rf"got {main} "):
        await builder.build(build(repo.first))
    assert any("resolving" in line for line in lines)
    assert not any("fetching" in line or line.endswith("CACHED") for line in lines)
    assert stored(builder, store) == before
    # The branch moves on: the pinned build fails, the unpinned one rebuilds.
    moved = repo.commit("three", {"README": "three\n"})
    repo.push()
    with pytest.raises(BuildError, match=rf"checksum mismatch: expected commit {main}, "
                                         rf"got {moved} \(refs/heads/main\)"):
        await builder.build(build(main))
    assert stored(builder, store) == before
    again = await builder.build(build(moved[:12]))
    assert again.id != first.id
    assert (again.layer_dirs[-1] / "src" / "README").read_text() == "three\n"
    assert leftovers(state_root) == []
    assert git_processes(state_root) == []
