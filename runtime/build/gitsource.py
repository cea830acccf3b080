"""``ADD <git repository>``: resolve a ref and check out a tree with the host's git.

Sources, as BuildKit takes them::

    https://host/path/repo.git#REF:SUBDIR     (without .git when a #fragment is given)
    git://host/repo#REF
    ssh://user@host/repo.git#REF
    git@host:repo.git#REF:SUBDIR

``REF`` is a branch, a tag or a full commit sha (default: the remote's HEAD) and
``SUBDIR`` a directory of the repository (default: its root). :func:`resolve`
turns the ref into a commit with ``git ls-remote`` (a sha is taken as it is), so a
build's cache key can name the commit before anything is fetched;
:func:`verify_checksum` checks it against ``ADD --checksum`` (the commit's sha or a
prefix of it, or of an annotated tag's own sha, as BuildKit: see
:func:`parse_checksum`). :func:`checkout` fetches that one commit (``--depth 1``; a
full fetch when the server refuses a shallow or by-sha fetch) into a work
directory, then its submodules, recursively (``git submodule update --init
--recursive``, shallow first, whole when that fails; relative submodule URLs are
git's: against the superproject's URL), and returns the directory to copy. File
modes are git's (0644, 0755 for executables, 0755 directories), symlinks are
kept; ``.git`` (the superproject's directory and the submodules' ``.git`` files)
is removed unless asked for, and then kept as git leaves it (the submodules' data
under ``.git/modules``).

git runs on the host, as BuildKit runs it in its own process: non-interactive
(``GIT_TERMINAL_PROMPT=0``, ssh in batch mode, stdin from ``/dev/null``), without
the system or global configuration (a private ``HOME`` in the work directory),
without the ``file`` transport (not for submodules either: a ``.gitmodules`` cannot
reach the host's files) or hooks, each command bounded by :data:`GIT_TIMEOUT` and,
when cancelled or too slow, killed with its process group (its own session: the
pid is the group's id). Credentials are whatever git and ssh find on their own (an
ssh agent, keys in the user's ``~/.ssh``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import re
import shutil
import signal
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import trio

from pycompose.runtime.build.errors import BuildError, DockerfileError

__all__ = ["GIT_TIMEOUT", "GitSource", "Resolved", "checkout", "is_git", "parse_checksum",
           "parse_git", "resolve", "verify_checksum"]

GIT_TIMEOUT = 600.0     # seconds, for each git command
GIT_PACKAGE = "git"     # the Debian package with the git command
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_CHECKSUM = re.compile(r"^[0-9a-f]{1,64}$")
# What the environment of git keeps from ours: the command path, the locale of
# messages is fixed below; proxies and the ssh agent are how users reach servers.
_PASSED = ("PATH", "SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO",
           "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTP_PROXY", "http_proxy",
           "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class GitSource:
    text: str       # as written in the Dockerfile
    remote: str     # the repository's URL, without the fragment
    ref: str        # "" for the remote's HEAD
    subdir: str     # "" for the root


@dataclass(frozen=True)
class Resolved:
    commit: str     # the commit's sha
    refname: str    # the full ref it came from (refs/heads/main), "" for a sha
    tag: str = ""   # an annotated tag's own sha (the object the ref names)


def is_git(source: str) -> bool:
    """A Git source: ``git@host:…``, ``git://…``, ``ssh://…``, or an http(s) URL of a
    ``.git`` repository or with a ``#ref`` fragment."""
    if source.startswith(("git://", "ssh://", "git@")):
        return True
    if source.startswith(("http://", "https://")):
        parts = urlsplit(source)
        return parts.path.rstrip("/").endswith(".git") or bool(parts.fragment)
    return False


def parse_git(source: str, where: str) -> GitSource:
    """``remote#ref:subdir`` → its parts (``where`` names the Dockerfile line)."""
    remote, _, fragment = source.partition("#")
    ref, _, subdir = fragment.partition(":")
    if not remote or remote.endswith(("://", "@")):
        raise DockerfileError(f"{where}: ADD {source}: no repository in the Git source")
    if ref.startswith("-") or any(c.isspace() or c in "~^?*[\\" for c in ref) or ".." in ref:
        raise DockerfileError(f"{where}: ADD {source}: {ref!r} is not a valid Git ref")
    subdir = posixpath.normpath(subdir).strip("/") if subdir else ""
    if subdir == ".":
        subdir = ""
    if subdir.split("/")[0] == "..":
        raise DockerfileError(f"{where}: ADD {source}: the directory {subdir!r} is outside the "
                              "repository")
    return GitSource(source, remote, ref, subdir)


def _env(home: Path, environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: environ[k] for k in _PASSED if k in environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), LC_ALL="C",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="", SSH_ASKPASS="",
               GIT_PROTOCOL_FROM_USER="0")
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


