"""The peer engines (dockerd, podman), started privately for the side-by-side figures.

A figure group that compares against Docker or podman calls ``start(ctx, key)``
in its setup and ``stop(ctx, key)`` in its teardown.  ``start`` records the host
state (``host.HostSnapshot``), starts a dockerd and configures podman under a
temporary directory, and imports the busybox test rootfs
(``tests/helpers/images.py``) into both as ``bb:latest``.  A peer that is not
installed or does not come up is left out with the reason
(``Peers.reasons``), never faked.  ``stop`` undoes everything, checks the host
against the snapshot and reports (to stderr) anything it had to put back.  It
also runs at interpreter exit and on SIGTERM if a group did not get to it.
Between ``start`` and ``stop`` the run holds a host-wide lock (``LOCK``): a
second benchmark run waits for it before starting its peers.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeVar

from benchmarks.harness import Context
from benchmarks.peers import docker as docker_mod
from benchmarks.peers import host
from benchmarks.peers import podman as podman_mod
from benchmarks.peers.docker import Dockerd
from benchmarks.peers.podman import Podman, podman_compose

_D = TypeVar("_D", Dockerd, Podman)

IMAGE = "bb:latest"
# Host-wide lock held while a run's peers are up (left in place, as lock files are).
LOCK = "/run/lock/pycompose-bench-peers.lock"
__all__ = ["IMAGE", "Peers", "busybox_tar", "engine", "podman_compose", "reason", "start", "stop"]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def busybox_tar(ctx: Context) -> Path:
    """The busybox rootfs tarball of ``tests/helpers/images.py`` (made once per run)."""
    tar = ctx.state.get("peers_busybox_tar")
    if tar is None:
        repo = str(Path(__file__).resolve().parents[2])
        if repo not in sys.path:
            sys.path.insert(0, repo)
        from tests.helpers.images import make_busybox_rootfs, make_rootfs_tar

        rootfs = make_busybox_rootfs(ctx.workdir / "peers-busybox")
        tar = make_rootfs_tar(rootfs, ctx.workdir / "peers-busybox.tar")
        ctx.state["peers_busybox_tar"] = tar
    return Path(tar)


@dataclass
class Peers:
    base: Path
    snapshot: host.HostSnapshot
    docker: Dockerd | None = None
    podman: Podman | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # "docker"/"podman" -> why not
    lock: int | None = None  # fd holding LOCK
    stopped: bool = False

    def stop(self) -> list[str]:
        if self.stopped:
            return []
        self.stopped = True
        problems: list[str] = []
        if self.docker is not None:
            problems += self.docker.stop()
        if self.podman is not None:
            problems += self.podman.stop()
        problems += self.snapshot.restore(private_dirs=[self.base],
                                          cgroup_names=[podman_mod.CGROUP_PARENT])
        # Everything under base is unmounted by now; the directory itself goes last.
        shutil.rmtree(self.base, ignore_errors=True)
        left = [p for p in host.mount_points() if p.startswith(str(self.base))]
        if left:
            problems.append(f"mounts still under {self.base}: {left}")
        if self.lock is not None:
            os.close(self.lock)  # releases the flock
            self.lock = None
        return problems


_LIVE: list[Peers] = []


def _stop_all() -> None:
    for peers in _LIVE:
        for line in peers.stop():
            _log(f"  peers: {line}")
    _LIVE.clear()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the groups' teardowns, then atexit


def _lock() -> int:
    """Take the host-wide peers lock; waits while another benchmark run has its peers up.

    The peers share host-wide things (podman's ``libpod_parent`` cgroup and runc
    root, containerd's shim socket directory) and two runs would also skew each
    other's figures on two cores: one run's peers at a time.
    """
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _log(f"  peers: waiting for another benchmark run to release {LOCK}")
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def start(ctx: Context, key: str, *, docker: bool = True, podman: bool = True) -> Peers:
    """Start the wanted peers for a group; stored as ``ctx.state[key]``."""
    lock = _lock()
    base = Path(tempfile.mkdtemp(prefix="pcpeers-", dir=ctx.workdir))
    peers = Peers(base=base, snapshot=host.HostSnapshot.take([podman_mod.CGROUP_PARENT]),
                  lock=lock)
    ctx.state[key] = peers
    if not _LIVE:
        atexit.register(_stop_all)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    _LIVE.append(peers)
    tars: list[Path] = []  # busybox's rootfs as a tar, made once for both

    def rootfs() -> Path:
        if not tars:
            tars.append(busybox_tar(ctx))
        return tars[0]

    if docker:
        peers.docker = _bring_up(peers, "docker", docker_mod.unavailable(),
                                 lambda: Dockerd(base / "docker"), "dockerd did not come up",
                                 rootfs)
    if podman:
        peers.podman = _bring_up(peers, "podman", podman_mod.unavailable(),
                                 lambda: Podman(base / "podman"), "podman does not run here",
                                 rootfs)
    return peers


def _bring_up(peers: Peers, name: str, reason: str | None, make: Callable[[], _D],
              failed: str, rootfs: Callable[[], Path]) -> _D | None:
    """Start one peer daemon and import busybox into it. The daemon is returned even when
    that fails (so that stopping the peers stops it too); the reason is kept and logged."""
    daemon = None
    if reason is None:
        daemon = make()
        try:
            tar = rootfs()
            daemon.start()
            daemon.import_rootfs(tar, IMAGE)
        except Exception as e:  # noqa: BLE001 - reported as the tool's reason
            reason = f"{failed}: {e}"
    if reason is not None:
        peers.reasons[name] = reason
        _log(f"  {name} left out: {reason}")
    return daemon


def stop(ctx: Context, key: str) -> None:
    """Stop the peers of ``ctx.state[key]`` and report what had to be put back."""
    peers = ctx.state.pop(key, None)
    if peers is None:
        return
    for line in peers.stop():
        _log(f"  peers: {line}")
    if peers in _LIVE:
        _LIVE.remove(peers)


def engine(ctx: Context, key: str, peer: str) -> Dockerd | Podman:
    """The started ``peer`` ("docker"/"podman") of ``ctx.state[key]``."""
    peers: Peers = ctx.state[key]
    found = peers.docker if peer == "docker" else peers.podman
    if found is None:
        raise RuntimeError(f"{peer} is not set up")
    return found


def reason(ctx: Context, key: str, peer: str) -> str | None:
    """Why ``peer`` ("docker"/"podman") cannot be measured in this group, or None."""
    peers: Peers | None = ctx.state.get(key)
    if peers is None:
        return "not started (the group's setup did not run)"
    if peer in peers.reasons:
        return peers.reasons[peer]
    if getattr(peers, peer) is None:
        return f"{peer} is not set up in this group"
    return None

