"""RUN --mount=type=ssh in real builds: an agent the build starts for key files, an agent
it forwards, checked from inside the RUN with ``ssh-add -l``; the socket is not in the
layer nor the cache key; missing agents and bad keys are errors naming the line; the
build's agents are gone when it ends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from pycompose.runtime.build import Builder, BuildError, BuildOptions, DockerfileError
from pycompose.runtime.build.ssh import SshAgents
from pycompose.runtime.client import Runtime
from pycompose.runtime.images import ImageStore
from tests.helpers.builds import run_in
from tests.helpers.ssh import (
    SSH_ADD,
    add_key,
    agents_started,
    assert_stopped,
    fingerprints,
    make_key,
    ssh_agent,
    ssh_tools,
)

pytestmark = pytest.mark.root

@pytest.fixture
def host_agent(tmp_path: Path) -> Iterator[Path]:
    """An ssh-agent of the test's own (stopped by its pid afterwards); its socket."""
    with ssh_agent(tmp_path / "host-agent.sock") as sock:
        yield sock


async def test_ssh_mount_with_key_files(rt: Runtime, store: ImageStore, state_root: Path,
                                        tmp_path: Path, instance: str) -> None:
    """Key files are loaded into an agent the build starts; the RUN reaches it at the
    default target (``SSH_AUTH_SOCK``) and at a target of its own with mode and owner;
    nothing of it is in the layer or the cache key; the agent is gone afterwards."""
    keys = tmp_path / "keys"
    keys.mkdir()
    one, one_fp = make_key(keys, "one")
    two, two_fp = make_key(keys, "two")
    three, three_fp = make_key(keys, "three")
    ctx = tmp_path / "ctx"
    ssh_tools(ctx / "tools")
    dockerfile = (
        "FROM busybox\n"
        "RUN --mount=type=bind,source=tools,target=/tools --mount=type=ssh \\\n"
        "    --mount=type=ssh,id=deploy,target=/var/deploy.sock,mode=0660,uid=1000 \\\n"
        "    sh -c 'test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /out && \\\n"
        f"    {SSH_ADD} -l > /default-keys && \\\n"
        f"    SSH_AUTH_SOCK=/var/deploy.sock {SSH_ADD} -l > /deploy-keys && \\\n"
        "    stat -c \"%a %u\" /var/deploy.sock > /meta'\n")
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    image = await builder.build(BuildOptions(
        context=ctx, dockerfile_inline=dockerfile,
        ssh={"default": (str(one),), "deploy": (str(two), str(three))}))
    out = await run_in(rt, image, "cat", "/out", "/default-keys", "/deploy-keys", "/meta")
    first, *rest = out.splitlines()
    assert first == "/run/buildkit/ssh_agent.0"
    assert [line.split()[1] for line in rest[:-1]] == [one_fp, two_fp, three_fp]
    assert rest[-1] == "660 1000"
    top = image.layer_dirs[-1]
    assert not (top / "run" / "buildkit").exists()  # the mount points are not in the layer
    assert not (top / "var" / "deploy.sock").exists()
    assert not (top / "tools").exists()
    started = agents_started(lines)
    assert len(started) == 2
    assert_stopped(started)
    lines.clear()
    other, _ = make_key(keys, "other")
    again = await builder.build(BuildOptions(
        context=ctx, dockerfile_inline=dockerfile,
        ssh={"default": (str(other),), "deploy": (str(other),)}))
    assert again.id == image.id  # another agent is still a cache hit
    assert sum(line.endswith("CACHED") for line in lines) == 1
    assert agents_started(lines) == []


async def test_ssh_mount_forwards_an_agent(rt: Runtime, store: ImageStore,
                                           state_root: Path, tmp_path: Path, instance: str,
                                           host_agent: Path) -> None:
    """An agent socket is forwarded as it is: the RUN sees the keys it holds."""
    key, fingerprint = make_key(tmp_path, "hostkey")
    add_key(host_agent, key)
    ctx = tmp_path / "ctx"
    ssh_tools(ctx / "tools")
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    image = await builder.build(BuildOptions(context=ctx, ssh={"default": (str(host_agent),)},
                                             dockerfile_inline=(
        "FROM busybox\n"
        "RUN --mount=type=bind,source=tools,target=/tools --mount=type=ssh,id=default \\\n"
        f"    sh -c '{SSH_ADD} -l > /keys'\n")))
    seen = await run_in(rt, image, "cat", "/keys")
    assert seen.split()[1] == fingerprint
    assert agents_started(lines) == []
    assert fingerprints(host_agent) == [fingerprint]  # the host's agent is left as it was


