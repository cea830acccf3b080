"""What the forked child does between ``fork`` and ``execve``.

Container init, in this order (each step's name is what a ``SpawnError``
reports as ``step``):

1.  ``cgroup``      join the container's cgroup (before the cgroup namespace,
                    so that namespace is rooted at the container's cgroup)
2.  ``namespaces``  setns into a given netns, then unshare mount, uts, ipc,
                    cgroup (and net for ``netns: none``, then bring ``lo`` up).
                    The pid namespace already exists: the supervisor unshared
                    it for its children just before forking, so this process
                    is PID 1 and the supervisor's own child.
3.  ``rootfs``      make / private (recursively), mount the overlay
4.  ``mounts``      /proc, /dev (+pts, shm, mqueue), /sys (ro), /etc files,
                    volumes (filled from the image on first use), binds,
                    tmpfs, the init binary; create the working directory
5.  ``user``        resolve user/groups in the container's /etc files
                    (still before pivot_root, through ``secure_join``);
    ``tty``         with ``tty``: a pty from the container's devpts, the
                    slave bound at /dev/console, the master sent back
6.  ``pivot_root``  pivot into the rootfs and detach the old root
7.  ``hostname``, ``sysctl``, then ``hardening``: the masked and read-only
    paths (after the sysctls, which write through /proc/sys), then the
    read-only root remount
8.  ``rlimits``, ``oom_score_adj``
9.  ``exec``        resolve the program in $PATH (Docker's error text)
10. ``privileges``  capability bounding set; seccomp (while CAP_SYS_ADMIN is
                    held, or last after no_new_privs); groups, gid, uid; the
                    final capability sets (runtime/capabilities.py explains)
11. stdio onto 0/1/2, default signal dispositions, every other fd
    close-on-exec, ``execve``.

The sync pipe is close-on-exec: EOF with no data tells the supervisor the
exec happened; a JSON error object before EOF tells it which step failed.
Nothing survives a failure: the mounts live in the child's private mount
namespace and vanish with it; the supervisor removes the rest.

``exec`` (a process in a running container) reuses steps 1, 2 (setns into
the init's namespaces instead of unshare; the supervisor joined the pid
namespace for its children before forking), 5 (``tty`` from the container's
/dev/ptmx), 8-11.

Why the order: the cgroup comes first so every later allocation is charged
to the container; the user is resolved before pivot_root, from the
container's files through ``secure_join`` (a symlinked /etc/passwd cannot
lead to the host's), so a bad user fails before anything irreversible; hardening comes after the
sysctls that need a writable /proc/sys; seccomp is last but one, so the
setup itself is not filtered, and before the user switch only when it still
needs CAP_SYS_ADMIN to be loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import signal
from dataclasses import dataclass, field

from pycompose.runtime import capabilities, hardening, syscalls
from pycompose.runtime.cgroups import join_cgroup
from pycompose.runtime.devices import setup_dev
from pycompose.runtime.errors import ContainerRuntimeError, SpawnError
from pycompose.runtime.mounts import (
    bind,
    make_mountpoint,
    mount_proc,
    mount_sys,
    mount_tmpfs,
    populate_volume,
)
from pycompose.runtime.namespaces import bring_loopback_up, join, unshare_flags
from pycompose.runtime.process import (
    apply_oom_score_adj,
    apply_rlimits,
    apply_sysctls,
    find_executable,
)
from pycompose.runtime.rootfs import (
    mount_overlay,
    pivot_into,
    remount_readonly_root,
    secure_join,
)
from pycompose.runtime.seccomp import CompiledFilter
from pycompose.runtime.spec import Security
from pycompose.runtime.users import ResolvedUser, resolve_user

INIT_PATH = "/dev/init"
_SYS_close_range = 436
CLOSE_RANGE_CLOEXEC = 4


@dataclass(frozen=True)
class PlannedMount:
    kind: str  #: bind | volume | tmpfs | file
    target: str
    source: str = ""  #: host path (a volume's data dir for volumes)
    read_only: bool = False
    populate: bool = False  #: volume: copy the image's content when empty
    size: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class InitPlan:
    """Everything the child needs, resolved by the supervisor before the fork."""

    name: str
    cdir: str
    layers: tuple[str, ...]
    argv: tuple[str, ...]
    env: tuple[str, ...]
    working_dir: str
    user: str
    group_add: tuple[str, ...]
    hostname: str
    domainname: str
    netns: str
    read_only: bool
    mounts: tuple[PlannedMount, ...]
    init_binary: str | None
    shm_size: int
    rlimits: tuple[tuple[int, int, int], ...]
    sysctls: dict[str, str]
    oom_score_adj: int | None
    cgroup_procs: tuple[str, ...]
    security: Security = field(default_factory=Security)
    caps: frozenset[str] = frozenset()  #: the container's capability set
    seccomp: CompiledFilter | None = None  #: compiled by the supervisor, loaded last
    tty: bool = False
    cgroup2: bool = False  #: mount the (namespaced) cgroup2 tree read-only at /sys/fs/cgroup
    #: host device nodes to recreate: (target, st_mode, st_rdev, uid, gid)
    devices: tuple[tuple[str, int, int, int, int], ...] = ()


@dataclass(frozen=True)
class ExecPlan:
    argv: tuple[str, ...]
    env: tuple[str, ...]
    working_dir: str
    user: str
    group_add: tuple[str, ...]
    rlimits: tuple[tuple[int, int, int], ...]
    cgroup_procs: tuple[str, ...]
    security: Security = field(default_factory=Security)
    caps: frozenset[str] = frozenset()
    seccomp: CompiledFilter | None = None
    tty_size: tuple[int, int] | None = None


class _Step:
    """Tracks the current step so an unexpected ``OSError`` is reported with it."""

    def __init__(self) -> None:
        self.name = "setup"

    def __call__(self, name: str) -> None:
        self.name = name
        syscalls.set_process_name(f"pc:{name[:11]}")


def _report(sync_w: int, step: str, exc: BaseException) -> None:
    if isinstance(exc, SpawnError):
        msg = {"step": exc.step or step, "path": exc.path, "message": str(exc)}
    elif isinstance(exc, OSError):
        msg = {"step": step, "path": exc.filename or "",
               "message": f"{step}: {exc.strerror or exc}"
                          + (f": {exc.filename}" if exc.filename else "")}
    elif isinstance(exc, ContainerRuntimeError):
        msg = {"step": step, "path": "", "message": str(exc)}
    else:
        msg = {"step": step, "path": "", "message": f"{step}: {type(exc).__name__}: {exc}"}
    with contextlib.suppress(OSError):
        os.write(sync_w, json.dumps(msg).encode())


def run_init(plan: InitPlan, sync_w: int, stdio: tuple[int, int, int],
             tty_sock: int = -1) -> None:
    """Child side of a container start; never returns.

    With ``plan.tty``, stdio is a terminal of the container's devpts (also bound
    at /dev/console); its master goes to the supervisor over ``tty_sock``.
    """
    gc.disable()  # a collection would touch (and copy) every page of the parent's heap
    step = _Step()
    try:
        step("cgroup")
        join_cgroup(plan.cgroup_procs)

        step("namespaces")
        if plan.netns not in ("none", "host"):
            fd = os.open(plan.netns, os.O_RDONLY | os.O_CLOEXEC)
            syscalls.setns(fd, syscalls.CLONE_NEWNET)
            os.close(fd)
        syscalls.unshare(unshare_flags(plan.netns))
        if plan.netns == "none":
            bring_loopback_up()

        step("rootfs")
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
        rootfs = mount_overlay(plan.layers, plan.cdir)

        step("mounts")
        mount_proc(rootfs)
        setup_dev(rootfs, plan.shm_size)
        mount_sys(rootfs)
        if plan.cgroup2:
            # Thanks to the cgroup namespace this shows the container's own
            # cgroup as the root (memory.max and friends, as on Docker).
            syscalls.mount("cgroup2", secure_join(rootfs, "/sys/fs/cgroup"), "cgroup2",
                           syscalls.MS_NOSUID | syscalls.MS_NOEXEC | syscalls.MS_NODEV
                           | syscalls.MS_RDONLY)
        for m in plan.mounts:
            _apply_mount(rootfs, m)
        for device in plan.devices:
            _make_device(rootfs, *device)
        if plan.init_binary:
            bind(plan.init_binary, rootfs, INIT_PATH, read_only=True, recursive=False)
        workdir = secure_join(rootfs, plan.working_dir)
        if not os.path.isdir(workdir):
            os.makedirs(workdir, 0o755, exist_ok=True)

        step("user")
        user = resolve_user(rootfs, plan.user, plan.group_add)
        if plan.tty:
            step("tty")
            slave = _open_pty(tty_sock, user.uid, None, devpts=os.path.join(rootfs, "dev"),
                              controlling=False)
            console = os.path.join(rootfs, "dev", "console")
            make_mountpoint(console, is_dir=False)
            syscalls.mount(f"/proc/self/fd/{slave}", console, None, syscalls.MS_BIND)
            stdio = (slave, slave, slave)

        step("pivot_root")
        pivot_into(rootfs)

        step("hostname")
        if plan.hostname:
            syscalls.sethostname(plan.hostname)
        if plan.domainname:
            syscalls.setdomainname(plan.domainname)
        step("sysctl")
        apply_sysctls(plan.sysctls)
        step("hardening")
        _harden(plan.security)
        if plan.read_only:
            remount_readonly_root()

        step("rlimits")
        apply_rlimits(plan.rlimits)
        apply_oom_score_adj(plan.oom_score_adj)

        if plan.tty:
            os.setsid()
            import fcntl

            fcntl.ioctl(stdio[0], TIOCSCTTY, 0)
        argv = list(plan.argv)
        _finish(step, plan.working_dir, argv, list(plan.env), user, plan, sync_w,
                stdio, init=bool(plan.init_binary))
    except BaseException as exc:  # noqa: B036 - the child must report and exit, whatever happened
        _report(sync_w, step.name, exc)
    os._exit(127)


def run_exec(plan: ExecPlan, ns_fds: list[tuple[int, int]], sync_w: int,
             stdio: tuple[int, int, int], tty_sock: int = -1) -> None:
    """Child side of an exec: join the container, then as for init; never returns.

    With ``tty_sock``, the process gets a pseudo-terminal of the container's own
    devpts instance as its controlling terminal and stdio; the master end goes
    back to the supervisor over ``tty_sock``.
    """
    gc.disable()
    step = _Step()
    try:
        step("cgroup")
        join_cgroup(plan.cgroup_procs)
        step("namespaces")
        join(ns_fds)
        os.chdir("/")
        step("user")
        user = resolve_user("/", plan.user, plan.group_add)
        if tty_sock >= 0:
            step("tty")
            slave = _open_pty(tty_sock, user.uid, plan.tty_size)
            stdio = (slave, slave, slave)
        step("rlimits")
        apply_rlimits(plan.rlimits)
        _finish(step, plan.working_dir, list(plan.argv), list(plan.env), user, plan,
                sync_w, stdio, init=False)
    except BaseException as exc:  # noqa: B036
        _report(sync_w, step.name, exc)
    os._exit(127)


TIOCSPTLCK, TIOCGPTN, TIOCSCTTY, TIOCSWINSZ = 0x40045431, 0x80045430, 0x540E, 0x5414


def _open_pty(tty_sock: int, uid: int, size: tuple[int, int] | None, *, devpts: str = "/dev",
              controlling: bool = True) -> int:
    """A pty pair from the container's ptmx; send the master, keep the slave."""
    import fcntl
    import socket
    import struct

    master = os.open(f"{devpts}/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    slave = os.open(f"{devpts}/pts/{number}", os.O_RDWR | os.O_NOCTTY)
    os.fchown(slave, uid, -1)
    if size:
        fcntl.ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    with socket.socket(fileno=os.dup(tty_sock)) as sock:
        socket.send_fds(sock, [b"m"], [master])
    os.close(master)
    os.close(tty_sock)
    if controlling:
        os.setsid()
        fcntl.ioctl(slave, TIOCSCTTY, 0)
    return slave


def _apply_mount(rootfs: str, m: PlannedMount) -> None:
    if m.kind == "tmpfs":
        mount_tmpfs(rootfs, m.target, size=m.size, mode=m.mode, read_only=m.read_only)
        return
    if m.kind == "bind" and not os.path.exists(m.source):
        raise SpawnError(f"bind source path does not exist: {m.source}", step="mounts",
                         path=m.source)
    if m.populate:
        populate_volume(rootfs, m.target, m.source)
    if m.kind == "file":
        dest = secure_join(rootfs, m.target)
        if os.path.isdir(dest):
            raise SpawnError(f"cannot mount file {m.source} over directory {m.target}",
                             step="mounts", path=m.target)
        make_mountpoint(dest, is_dir=False)
    bind(m.source, rootfs, m.target, read_only=m.read_only)


def _make_device(rootfs: str, target: str, mode: int, rdev: int, uid: int, gid: int) -> None:
    """A host device's node at ``target`` (the device cgroup decides what it may do)."""
    path = secure_join(rootfs, target)
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    os.mknod(path, mode, rdev)
    os.chmod(path, mode & 0o7777)  # mknod's mode went through the umask
    os.chown(path, uid, gid)


def _harden(security: Security) -> None:
    """Masked and read-only paths, as Docker (none when privileged or unmasked)."""
    masked, readonly = hardening.paths_for(security.privileged, security.unmask_system_paths)
    hardening.apply_paths("/", masked, readonly)


def _finish(step: _Step, working_dir: str, argv: list[str], env: list[str],
            user: ResolvedUser, plan: InitPlan | ExecPlan, sync_w: int,
            stdio: tuple[int, int, int], *, init: bool) -> None:
    security = plan.security
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    step("exec")
    try:
        os.chdir(working_dir)
    except OSError as exc:
        raise SpawnError(f"chdir to working directory {working_dir}: {exc.strerror}",
                         step="exec", path=working_dir) from None
    exe = find_executable(argv[0], env)
    if init:
        exe, argv = INIT_PATH, [INIT_PATH, "-g", "--", *argv]

    step("privileges")
    # Order from runtime/capabilities.py: bounding set and KEEPCAPS, seccomp
    # while CAP_SYS_ADMIN is still held (unless no_new_privs allows loading it
    # unprivileged, then it goes last), the user switch, the final capset.
    capabilities.before_user_switch(plan.caps)
    step("seccomp")
    if plan.seccomp is not None and not security.no_new_privileges:
        plan.seccomp.load()
    step("privileges")
    os.setgroups(list(user.groups))
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    capabilities.after_user_switch(plan.caps, user.uid)
    if security.no_new_privileges:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        step("seccomp")
        if plan.seccomp is not None:
            plan.seccomp.load()

    for i, fd in enumerate(stdio):
        if fd != i:
            os.dup2(fd, i, inheritable=True)
        else:
            os.set_inheritable(fd, True)
    # Handlers reset themselves at exec; ignored signals do not: Python ignores
    # SIGPIPE and SIGXFSZ, and the program must not inherit that.
    for sig in _IGNORED_BY_PYTHON:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _close_range_cloexec(3)
    environ = {}
    for entry in env:
        key, _, value = entry.partition("=")
        environ[key] = value
    os.execve(exe, argv, environ)


_libc = ctypes.CDLL(None, use_errno=True)
_IGNORED_BY_PYTHON = (signal.SIGPIPE, signal.SIGXFSZ)


def _close_range_cloexec(first: int) -> None:
    if _libc.syscall(_SYS_close_range, first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC) == 0:
        return
    os.closerange(first, 65536)  # old kernels; the sync pipe is lost too, which is fine
