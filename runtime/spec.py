"""What a container is asked to be, and what the runtime reports back.

Plain frozen dataclasses, JSON-friendly (strings, numbers, tuples, string
mappings, nested dataclasses) so they travel unchanged between the engine and
the supervisor process (``runtime/supervisor/codec.py``).

``ContainerSpec`` covers what a Compose service can ask of one container. The
image's own settings arrive as ``ImageDefaults`` and are merged with the spec
the way Docker merges them (``runtime/imageconfig.py``) when the container is
created.

Sizes are bytes, durations seconds, signals names (``"SIGTERM"``) or numbers
as strings (``"15"``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Docker's default size of /dev/shm.
DEFAULT_SHM_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class ImageDefaults:
    """The part of an image config the runtime applies (OCI/Docker ``config``)."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()  #: ``KEY=value`` entries, in image order
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    volumes: tuple[str, ...] = ()  #: paths declared with ``VOLUME``: become anonymous volumes

    @classmethod
    def from_config(cls, config: object) -> ImageDefaults:
        """Take the fields from any image-config object with Docker-ish attribute names."""

        def get(*names: str) -> object:
            for name in names:
                value = getattr(config, name, None)
                if value is not None:
                    return value
            return None

        def strs(value: object) -> tuple[str, ...] | None:
            if value is None:
                return None
            if isinstance(value, str):
                return (value,)
            return tuple(str(v) for v in value)  # type: ignore[attr-defined]

        volumes = get("volumes", "Volumes")
        return cls(
            entrypoint=strs(get("entrypoint", "Entrypoint")),
            cmd=strs(get("cmd", "Cmd")),
            env=strs(get("env", "Env")) or (),
            working_dir=str(get("working_dir", "WorkingDir") or ""),
            user=str(get("user", "User") or ""),
            stop_signal=str(get("stop_signal", "StopSignal") or ""),
            volumes=tuple(sorted(volumes)) if volumes else (),  # type: ignore[call-overload]
        )


class MountType(enum.StrEnum):
    BIND = "bind"
    VOLUME = "volume"
    TMPFS = "tmpfs"


@dataclass(frozen=True)
class Mount:
    """One mount into the container, in Compose's long syntax terms.

    * ``bind``: ``source`` is an absolute host path; created as a directory
      when missing and ``create_host_path`` (the short syntax's behaviour).
    * ``volume``: ``source`` is a volume name (a directory under the state
      root); empty means an anonymous volume. On first use an empty volume is
      filled with the image's content at ``target`` unless ``nocopy``.
    * ``tmpfs``: ``tmpfs_size`` bytes (``None``: half of RAM, the kernel's
      default), ``tmpfs_mode`` (default 0o1777).
    """

    type: MountType
    target: str
    source: str = ""
    read_only: bool = False
    create_host_path: bool = True
    nocopy: bool = False
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None


@dataclass(frozen=True)
class Ulimit:
    name: str  #: ``nofile``, ``nproc``, ``core``, … (``RLIMIT_`` suffix, lower case)
    soft: int
    hard: int


@dataclass(frozen=True)
class EtcFile:
    """Content for /etc/hosts, /etc/resolv.conf or /etc/hostname: text, or a host file."""

    content: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class LogConfig:
    """json-file logging: rotate at ``max_size`` bytes, keep ``max_file`` files."""

    max_size: int | None = None
    max_file: int = 1


@dataclass(frozen=True)
class Resources:
    """Cgroup limits, Docker's names and units (0/None: unlimited or unset)."""

    memory: int | None = None  #: bytes
    memory_swap: int | None = None  #: memory+swap bytes, -1 unlimited
    memory_reservation: int | None = None
    cpus: float | None = None  #: quota/period
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    #: extra device cgroup rules, Compose ``device_cgroup_rules`` (``c 1:3 mr``, ``b 8:* rwm``)
    device_cgroup_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Device:
    """A host device node made available in the container (Compose ``devices:``).

    The node is created at ``target`` with the host node's numbers, mode and
    owner, and the device cgroup allows ``permissions`` (a subset of ``rwm``).
    """

    source: str  #: host path of a character or block device
    target: str = ""  #: path in the container; empty: the same as ``source``
    permissions: str = "rwm"


@dataclass(frozen=True)
class Security:
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    no_new_privileges: bool = False
    seccomp: str = "default"  #: ``default``, ``unconfined`` or a path to a JSON profile
    unmask_system_paths: bool = False  #: ``security_opt: systempaths=unconfined``


