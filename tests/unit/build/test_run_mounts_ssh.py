"""Parsing ``RUN --mount=type=ssh``: defaults (id, numbered targets, mode), options, and
what goes into the cache key."""

from __future__ import annotations

import pytest

from pycompose.runtime.build import DockerfileError
from pycompose.runtime.build.run_mounts import parse_mount, parse_mounts


def test_ssh_defaults_and_numbering() -> None:
    first, cache, second = parse_mounts(
        ["type=ssh", "type=cache,target=/c", "type=ssh,id=deploy,required"], "Dockerfile:3",
        "/src")
    assert (first.type, first.id, first.target, first.mode, first.uid, first.required) == \
        ("ssh", "default", "/run/buildkit/ssh_agent.0", 0o600, 0, False)
    assert cache.type == "cache"
    assert (second.id, second.target, second.required) == \
        ("deploy", "/run/buildkit/ssh_agent.1", True)


def test_ssh_options() -> None:
    m = parse_mount("type=ssh,id=git,target=agent.sock,mode=0660,uid=1000,gid=10,"
                    "required=false", "Dockerfile:2", "/work")
    assert (m.id, m.target, m.mode, m.uid, m.gid, m.required) == \
        ("git", "/work/agent.sock", 0o660, 1000, 10, False)
    # The agent is never part of the cache key; the mount's options are.
    assert m.options() == ("ssh", "/work/agent.sock", "git", False, 0o660, 1000, 10)


@pytest.mark.parametrize(("value", "message"), [
    ("type=ssh,source=x", r"Dockerfile:4: RUN --mount=type=ssh,source=x: 'source' is not "
                          r"an option of a ssh mount"),
    ("type=ssh,mode=rw", r"mode='rw': expected octal permissions"),
    ("type=ssh,required=maybe", r"required='maybe': expected true or false"),
    ("type=ssh,target=/", r"cannot mount over /"),
])
def test_ssh_bad_options(value: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse_mount(value, "Dockerfile:4", "/")