async def test_ssh_mount_errors(store: ImageStore, state_root: Path, tmp_path: Path,
                                instance: str, rt: Runtime) -> None:
    """A required id the build was not given, a missing key file, a key the agent refuses
    and a host agent without ``$SSH_AUTH_SOCK`` name the line; an agent not required is
    left out and the step runs."""
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    key, _ = make_key(tmp_path, "key")
    with pytest.raises(DockerfileError, match=r":3: RUN --mount=type=ssh,id=nope: the build "
                                              r"was not given an SSH agent or key 'nope'"):
        await builder.build(BuildOptions(context=tmp_path, ssh={"default": (str(key),)},
                                         dockerfile_inline=(
            "FROM busybox\nRUN true\nRUN --mount=type=ssh,id=nope,required=true true\n")))
    assert_stopped(agents_started(lines))
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
        "FROM busybox\n"
        "RUN --mount=type=ssh,required=false --mount=type=ssh,id=x \\\n"
        "    sh -c 'test ! -e /run/buildkit/ssh_agent.0 && test ! -e /run/buildkit && "
        "echo \"$SSH_AUTH_SOCK\" > /out'\n")))
    assert await run_in(rt, image, "cat", "/out") == "/run/buildkit/ssh_agent.0\n"
    missing = tmp_path / "missing"
    with pytest.raises(DockerfileError, match=rf":2: RUN --mount=type=ssh,id=default: "
                                              rf"{missing}: no such SSH key file"):
        await builder.build(BuildOptions(context=tmp_path, ssh={"default": (str(missing),)},
                                         dockerfile_inline=(
            "FROM busybox\nRUN --mount=type=ssh echo missing\n")))
    bad = tmp_path / "bad"
    bad.write_text("not a key\n")
    bad.chmod(0o600)
    lines.clear()
    with pytest.raises(DockerfileError, match=r":2: RUN --mount=type=ssh,id=k: the SSH agent "
                                              r"did not take the key\(s\) .*bad"):
        await builder.build(BuildOptions(context=tmp_path, ssh={"k": (str(bad),)},
                                         dockerfile_inline=(
            "FROM busybox\nRUN --mount=type=ssh,id=k echo bad\n")))
    started = agents_started(lines)
    assert len(started) == 1
    assert_stopped(started)
    with pytest.raises(BuildError, match=r":2: RUN --mount=type=ssh,id=default: the host's "
                                         r"SSH agent was asked for, but \$SSH_AUTH_SOCK is "
                                         r"not set"):
        await builder.build(BuildOptions(context=tmp_path, ssh={"default": ()},
                                         dockerfile_inline=(
            "FROM busybox\nRUN --mount=type=ssh echo nosock\n")))
    assert not [p for p in os.listdir(state_root) if p.startswith("build-mounts-")]


async def test_ssh_agents_stopped_when_cancelled(tmp_path: Path) -> None:
    """The build closes its agents from its exit stack: also when the build is being
    cancelled, the agent it started is stopped and its directory removed."""
    key, fingerprint = make_key(tmp_path, "key")
    lines: list[str] = []
    agents = SshAgents({"k": (str(key),)})
    with trio.fail_after(60), trio.CancelScope() as scope:
        try:
            sock = await agents.socket("k", "test", lines.append)
            assert sock is not None
            assert fingerprints(Path(sock)) == [fingerprint]
            scope.cancel()
            await trio.sleep_forever()
        finally:
            await agents.aclose()
    assert scope.cancelled_caught
    started = agents_started(lines)
    assert [s for _, s in started] == [Path(sock)]
    assert_stopped(started)
