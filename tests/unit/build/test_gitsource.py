"""Which ADD sources are Git repositories, and how ``repo#ref:subdir`` splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.runtime.build import DockerfileError
from pycompose.runtime.build.gitsource import GitSource, _env, is_git, parse_git


@pytest.mark.parametrize(("source", "expected"), [
    ("https://github.com/moby/buildkit.git", True),
    ("https://github.com/moby/buildkit.git#v0.10.1", True),
    ("https://github.com/moby/buildkit.git/", True),
    ("https://github.com/moby/buildkit#main:docs", True),   # a fragment: a repository
    ("http://127.0.0.1:8080/repo.git", True),
    ("git://127.0.0.1/repo", True),
    ("ssh://git@example.org/repo.git", True),
    ("git@github.com:moby/buildkit.git", True),
    ("https://example.org/file.tar.gz", False),
    ("https://example.org/dir/", False),
    ("src/app.git", False),                                   # in the context
    ("repo.git", False),
])
def test_is_git(source: str, expected: bool) -> None:
    assert is_git(source) is expected


@pytest.mark.parametrize(("source", "expected"), [
    ("https://h/r.git", GitSource("https://h/r.git", "https://h/r.git", "", "")),
    ("https://h/r.git#v1", GitSource("https://h/r.git#v1", "https://h/r.git", "v1", "")),
    ("https://h/r.git#v1:docs/", GitSource("https://h/r.git#v1:docs/", "https://h/r.git",
                                           "v1", "docs")),
    ("https://h/r.git#:a/./b", GitSource("https://h/r.git#:a/./b", "https://h/r.git", "",
                                         "a/b")),
    ("git@h:o/r.git#refs/heads/x:.", GitSource("git@h:o/r.git#refs/heads/x:.", "git@h:o/r.git",
                                               "refs/heads/x", "")),
])
def test_parse_git(source: str, expected: GitSource) -> None:
    assert parse_git(source, "Dockerfile:3") == expected


@pytest.mark.parametrize(("source", "message"), [
    ("https://h/r.git#main:../up", r"Dockerfile:3: ADD .*: the directory '../up' is outside"),
    ("https://h/r.git#--upload-pack=x", r"Dockerfile:3: ADD .*: '--upload-pack=x' is not a "
                                        r"valid Git ref"),
    ("https://h/r.git#a..b", r"not a valid Git ref"),
    ("git://#main", r"Dockerfile:3: ADD git://#main: no repository"),
])
def test_parse_git_errors(source: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse_git(source, "Dockerfile:3")


def test_env_is_clean(tmp_path: Path) -> None:
    """Only what reaches servers passes; no global or system config, no prompts."""
    env = _env(tmp_path, {"PATH": "/bin", "SSH_AUTH_SOCK": "/s", "GIT_DIR": "/x",
                          "HOME": "/root", "https_proxy": "http://p"})
    assert env["HOME"] == str(tmp_path)
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["SSH_AUTH_SOCK"] == "/s"
    assert env["https_proxy"] == "http://p"
    assert "GIT_DIR" not in env
    assert "BatchMode=yes" in env["GIT_SSH_COMMAND"]
