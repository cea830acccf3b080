"""Podman with a private configuration, for the side-by-side figures.

Podman has no daemon: every command reads ``CONTAINERS_CONF``,
``CONTAINERS_STORAGE_CONF`` and ``CONTAINERS_REGISTRIES_CONF``, which point at
files written here under one temporary directory: runc as the OCI runtime
(crun 1.8 refuses this host's hybrid cgroup layout), the cgroupfs manager (no
systemd here), events in a file, default ulimits root may set (it lacks
CAP_SYS_RESOURCE), file locks instead of ``/dev/shm/libpod_lock``, no network
namespace by default, and graphroot, runroot, tmp, volume and network-config
directories of its own.  Containers run with ``--network none`` /
``network_mode: none``, so netavark never creates a bridge or firewall rule.
``stop`` removes containers and pods, kills any conmon left (by the private
paths on its command line), deletes runc state of ours podman left, and removes
the mounts and directory.  Its cgroups live under podman's fixed
``libpod_parent``, which another podman on the host would share: they are
removed when empty, and nothing is killed by cgroup.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.peers import host
from benchmarks.peers.client import PeerCLI

PODMAN = "/usr/bin/podman"
RUNC_ROOT = "/run/runc"  # where podman's runc keeps container state (its default)
# podman's cgroupfs parent; fixed by podman, removed afterwards unless it was there before.
CGROUP_PARENT = "libpod_parent"


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (rootful podman)"
    if not os.access(PODMAN, os.X_OK):
        return f"{PODMAN} is not installed (Debian package podman)"
    if shutil.which("runc") is None:
        return "runc is not installed (podman is configured to use it)"
    return None


def podman_compose() -> str | None:
    """The podman-compose to measure: ``$PODMAN_COMPOSE``, ``.venv/peers`` (``make bench``
    installs it there), the harness's own virtualenv, or PATH."""
    if os.environ.get("PODMAN_COMPOSE"):
        return os.environ["PODMAN_COMPOSE"]
    repo = Path(__file__).resolve().parents[2]
    candidates = [repo / ".venv" / "peers" / "bin" / "podman-compose",
                  Path(sys.executable).parent / "podman-compose"]
    for path in candidates:
        if os.access(path, os.X_OK):
            return str(path)
    return shutil.which("podman-compose")


CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
log_driver = "k8s-file"

[network]
network_config_dir = "{base}/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
tmp_dir = "{base}/tmp"
volume_path = "{base}/volumes"
static_dir = "{base}/graph/libpod"
lock_type = "file"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{base}/graph"
runroot = "{base}/run"
"""

REGISTRIES_CONF = """\
unqualified-search-registries = []
short-name-mode = "permissive"
"""


class Podman(PeerCLI):
    """Podman configured to keep all its state under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.program = PODMAN
        self.env = {
            "CONTAINERS_CONF": str(base / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(base / "registries.conf"),
        }
        self.started = False

    def start(self) -> None:
        """Write the configuration and check that podman runs with it."""
        self.base.mkdir(parents=True, exist_ok=True)
        for sub in ("networks", "tmp", "volumes", "graph", "run"):
            (self.base / sub).mkdir(exist_ok=True)
        (self.base / "containers.conf").write_text(CONTAINERS_CONF.format(base=self.base))
        (self.base / "storage.conf").write_text(STORAGE_CONF.format(base=self.base))
        (self.base / "registries.conf").write_text(REGISTRIES_CONF)
        self.started = True
        info = self.cli("info", "--format", "{{.Store.GraphRoot}}")
        if info.stdout.strip() != str(self.base / "graph"):
            raise RuntimeError(f"podman ignores its private configuration: {info.stdout!r}")

    def _delete_runc_state(self) -> list[str]:
        """``runc delete --force`` containers of ours that podman did not remove.

        Podman keeps runc's state in runc's default root, shared with anyone else
        using runc; ours are those whose rootfs lies under our graphroot.
        """
        problems: list[str] = []
        root = Path(RUNC_ROOT)
        if not root.is_dir():
            return problems
        for state in root.glob("*/state.json"):
            try:
                rootfs = json.loads(state.read_text())["config"]["rootfs"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if str(rootfs).startswith(str(self.base) + "/"):
                cid = state.parent.name
                subprocess.run(["runc", "--root", RUNC_ROOT, "delete", "--force", cid],
                               capture_output=True, timeout=60, check=False)
                problems.append(f"runc container {cid} was left by podman; deleted")
        return problems

    def monitor_pids(self) -> list[int]:
        """The conmon monitors of our containers (one per running container)."""
        return [pid for pid in host.processes_mentioning(str(self.base))
                if Path(f"/proc/{pid}/comm").read_text().strip() == "conmon"]

    def stop(self) -> list[str]:
        problems: list[str] = []
        if self.started:
            for args in (("rm", "-af", "-t", "0"), ("pod", "rm", "-af")):
                try:
                    self.cli(*args, timeout=300)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    problems.append(f"podman {' '.join(args)}: {e}")
        stray = list(host.processes_mentioning(str(self.base)))
        if stray:
            problems.append(f"processes left by podman: {stray}; killed")
            host.kill_and_wait(stray)
        problems += self._delete_runc_state()
        problems += host.unmount_under(self.base)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.base)
        return problems
