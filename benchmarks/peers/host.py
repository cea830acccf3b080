"""What the peers could change on the host, recorded before and checked after.

Docker and podman are started so that they leave the host alone (no firewall
rules, no forwarding, no bridges), but other people run network tests on the
same machine while the benchmarks run, so the teardown still checks: IPv4
forwarding, the iptables/ip6tables FORWARD policies, links with the names the
peers give theirs (``docker0``, ``br-<id>``, ``podman<N>``, ``cni-podman<N>``,
``veth<hex>``), mounts under the peers' private directories, cgroups they
create (when the name is not ours alone: only once empty), and the
well-known directories under ``/run`` they make on first use.
What differs is put back (links deleted, mounts detached, empty directories
removed) and reported; nothing that existed before is ever removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Links only a peer would create (ours all start with "pc").
PEER_LINK = re.compile(r"^(docker0|br-[0-9a-f]{12}|podman\d+|cni-podman\d+|veth[0-9a-f]{7})$")
# Directories docker, containerd, podman and runc make on first use, whatever
# their configured roots (containerd's shim sockets, netavark's run dir, ...).
RUN_DIRS = (
    "/run/docker/plugins", "/run/docker", "/run/containerd/s", "/run/containerd",
    "/run/containers/networks", "/run/containers", "/run/runc", "/run/libpod",
)


def _forward_policy(tool: str) -> str | None:
    try:
        out = subprocess.run([tool, "-S", "FORWARD"], capture_output=True, text=True,
                             timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def mount_points() -> list[str]:
    """Mount points of this process's mount namespace, in mount order."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def cgroup_dirs(name: str) -> list[Path]:
    """``/sys/fs/cgroup/<hierarchy>/<name>`` for every hierarchy where it exists."""
    if not CGROUP_ROOT.is_dir():
        return []
    return [h / name for h in sorted(CGROUP_ROOT.iterdir()) if (h / name).is_dir()]


def remove_cgroup_tree(top: Path, *, kill: bool) -> list[str]:
    """Remove ``top`` and its sub-cgroups.

    With ``kill``, first SIGKILL what is left in them: only for a cgroup named
    for this run alone (our peers' containers).  Without, cgroups that still
    hold tasks (or that another podman shares) are left alone, not reported.
    """
    problems: list[str] = []
    subdirs = sorted((Path(d) for d, _, _ in os.walk(top)), key=lambda p: -len(p.parts))
    if not kill:
        for d in subdirs:
            with contextlib.suppress(OSError):
                d.rmdir()
        return problems
    for d in subdirs:
        with contextlib.suppress(OSError):
            for pid in (d / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    for d in subdirs:
        for _ in range(50):  # the killed tasks leave the cgroup a moment later
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        else:
            problems.append(f"cgroup {d} is still there")
    return problems


def processes_mentioning(needle: str) -> Iterator[int]:
    """PIDs whose command line contains ``needle`` (a private path of ours)."""
    me = os.getpid()
    raw = needle.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if raw in cmdline:
            yield int(entry)


def kill_and_wait(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL each PID and wait until it is gone; returns those that stayed."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        for pid in alive:  # our own children must be reaped, or they stay zombies
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def unmount_under(base: Path) -> list[str]:
    """Detach every mount at or below ``base``, innermost first."""
    prefix = str(base).rstrip("/") + "/"
    problems = []
    for point in reversed(mount_points()):
        if point == str(base) or point.startswith(prefix):
            out = subprocess.run(["umount", "-l", point], capture_output=True, text=True,
                                 check=False)
            if out.returncode != 0:
                problems.append(f"umount {point}: {out.stderr.strip()}")
    return problems


@dataclass
class HostSnapshot:
    """The host state the peers must leave as they found it."""

    ip_forward: str
    policies: dict[str, str | None]
    links: set[str]
    run_dirs: set[str]
    cgroups: set[str] = field(default_factory=set)  # top-level cgroup names that existed

    @classmethod
    def take(cls, cgroup_names: Iterable[str] = ()) -> HostSnapshot:
        return cls(
            ip_forward=IP_FORWARD.read_text().strip(),
            policies={t: _forward_policy(t) for t in ("iptables", "ip6tables")},
            links=links(),
            run_dirs={d for d in RUN_DIRS if os.path.isdir(d)},
            cgroups={n for n in cgroup_names if cgroup_dirs(n)},
        )

    def restore(self, private_dirs: Iterable[Path] = (),
                cgroup_names: Iterable[str] = ()) -> list[str]:
        """Put back what differs; returns a line for each thing that had to be fixed."""
        fixed: list[str] = []
        for base in private_dirs:
            fixed += unmount_under(base)
        for name in cgroup_names:
            if name in self.cgroups:
                continue
            for top in cgroup_dirs(name):  # shared names: empty ones only
                fixed += remove_cgroup_tree(top, kill=False)
        now = IP_FORWARD.read_text().strip()
        if now != self.ip_forward:
            IP_FORWARD.write_text(self.ip_forward + "\n")
            fixed.append(f"net.ipv4.ip_forward was {now}, set back to {self.ip_forward}")
        for tool, before in self.policies.items():
            after = _forward_policy(tool)
            if before is not None and after is not None and after != before:
                subprocess.run([tool, "-P", "FORWARD", before], check=False)
                fixed.append(f"{tool} FORWARD policy was {after}, set back to {before}")
        for name in sorted(links() - self.links):
            if PEER_LINK.match(name):
                subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
                fixed.append(f"link {name} was left behind; deleted")
        for d in RUN_DIRS:  # ordered children first; rmdir only removes empty ones
            if d not in self.run_dirs and os.path.isdir(d):
                with contextlib.suppress(OSError):
                    os.rmdir(d)
        return fixed