async def _kill_group(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # git and its helpers (ssh, remote-https)


class _Git:
    """git commands for one source, with ``home`` (made by :meth:`open`) as HOME."""

    def __init__(self, src: GitSource, home: Path, where: str, command_timeout: float | None,
                 environ: Mapping[str, str]) -> None:
        self.src = src
        self.where = where
        self.timeout = GIT_TIMEOUT if command_timeout is None else command_timeout
        self.env = _env(home, environ)

    @classmethod
    async def open(cls, src: GitSource, work: Path, where: str, command_timeout: float | None,
                   environ: Mapping[str, str] | None) -> _Git:
        home = work / "home"
        await trio.to_thread.run_sync(functools.partial(home.mkdir, parents=True,
                                                        exist_ok=True))
        return cls(src, home, where, command_timeout,
                   os.environ if environ is None else environ)

    def fail(self, what: str) -> BuildError:
        return BuildError(f"{self.where}: ADD {self.src.text}: {what}")

    async def run(self, args: Sequence[str], cwd: Path | None = None) -> tuple[int, str, str]:
        # Passed on to the commands git starts (submodule clones): no file transport,
        # no hooks, no template (sample hooks) in the submodules' repositories.
        argv = ["git", "-c", "protocol.file.allow=never", "-c", "core.hooksPath=/dev/null",
                "-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main",
                "-c", "init.templateDir=", *args]
        try:
            with trio.fail_after(self.timeout):
                done = await trio.run_process(
                    argv, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL, capture_stdout=True,
                    capture_stderr=True, check=False, start_new_session=True,
                    deliver_cancel=_kill_group)
        except FileNotFoundError:
            raise self.fail(f"git is not installed on the host (install the Debian package "
                            f"{GIT_PACKAGE!r})") from None
        except trio.TooSlowError:
            raise self.fail(f"git {_command(args)} did not finish within {self.timeout:g}s"
                            ) from None
        return (done.returncode, done.stdout.decode(errors="replace"),
                done.stderr.decode(errors="replace"))


def _command(args: Sequence[str]) -> str:
    """The git command of ``args`` (after ``-C DIR``)."""
    return args[2] if args[0] == "-C" else args[0]


def _last_error(stderr: str) -> str:
    """git's message: its ``fatal:``/``error:`` lines, else its last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return "; ".join(dict.fromkeys(errors or lines[-1:])) or "git failed"  # once each


async def resolve(src: GitSource, work: Path, where: str, *,
                  command_timeout: float | None = None,
                  environ: Mapping[str, str] | None = None) -> Resolved:
    """The commit ``src.ref`` names now (``git ls-remote``; a full sha as it is)."""
    if _SHA.match(src.ref.lower()):
        return Resolved(src.ref.lower(), "")
    git = await _Git.open(src, work, where, command_timeout, environ)
    if not src.ref:
        code, out, err = await git.run(["ls-remote", "--symref", "--", src.remote, "HEAD"])
    else:
        code, out, err = await git.run(["ls-remote", "--", src.remote])
    if code != 0:
        raise git.fail(f"cannot read the repository {src.remote}: {_last_error(err)}")
    refs: dict[str, str] = {}
    head_target = ""
    for line in out.splitlines():
        value, _, name = line.partition("\t")
        if value.startswith("ref: "):
            head_target = value[5:].strip()
        elif name:
            refs[name] = value.strip()
    if not src.ref:
        if "HEAD" not in refs:
            raise git.fail(f"the repository {src.remote} has no HEAD (is it empty?)")
        return Resolved(refs["HEAD"], head_target)
    # The order git uses for a short ref name (git rev-parse's rules).
    for name in (src.ref, f"refs/{src.ref}", f"refs/tags/{src.ref}", f"refs/heads/{src.ref}"):
        if name in refs and name != "HEAD":
            peeled = refs.get(f"{name}^{{}}")  # an annotated tag: the commit it names
            return Resolved(peeled or refs[name], name, refs[name] if peeled else "")
    hint = " (a commit is given by its full sha)" if re.fullmatch(r"[0-9a-fA-F]{4,39}",
                                                                   src.ref) else ""
    raise git.fail(f"no branch or tag {src.ref!r} in {src.remote}{hint}")


def parse_checksum(value: str, src: GitSource, where: str) -> str:
    """``ADD --checksum`` for a Git source: a commit's sha or a prefix of it (hex
    digits, one at least), as BuildKit takes it."""
    checksum = value.lower()
    if not _CHECKSUM.match(checksum):
        raise DockerfileError(f"{where}: ADD --checksum={value}: expected a commit sha (or a "
                              f"prefix of one, in hex digits) for the Git source {src.text}")
    return checksum


def verify_checksum(src: GitSource, resolved: Resolved, checksum: str, where: str) -> None:
    """The resolved commit (or the annotated tag naming it) is the one ``checksum``
    names, else a :class:`BuildError` with both."""
    if resolved.commit.startswith(checksum) or (resolved.tag and
                                                resolved.tag.startswith(checksum)):
        return
    got = resolved.commit + (f" or annotated tag {resolved.tag}" if resolved.tag else "")
    at = f" ({resolved.refname})" if resolved.refname else ""
    raise BuildError(f"{where}: ADD {src.text}: checksum mismatch: expected commit "
                     f"{checksum}, got {got}{at}")


async def checkout(src: GitSource, resolved: Resolved, work: Path, where: str, *,
                   keep_git_dir: bool = False, command_timeout: float | None = None,
                   environ: Mapping[str, str] | None = None) -> Path:
    """Check out ``resolved.commit`` under ``work`` and return the directory to copy
    (the repository's root or ``src.subdir``)."""
    git = await _Git.open(src, work, where, command_timeout, environ)
    repo = work / "repo"
    await trio.to_thread.run_sync(repo.mkdir)
    for args in (["init", "-q", "--template=", str(repo)],
                 ["-C", str(repo), "remote", "add", "origin", src.remote]):
        code, _, err = await git.run(args)
        if code != 0:
            raise git.fail(f"git {_command(args)}: {_last_error(err)}")
    commit = resolved.commit
    wanted = [resolved.refname] if resolved.refname.startswith("refs/") else []
    wanted.append(commit)
    got = ""
    errors: list[str] = []
    # Shallow first (the ref, then the commit), then whole: a dumb HTTP server has
    # no shallow fetch, and a server may refuse a commit that no ref names.
    attempts = [["--depth", "1", w] for w in wanted] + [
        ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]]
    for attempt in attempts:
        code, _, err = await git.run(["-C", str(repo), "fetch", "-q", "--no-tags",
                                      "--no-recurse-submodules", "origin", *attempt])
        if code != 0:
            errors.append(_last_error(err))
            continue
        code, out, _ = await git.run(["-C", str(repo), "rev-parse", "--verify", "-q",
                                      f"{commit}^{{commit}}"])
        if code == 0:
            got = out.strip()
            break
    if not got:
        what = f"commit {commit}" if not resolved.refname else \
            f"{resolved.refname} ({commit[:12]})"
        detail = f": {errors[-1]}" if errors else ""
        raise git.fail(f"cannot fetch {what} from {src.remote}{detail}")
    args = ["-C", str(repo), "checkout", "-q", "--detach", commit]
    if resolved.refname.startswith("refs/heads/"):  # on the branch, as a clone would be
        args = ["-C", str(repo), "checkout", "-q", "-B",
                resolved.refname.removeprefix("refs/heads/"), commit]
    code, _, err = await git.run(args)
    if code != 0:
        raise git.fail(f"git checkout {commit[:12]}: {_last_error(err)}")
    if await trio.to_thread.run_sync((repo / ".gitmodules").is_file):
        await _submodules(git, repo, commit)
    return await trio.to_thread.run_sync(_tree, src, commit, repo, keep_git_dir, git)


