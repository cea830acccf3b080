"""Process settings of the container's init: rlimits, sysctls, oom_score_adj, exec.

Checks run in the supervisor when the container is created (clear errors,
clamped ulimits reported as warnings); the ``apply_*`` functions run in the
spawn child.
"""

from __future__ import annotations

import os
import resource

from pycompose.runtime.errors import ContainerError, SpawnError
from pycompose.runtime.spec import Ulimit

RLIMITS: dict[str, int] = {
    name[len("RLIMIT_"):].lower(): getattr(resource, name)
    for name in dir(resource) if name.startswith("RLIMIT_")
}

#: sysctls that belong to a namespace the container owns (Docker's list).
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                "kernel.shm_rmid_forced"}


def clamp_ulimits(ulimits: tuple[Ulimit, ...]) -> tuple[tuple[tuple[int, int, int], ...],
                                                         tuple[str, ...]]:
    """``(resource, soft, hard)`` triples the host allows, and warnings for clamps.

    Without CAP_SYS_RESOURCE a hard limit cannot be raised above the current
    one: ask for more and get the maximum, with a warning.
    """
    out: list[tuple[int, int, int]] = []
    warnings: list[str] = []
    for ul in ulimits:
        res = RLIMITS.get(ul.name.lower())
        if res is None:
            raise ContainerError(f"ulimits: unknown limit {ul.name!r} "
                                 f"(known: {', '.join(sorted(RLIMITS))})")
        soft, hard = ul.soft, ul.hard
        if soft > hard and hard >= 0:
            raise ContainerError(f"ulimits.{ul.name}: soft limit {soft} exceeds hard limit {hard}")
        _, host_hard = resource.getrlimit(res)
        if host_hard != resource.RLIM_INFINITY and (hard < 0 or hard > host_hard):
            warnings.append(f"ulimit {ul.name}={soft}:{hard} clamped to the host's hard "
                            f"limit {host_hard}")
            hard = host_hard
            soft = min(soft, hard) if soft >= 0 else hard
        out.append((res, soft, hard))
    return tuple(out), tuple(warnings)


def check_sysctls(sysctls: dict[str, str], *, host_network: bool) -> None:
    """Only namespaced sysctls are allowed, as in Docker."""
    for key in sysctls:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            continue
        if key.startswith("net.") and not host_network:
            continue
        if key in ("kernel.domainname", "kernel.hostname"):
            raise ContainerError(f"sysctls: {key} is set with hostname/domainname instead")
        raise ContainerError(f"sysctls: {key} is not namespaced"
                             + (" (the container uses the host network)"
                                if key.startswith("net.") else ""))


def apply_sysctls(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as fh:
                fh.write(value)
        except OSError as exc:
            raise SpawnError(f"sysctl {key}={value}: {exc.strerror}", step="sysctl",
                             path=path) from None


def apply_rlimits(limits: tuple[tuple[int, int, int], ...]) -> None:
    for res, soft, hard in limits:
        resource.setrlimit(res, (soft, hard))


def apply_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write(str(value))


def find_executable(name: str, env: tuple[str, ...] | list[str]) -> str:
    """Docker's lookup and messages: PATH search for bare names (inside the new root)."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as exc:
            raise SpawnError(f'exec: "{name}": stat {name}: {(exc.strerror or str(exc)).lower()}',
                             step="exec", path=name) from None
        if not st.st_mode & 0o111 or os.path.isdir(name):
            raise SpawnError(f'exec: "{name}": permission denied', step="exec", path=name)
        return name
    path = ""
    for entry in env:
        if entry.startswith("PATH="):
            path = entry[5:]
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if st.st_mode & 0o111 and not os.path.isdir(candidate):
            return candidate
    raise SpawnError(f'exec: "{name}": executable file not found in $PATH', step="exec",
                     path=name)