@dataclass(frozen=True)
class ContainerSpec:
    """Everything about one container. ``id`` is 64 hex chars; ``name`` is for people."""

    id: str
    name: str
    layers: tuple[str, ...]  #: image layer directories, bottom to top
    image: ImageDefaults = field(default_factory=ImageDefaults)
    entrypoint: tuple[str, ...] | None = None  #: ``None``: the image's
    command: tuple[str, ...] | None = None  #: ``None``: the image's (unless entrypoint is set)
    env: Mapping[str, str] = field(default_factory=dict)  #: merged over the image's Env
    working_dir: str | None = None
    user: str | None = None  #: ``uid[:gid]`` or names from the container's /etc/passwd, /etc/group
    group_add: tuple[str, ...] = ()
    hostname: str = ""  #: default: the first 12 characters of ``id``
    domainname: str = ""
    read_only: bool = False
    mounts: tuple[Mount, ...] = ()
    netns: str = "none"  #: ``none`` (own netns, only lo), ``host``, or a netns path to join
    init: bool = False  #: run catatonit as PID 1 (bind-mounted from the host)
    tty: bool = False  #: stdio is a terminal (also /dev/console); logs read from it
    stdin_open: bool = False  #: stdin stays open (a pipe, or the terminal) for ``attach``
    etc_hosts: EtcFile | None = None  #: ``None``: localhost entries plus the hostname
    resolv_conf: EtcFile | None = None  #: ``None``: the image's file is left alone
    etc_hostname: EtcFile | None = None  #: ``None``: the hostname
    shm_size: int = DEFAULT_SHM_SIZE
    ulimits: tuple[Ulimit, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    oom_score_adj: int | None = None
    stop_signal: str | None = None  #: ``None``: the image's, else SIGTERM
    stop_grace_period: float = 10.0
    security: Security = field(default_factory=Security)
    resources: Resources = field(default_factory=Resources)
    devices: tuple[Device, ...] = ()  #: host devices; every other device is denied
    log: LogConfig = field(default_factory=LogConfig)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecSpec:
    """A process to run inside a running container (``docker exec``)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)  #: added over the container's
    user: str | None = None  #: ``None``: the container's user
    working_dir: str | None = None  #: ``None``: the container's
    stdin: bool = False  #: give the process a stdin pipe (else /dev/null)
    privileged: bool = False
    tty: bool = False  #: a pseudo-terminal from the container's devpts (stderr joins stdout)
    tty_size: tuple[int, int] | None = None  #: initial (rows, columns)


class ContainerStatus(enum.StrEnum):
    """Docker's states; the predicates hold the lifecycle rules in one place."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"

    def can_start(self) -> bool:
        return self in (ContainerStatus.CREATED, ContainerStatus.EXITED)

    def can_stop(self) -> bool:
        return self in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)

    def can_exec(self) -> bool:
        return self is ContainerStatus.RUNNING

    def can_pause(self) -> bool:
        return self is ContainerStatus.RUNNING

    def can_remove(self) -> bool:
        return self in (ContainerStatus.CREATED, ContainerStatus.EXITED)


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: ``code`` (Docker's: 128+signal when killed), or unknown.

    ``code is None`` means the exit happened while no supervisor was its parent
    (it was re-adopted after a supervisor restart), so the status was lost.
    """

    code: int | None
    signal: int | None = None
    oom_killed: bool = False
    exited_at: str = ""  #: RFC 3339 with nanoseconds


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: ContainerStatus
    pid: int | None  #: host pid of the container's init while running
    created_at: str
    started_at: str = ""
    exit: ExitStatus | None = None  #: the last run's end
    warnings: tuple[str, ...] = ()  #: e.g. ulimits clamped to what the host allows
    log_path: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    restart_count: int = 0  #: how many times it was started after the first
    #: mount target -> name of each anonymous volume it mounts (made for it at create,
    #: or an anonymous volume handed over by name); ``remove(volumes=True)`` removes them
    anonymous_volumes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerStats:
    """Usage for ``stats`` (``None``: not available on this host or not running)."""

    cpu_usage_ns: int | None = None
    memory_usage: int | None = None
    memory_working_set: int | None = None  #: what ``docker stats`` shows as usage
    memory_limit: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    oom_kills: int = 0


@dataclass(frozen=True)
class ProcessInfo:
    """One row of ``top``."""

    pid: int  #: host pid
    container_pid: int
    ppid: int
    user: str
    command: str


class EventKind(enum.StrEnum):
    CREATED = "created"
    STARTED = "started"
    EXITED = "exited"  #: ``status`` set
    OOM = "oom"
    PAUSED = "paused"
    UNPAUSED = "unpaused"
    REMOVED = "removed"
    EXEC_EXITED = "exec_exited"  #: ``exec_id`` and ``status`` set


@dataclass(frozen=True)
class ContainerEvent:
    seq: int  #: increasing per supervisor; pass the last seen to ``events(since=)``
    kind: EventKind
    id: str
    time: str
    status: ExitStatus | None = None
    exec_id: str = ""


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    path: str  #: the host directory mounted into containers
    anonymous: bool
    created_at: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GcReport:
    removed_dirs: tuple[str, ...] = ()
    removed_cgroups: tuple[str, ...] = ()
    unmounted: tuple[str, ...] = ()
