"""SSH agents for ``RUN --mount=type=ssh``: where they come from, and how a RUN reaches one.

A build is given ``ssh`` sources by id (Compose's ``build.ssh``, ``build --ssh``): an
agent's socket, forwarded as it is, or private key files, which :class:`SshAgents`
loads into an ``ssh-agent`` of the build's own (started on first use, in a private
temporary directory, stopped by its pid and the directory removed when the build
ends, also on errors and cancellation).

A RUN never sees the agent's socket itself: :func:`agent_listener` makes a socket of
the RUN's own (with the mount's ``mode``, ``uid`` and ``gid``, as BuildKit), and
:func:`serve_agent` forwards each connection to it to the agent while the RUN runs.
An agent then checks our peer credentials, not the RUN user's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from pycompose.runtime.build.errors import BuildError, DockerfileError

__all__ = ["SshAgents", "agent_listener", "serve_agent"]

_START_TIMEOUT = 30.0   # seconds for ssh-agent to listen, and for ssh-add to load the keys
_STOP_TIMEOUT = 5.0     # seconds after SIGTERM before SIGKILL


@dataclass
class _Agent:
    process: trio.Process
    directory: Path


class SshAgents:
    """The SSH agents of one build, by id. ``sources[id]`` is an agent socket or one or
    more private key files; an empty tuple means the host's agent was asked for while
    ``$SSH_AUTH_SOCK`` is not set."""

    def __init__(self, sources: Mapping[str, Sequence[str]]) -> None:
        self.sources = dict(sources)
        self._sockets: dict[str, str] = {}
        self._agents: list[_Agent] = []

    async def socket(self, ssh_id: str, what: str, log: Callable[[str], None]) -> str | None:
        """The agent socket for ``ssh_id`` (None: the build was not given it); a key
        file source starts an agent the first time. ``what`` starts error messages."""
        if ssh_id in self._sockets:
            return self._sockets[ssh_id]
        paths = self.sources.get(ssh_id)
        if paths is None:
            return None
        if not paths:
            raise DockerfileError(f"{what}: the host's SSH agent was asked for, but "
                                  "$SSH_AUTH_SOCK is not set")
        kinds = [_kind(p) for p in paths]
        for path, kind in zip(paths, kinds, strict=True):
            if kind is None:
                raise DockerfileError(f"{what}: {path}: no such SSH key file or agent socket")
        if kinds == ["socket"]:
            self._sockets[ssh_id] = paths[0]
            return paths[0]
        if "socket" in kinds:
            raise DockerfileError(f"{what}: {', '.join(paths)}: an agent socket cannot be "
                                  "combined with other sources")
        sock = await self._start(paths, what, log)
        self._sockets[ssh_id] = sock
        return sock

    async def _start(self, keys: Sequence[str], what: str, log: Callable[[str], None]) -> str:
        directory = Path(await trio.to_thread.run_sync(
            lambda: tempfile.mkdtemp(prefix="pycompose-ssh-")))
        sock = str(directory / "agent.sock")
        try:
            process = await trio.lowlevel.open_process(
                [_tool("ssh-agent", what), "-D", "-a", sock], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={})
        except BaseException:
            await trio.to_thread.run_sync(shutil.rmtree, directory, True)
            raise
        agent = _Agent(process, directory)
        self._agents.append(agent)
        # It prints ``SSH_AUTH_SOCK=...`` once it listens; before that it only prints why
        # it could not.
        assert process.stdout is not None
        said = b""
        with trio.move_on_after(_START_TIMEOUT):
            while b"\n" not in said:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    break
                said += chunk
        if not said.startswith(b"SSH_AUTH_SOCK="):
            text = said.decode(errors="replace").strip() or "no answer"
            raise BuildError(f"{what}: ssh-agent did not start: {text}")
        log(f"ssh-agent (pid {process.pid}) at {sock}, {len(keys)} key(s)")
        with trio.move_on_after(_START_TIMEOUT):
            added = await trio.run_process(
                [_tool("ssh-add", what), "-q", *keys], stdin=subprocess.DEVNULL,
                capture_stdout=True, capture_stderr=True, check=False,
                env={"SSH_AUTH_SOCK": sock, "SSH_ASKPASS_REQUIRE": "never"})
            if added.returncode != 0:
                text = (added.stderr or added.stdout).decode(errors="replace").strip()
                raise DockerfileError(f"{what}: the SSH agent did not take the key(s) "
                                      f"{', '.join(keys)}: {text}")
            return sock
        raise DockerfileError(f"{what}: ssh-add {', '.join(keys)} did not finish")

    async def aclose(self) -> None:
        """Stop the agents this build started (by their pid) and remove their directories."""
        with trio.CancelScope(shield=True):
            while self._agents:
                agent = self._agents.pop()
                try:
                    await _stop(agent.process)
                finally:
                    await trio.to_thread.run_sync(shutil.rmtree, agent.directory, True)
            self._sockets.clear()


async def _stop(process: trio.Process) -> None:
    if process.returncode is None:
        process.terminate()
        with trio.move_on_after(_STOP_TIMEOUT):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.stdout is not None:
        await process.stdout.aclose()


def _kind(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return "socket" if stat.S_ISSOCK(st.st_mode) else "key"


def _tool(name: str, what: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"{what}: {name} is not installed (Debian: openssh-client)")
    return path


# --- a RUN's own socket -----------------------------------------------------------------


def agent_listener(path: Path, *, uid: int, gid: int, mode: int) -> socket.socket:
    """A listening socket at ``path`` owned by ``uid``:``gid`` with ``mode`` (blocking).
    It is bound through a descriptor of its directory: a state root's paths can be
    longer than a socket address."""
    dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        listener.listen(16)
    except BaseException:
        listener.close()
        raise
    finally:
        os.close(dir_fd)
    listener.setblocking(False)
    return listener


async def serve_agent(listener: socket.socket, agent: str) -> None:
    """Forward each connection to ``listener`` to the agent at ``agent``, until cancelled."""
    sock = trio.socket.from_stdlib_socket(listener)
    async with trio.open_nursery() as nursery:
        while True:
            try:
                conn, _ = await sock.accept()
            except OSError:
                await trio.sleep_forever()  # closed under us: the RUN is over
            nursery.start_soon(_forward, trio.SocketStream(conn), agent)


async def _forward(client: trio.SocketStream, agent: str) -> None:
    async with client:
        try:
            upstream = await trio.open_unix_socket(agent)
        except OSError:
            return  # the RUN sees a closed connection, as from a gone agent
        async with upstream, trio.open_nursery() as nursery:
            nursery.start_soon(_pipe, client, upstream)
            nursery.start_soon(_pipe, upstream, client)


async def _pipe(src: trio.SocketStream, dst: trio.SocketStream) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        while data := await src.receive_some():
            await dst.send_all(data)
        await dst.send_eof()
