"""A private dockerd for the side-by-side figures.

Everything the daemon owns lives under one temporary directory: ``--data-root``,
``--exec-root`` (with the containerd it starts), ``--pidfile``, the API socket
and an empty ``--config-file`` (so ``/etc/docker/daemon.json`` is not read).
``--iptables=false --ip6tables=false --bridge=none --ip-forward=false
--ip-masq=false`` keep it away from the firewall and forwarding and stop it
creating ``docker0``; containers run with ``network_mode: none``.  Its
containers go under a cgroup parent named for this run.  ``stop`` removes the
containers, ends the daemon we started (by PID), kills any shim or container
left from it, and removes the mounts, cgroups and directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from benchmarks.peers import host
from benchmarks.peers.client import PeerCLI

DOCKERD = "/usr/sbin/dockerd"
# Debian's docker.io client; /usr/local/bin/docker may be a newer client only.
DOCKER = "/usr/bin/docker"


def unavailable() -> str | None:
    """None when dockerd and its client are installed and we are root, else why not."""
    if os.geteuid() != 0:
        return "needs root (dockerd)"
    for exe, pkg in ((DOCKERD, "docker.io"), (DOCKER, "docker.io")):
        if not os.access(exe, os.X_OK):
            return f"{exe} is not installed (Debian package {pkg})"
    return None


class Dockerd(PeerCLI):
    """One dockerd with private roots under ``base`` (created by ``start``)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cgroup_parent = f"pcbench-docker-{secrets.token_hex(3)}"
        self.socket = base / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.program = DOCKER
        self.env = {
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(base / "client"),  # not ~/.docker
        }

    def start(self, timeout: float = 60.0) -> None:
        for sub in ("client", "data", "exec"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        config = self.base / "daemon.json"
        config.write_text(json.dumps({}))
        argv = [
            DOCKERD,
            "--config-file", str(config),
            "--data-root", str(self.base / "data"),
            "--exec-root", str(self.base / "exec"),
            "--pidfile", str(self.base / "docker.pid"),
            "-H", f"unix://{self.socket}",
            "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
            "--bridge=none",
            "--cgroup-parent", f"/{self.cgroup_parent}",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--log-level", "error",
        ]
        log = (self.base / "dockerd.log").open("wb")
        # Own session: a ^C in the terminal reaches the harness, which stops us in order.
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            if self.socket.exists() and self.cli("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"dockerd did not answer within {timeout:g}s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            lines = (self.base / "dockerd.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def monitor_pids(self) -> list[int]:
        """The containerd shims of this daemon (one per running container)."""
        address = str(self.base / "exec")
        return [pid for pid in host.processes_mentioning(address)
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("containerd-shim")]

    def stop(self) -> list[str]:
        """Remove every container, end the daemon, clean up; returns what went wrong."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                ids = self.cli("ps", "-aq", timeout=60).stdout.split()
                if ids:
                    self.cli("rm", "-f", *ids, timeout=300)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                problems.append(f"removing containers: {e}")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                problems.append("dockerd did not stop on SIGTERM; killed")
                host.kill_and_wait([self.proc.pid])
        # Whatever it started and left: its containerd, shims (command lines name our
        # exec root), and containers (in our cgroup parent, killed with the cgroups).
        stray = list(host.processes_mentioning(str(self.base)))
        if stray:
            problems.append(f"processes left by dockerd: {stray}; killed")
            host.kill_and_wait(stray)
        problems += host.unmount_under(self.base)
        for top in host.cgroup_dirs(self.cgroup_parent):
            problems += host.remove_cgroup_tree(top, kill=True)  # named for this run
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.base)
        return problems
