"""SSH keys and agents for the build tests: a key and its fingerprint, an ssh-agent of the
test's own, ``ssh-add`` to run inside a busybox RUN, and the agents a build said it
started."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

AGENT_LINE = re.compile(r"ssh-agent \(pid (\d+)\) at (\S+), ")
# ssh-add from the host with its libraries, bind-mounted into a RUN as /tools.
SSH_ADD = "/tools/ld.so --library-path /tools /tools/ssh-add"


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
            if (m := AGENT_LINE.search(line))]


def assert_stopped(agents: list[tuple[int, Path]]) -> None:
    for pid, sock in agents:
        assert not Path(f"/proc/{pid}").exists(), f"ssh-agent {pid} still runs"
        assert not sock.parent.exists(), f"{sock.parent} was not removed"


@contextmanager
def ssh_agent(sock: Path) -> Iterator[Path]:
    """An ssh-agent listening at ``sock``, stopped by its pid on exit."""
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