async def _submodules(git: _Git, repo: Path, commit: str) -> None:
    """The submodules at the commits the checkout records, recursively: shallow
    first, then whole (a dumb HTTP server has no shallow fetch, a server may refuse a
    commit no ref names); git removes a clone that failed before the second try."""
    error = ""
    for depth in (["--depth=1"], []):
        code, _, err = await git.run(["-C", str(repo), "submodule", "update", "--init",
                                      "--recursive", *depth])
        if code == 0:
            return
        error = _last_error(err)
    raise git.fail(f"cannot check out the submodules of {git.src.remote} at {commit[:12]}: "
                   f"{error}")


def _tree(src: GitSource, commit: str, repo: Path, keep_git_dir: bool, git: _Git) -> Path:
    if not keep_git_dir:
        try:
            _remove_git(repo)
        except OSError as exc:
            raise git.fail(f"cannot remove .git from the checkout: {exc}") from None
    _normalise_modes(repo)
    if not src.subdir:
        return repo
    at = f"{src.ref or 'HEAD'} ({commit[:12]})"
    path = repo / src.subdir
    # A symlink may not lead out of the checkout.
    top, real = Path(os.path.realpath(repo)), Path(os.path.realpath(path))
    if real != top and top not in real.parents:
        raise git.fail(f"{src.subdir!r} leads outside the repository at {at}")
    if not real.exists():
        raise git.fail(f"no directory {src.subdir!r} in {src.remote} at {at}")
    if not real.is_dir():
        raise git.fail(f"{src.subdir!r} is not a directory in {src.remote} at {at}")
    return real


def _remove_git(top: Path) -> None:
    """``.git`` everywhere in the checkout: the superproject's directory and each
    submodule's ``.git`` file (git tracks no other path named ``.git``)."""
    for dirpath, dirnames, filenames in os.walk(top):
        if ".git" in dirnames:
            dirnames.remove(".git")  # not walked into
        elif ".git" not in filenames:
            continue
        path = os.path.join(dirpath, ".git")
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _normalise_modes(top: Path) -> None:
    """Modes as git records them, whatever the umask: 0755 directories and executables,
    0644 other files (symlinks untouched)."""
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == str(top) and ".git" in dirnames:
            dirnames.remove(".git")  # kept as git wrote it
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                os.chmod(path, 0o755 if st.st_mode & 0o111 else 0o644)
