"""RUN --mount=type=ssh in real builds: an agent the build starts for key files, an agent
it forwards, checked from inside the RUN with ``ssh-add -l``; the socket is not in the
layer nor the cache key; missing agents and bad keys are errors naming the line; the
build's agents are gone when it ends."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycompose.runtime.build import Builder, BuildError, BuildOptions, DockerfileError
from pycompose.runtime.client import Runtime
from pycompose.runtime.images import ImageStore
from tests.helpers.builds import run_in

pytestmark = pytest.mark.root

_AGENT_LINE = re.compile(r"ssh-agent \(pid (\d+)\) at (\S+), ")
# ssh-add from the host with its libraries, bind-mounted into a RUN as /tools.
_SSH_ADD = "/tools/ld.so --library-path /tools /tools/ssh-add"


def make_key(directory: Path, name: str) -> tuple[Path, str]:
    """A new ed25519 key without passphrase, and its fingerprint (``SHA256:...``)."""
    key = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True)
    out = subprocess.run(["ssh-keygen", "-lf", str(key)], check=True, capture_output=True,
                         text=True).stdout
    return key, out.split()[1]


def add_key(agent: Path, key: Path) -> None:
    subprocess.run(["ssh-add", "-q", str(key)], check=True, env={"SSH_AUTH_SOCK": str(agent)})


def fingerprints(agent: Path) -> list[str]:
    out = subprocess.run(["ssh-add", "-l"], check=True, capture_output=True, text=True,
                         env={"SSH_AUTH_SOCK": str(agent)}).stdout
    return [line.split()[1] for line in out.splitlines()]


def ssh_tools(into: Path) -> None:
    """``ssh-add``, its shared libraries and the dynamic loader (as ``ld.so``) in ``into``,
    to run in a busybox container."""
    into.mkdir(parents=True)
    ssh_add = shutil.which("ssh-add")
    assert ssh_add is not None
    shutil.copy(ssh_add, into / "ssh-add")
    out = subprocess.run(["ldd", ssh_add], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        words = line.split()
        if "=>" in words and len(words) > 2 and words[2].startswith("/"):
            shutil.copy(words[2], into / words[0])
        elif words and words[0].startswith("/"):
            shutil.copy(words[0], into / "ld.so")


def agents_started(lines: list[str]) -> list[tuple[int, Path]]:
    """The pid and socket of each ssh-agent the build said it started."""
    return [(int(m.group(1)), Path(m.group(2))) for line in lines
            if (m := _AGENT_LINE.search(line))]


def assert_stopped(agents: list[tuple[int, Path]]) -> None:
    for pid, sock in agents:
        assert not Path(f"/proc/{pid}").exists(), f"ssh-agent {pid} still runs"
        assert not sock.parent.exists(), f"{sock.parent} was not removed"


@pytest.fixture
def host_agent(tmp_path: Path) -> Iterator[Path]:
    """An ssh-agent of the test's own (stopped by its pid afterwards); its socket."""
    sock = tmp_path / "host-agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env={})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"SSH_AUTH_SOCK=")
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


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
        f"    {_SSH_ADD} -l > /default-keys && \\\n"
        f"    SSH_AUTH_SOCK=/var/deploy.sock {_SSH_ADD} -l > /deploy-keys && \\\n"
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
        f"    sh -c '{_SSH_ADD} -l > /keys'\n")))
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
