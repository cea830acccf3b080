"""The Dockerfile parser, variable substitution and .dockerignore matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.runtime.build.context import Ignore, content_hash, expand
from pycompose.runtime.build.dockerfile import key_values, parse, substitute
from pycompose.runtime.build.errors import DockerfileError


def test_continuations_comments_and_forms() -> None:
    text = """# syntax=docker/dockerfile:1
FROM busybox AS base
# a comment
RUN echo one \\
    # a comment inside a continuation
    && echo two
CMD ["sh", "-c", "echo hi"]
copy --chown=1:2 --chmod=0644 a b /dst/
"""
    out = parse(text, "Df")
    assert [i.keyword for i in out] == ["FROM", "RUN", "CMD", "COPY"]
    assert out[1].args == "echo one && echo two"
    assert out[1].line == 4
    assert out[2].exec_form == ("sh", "-c", "echo hi")
    assert out[3].flags == {"chown": "1:2", "chmod": "0644"}
    assert out[3].args == "a b /dst/"


def test_escape_directive_and_heredoc() -> None:
    out = parse("# escape=`\nFROM x\nRUN echo a `\n  b\nRUN <<EOF\necho 1\necho 2\nEOF\n"
                "RUN echo after\n")
    assert out[1].args == "echo a b"
    assert out[2].heredocs == (("EOF", "echo 1\necho 2\n"),)
    assert out[3].args == "echo after"


def test_errors_name_the_line() -> None:
    with pytest.raises(DockerfileError, match=r"Df:3: unknown instruction: FETCH"):
        parse("FROM x\n\nFETCH y\n", "Df")
    with pytest.raises(DockerfileError, match=r"Df:2: .*not terminated"):
        parse("FROM x\nRUN <<EOF\necho\n", "Df")


def test_substitute() -> None:
    env = {"A": "1", "E": ""}
    assert substitute("$A ${A} ${B:-two} ${E:-x} ${E-y} ${A:+set} \\$A", env) == \
        "1 1 two x  set $A"


def test_key_values() -> None:
    assert key_values('A=1 B="two words"', "w", legacy=True) == [("A", "1"),
                                                                 ("B", "two words")]
    assert key_values("A value with spaces", "w", legacy=True) == [("A", "value with spaces")]
    with pytest.raises(DockerfileError, match="KEY=VALUE"):
        key_values("A b", "w", legacy=False)


def test_dockerignore(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("# c\n*.log\n/build\n**/secret*\n!keep.log\n")
    ign = Ignore.load(tmp_path)
    assert ign.ignored("x.log")
    assert not ign.ignored("keep.log")
    assert ign.ignored("build/out/a.o")
    assert ign.ignored("deep/er/secret.txt")
    assert not ign.ignored("src/x.log")  # * does not cross /
    assert not ign.ignored("src/main.py")


def test_globs_and_content_hash(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "c.md", ".hidden.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("b.txt\n")
    ign = Ignore.load(tmp_path)
    got = [rel for _, rel in expand(tmp_path, "*.txt", ign, "w")]
    assert got == [".hidden.txt", "a.txt"]
    with pytest.raises(DockerfileError, match="outside the build context"):
        expand(tmp_path, "../etc/passwd", ign, "w")
    with pytest.raises(DockerfileError, match="excluded by .dockerignore"):
        expand(tmp_path, "b.txt", ign, "w")
    (tmp_path / "etc-link").symlink_to("/etc")
    with pytest.raises(DockerfileError, match="through a symbolic link"):
        expand(tmp_path, "etc-link/passwd", ign, "w")
    (tmp_path / "etc-link").unlink()
    first = content_hash(expand(tmp_path, ".", ign, "w"), ign)
    (tmp_path / "b.txt").write_text("changed but ignored")
    assert content_hash(expand(tmp_path, ".", ign, "w"), ign) == first
    (tmp_path / "a.txt").write_text("changed")
    assert content_hash(expand(tmp_path, ".", ign, "w"), ign) != first


def test_repeated_and_quoted_flags() -> None:
    out = parse('RUN --mount=type=cache,target=/a --network=none '
                '--mount=type=bind,source="a b",target=/b echo hi\n', "Df")
    assert out[0].flag_values("mount") == ["type=cache,target=/a",
                                           'type=bind,source="a b",target=/b']
    assert out[0].flags["network"] == "none"
    assert out[0].args == "echo hi"
    with pytest.raises(DockerfileError, match=r"Df:1: RUN: invalid flag '--Bad'"):
        parse("RUN --Bad true\n", "Df")


def test_copy_heredocs() -> None:
    text = ("COPY <<robots.txt <<-\"EOT\" /srv/\nUser-agent: *\nrobots.txt\n"
            "\tkeep $HOME\n\tEOT\nRUN echo $((1<<2)) <<<x\n")
    out = parse(text, "Df")
    assert out[0].heredocs == (("robots.txt", "User-agent: *\n"), ("EOT", "keep $HOME\n"))
    assert out[0].heredoc_quoted == (False, True)
    assert out[0].args == '<<robots.txt <<-"EOT" /srv/'
    assert out[1].keyword == "RUN"
    assert out[1].heredocs == ()  # a shift and a here-string are no here-documents


def test_run_mount_options() -> None:
    from pycompose.runtime.build.run_mounts import from_refs, parse_mount

    cache = parse_mount("type=cache,target=go,id=gomod,sharing=locked,mode=0700,uid=1,gid=2",
                        "Df:3", "/src")
    assert (cache.target, cache.id, cache.sharing, cache.mode, cache.uid, cache.gid,
            cache.read_only) == ("/src/go", "gomod", "locked", 0o700, 1, 2, False)
    assert parse_mount("type=cache,dst=/c,ro", "w", "/").read_only
    assert parse_mount("type=cache,target=/c", "w", "/").id == "/c"
    seeded = parse_mount("type=cache,target=/c,from=deps,source=/root/.m2", "w", "/")
    assert (seeded.from_ref, seeded.source) == ("deps", "/root/.m2")
    assert seeded.options() != parse_mount("type=cache,target=/c", "w", "/").options()
    bind = parse_mount('target=/b,"source=a,b",from=stage', "w", "/")
    assert (bind.type, bind.source, bind.from_ref, bind.read_only) == \
        ("bind", "a,b", "stage", True)
    assert not parse_mount("type=bind,target=/b,rw", "w", "/").read_only
    assert parse_mount("type=tmpfs,target=/t,size=64m", "w", "/").size == 64 << 20
    assert from_refs(["type=bind,from=builder,target=/x", "type=cache,target=/y"]) == \
        ["builder"]
    secret = parse_mount("type=secret,id=tok", "w", "/")
    assert (secret.target, secret.mode, secret.required, secret.read_only) == \
        ("/run/secrets/tok", 0o400, False, True)
    assert parse_mount("type=secret,target=/etc/k,required", "w", "/").id == "k"
    for value, message in (
            ("type=secret", r"a secret mount needs an id"),
            ("type=secret,id=x,target=rel", r"the target of a secret must be absolute"),
            ("type=secret,id=x,source=y", r"'source' is not an option of a secret mount"),
            ("type=ssh,source=x", r"Df:3: .*'source' is not an option of a ssh mount"),
            ("type=volume,target=/v", r"unknown mount type 'volume'"),
            ("type=cache", r"a target is required"),
            ("type=cache,target=/", r"cannot mount over /"),
            ("type=cache,target=/c,mode=rwx", r"mode='rwx': expected octal"),
            ("type=cache,target=/c,uid=-1", r"uid='-1': expected a number"),
            ("type=cache,target=/c,source=/x", r"source is a path in its from="),
            ("type=tmpfs,target=/t,size=lots", r"size='lots'"),
            ("type=tmpfs,target=/t,from=x", r"'from' is not an option of a tmpfs mount"),
            ("type=bind,target=/b,readonly=maybe", r"expected true or false")):
        with pytest.raises(DockerfileError, match=message):
            parse_mount(value, "Df:3", "/")


def test_add_url_helpers() -> None:
    from pycompose.runtime.build.remote import is_git, is_url, parse_checksum

    assert is_url("https://example.org/a.tgz")
    assert not is_url("a.tgz")
    assert is_git("git@github.com:moby/buildkit.git")
    assert is_git("https://github.com/moby/buildkit.git")
    assert not is_git("https://example.org/file.txt")
    assert parse_checksum("sha256:" + "A" * 64, "w") == ("sha256", "a" * 64)
    with pytest.raises(DockerfileError, match=r"Df:4: --checksum=md5:00: expected sha256"):
        parse_checksum("md5:00", "Df:4")
    with pytest.raises(DockerfileError, match="expected sha256"):
        parse_checksum("sha256:abc", "w")
