"""The supervisor: one single-threaded, event-driven process per state root.

It is the parent of every container's init (a child subreaper too, for
processes orphaned inside containers), so it always collects exit statuses;
it holds the read ends of the containers' stdout/stderr pipes and writes the
json-file logs; it answers the clients of ``runtime/client.py`` on a unix
socket (``<root>/supervisor.sock``, mode 0600).

Everything is driven by one ``selectors`` loop: the listening socket and the
client connections, a self-pipe woken by SIGCHLD (then ``waitpid`` until
nothing is left), pidfds of re-adopted containers (not our children: their
exit code is lost and reported as unknown), the log pipes, the spawn sync
pipes, and a timer heap for stop grace periods. No sleeps, no threads, no
trio: the process forks, so it must stay single-threaded.

State lives in ``<root>/containers/<id>/`` (see ``runtime/state.py``); a new
supervisor re-adopts running containers from there, checking each pid's
start time so a re-used pid is never mistaken for a container.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import json
import logging
import os
import pwd
import secrets
import selectors
import shutil
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pycompose.runtime import capabilities, cgroups, seccomp, syscalls
from pycompose.runtime.errors import (
    CgroupError,
    ContainerError,
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerStateError,
    SpawnError,
)
from pycompose.runtime.imageconfig import parse_signal, resolve_process
from pycompose.runtime.logs import LogWriter, rfc3339_nano
from pycompose.runtime.namespaces import open_namespaces
from pycompose.runtime.process import check_sysctls, clamp_ulimits
from pycompose.runtime.rootfs import container_dir, prepare_dirs
from pycompose.runtime.spec import (
    ContainerEvent,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    ContainerStatus,
    EventKind,
    ExitStatus,
    MountType,
    ProcessInfo,
)
from pycompose.runtime.state import (
    ContainerState,
    Record,
    load,
    process_start_time,
    save_spec,
    save_state,
)
from pycompose.runtime.supervisor import protocol as P
from pycompose.runtime.supervisor.fdkeeper import Keeper
from pycompose.runtime.supervisor.spawn import ExecPlan, InitPlan, PlannedMount, run_exec, run_init
from pycompose.runtime.volumes import anonymous_volume, ensure_volume, remove_volume

log = logging.getLogger("pycompose.supervisor")

SOCKET_NAME = "supervisor.sock"
INIT_BINARY = "/usr/bin/catatonit"
EVENTS_KEPT = 1000
IDLE_CLEANUP_DELAY = 0.2  #: seconds without events before trash is deleted
_ID_CHARS = set("0123456789abcdef")


def _read_sync(fd: int, data: bytearray) -> bool:
    """Append what a child's sync pipe holds to ``data``; True once the pipe is at EOF
    (the child exec'd or died: the message, if any, is complete)."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return False
    data += chunk
    return not chunk


def _output_fds(tty: bool) -> tuple[int, int, int, int, int, int]:
    """``(tty_parent, tty_child, out_r, out_w, err_r, err_w)`` for a new process.

    Without a tty: a pipe each for stdout and stderr. With one: a socketpair over
    which the child sends back the pty master it opens in the container's devpts;
    its stdout/stderr then go to /dev/null and there is nothing to read (-1).
    """
    if tty:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_w = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
        return a.detach(), b.detach(), -1, out_w, -1, os.dup(out_w)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    return -1, -1, out_r, out_w, err_r, err_w


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    rbuf: bytes = b""
    out: deque[tuple[bytes, list[int]]] = field(default_factory=deque)
    subscribed: bool = False
    closed: bool = False


Reply = tuple[Conn, int]


@dataclass
class Ctr:
    rec: Record
    cdir: str
    cgroup: cgroups.Cgroup | None = None
    is_child: bool = False
    pidfd: int = -1
    log: LogWriter | None = None
    pipes: dict[int, str] = field(default_factory=dict)  #: read fd → stream name
    waiters: list[Reply] = field(default_factory=list)
    stoppers: list[Reply] = field(default_factory=list)
    stop_timer: int | None = None
    starting: tuple[Reply, int, bytearray] | None = None  #: (reply, sync fd, data)
    spawn_failed: bool = False  #: the current child failed before exec
    remove_after_exit: list[tuple[Reply, bool]] = field(default_factory=list)
    caps: frozenset[str] = frozenset()
    seccomp: seccomp.CompiledFilter | None = None
    plan: InitPlan | None = None
    tty_sock: int = -1  #: a starting tty container's master arrives on it
    stdin_w: int = -1  #: write end of an open stdin (``stdin_open`` without tty)
    process_user: str = ""
    process_env: tuple[str, ...] = ()
    working_dir: str = "/"
    rlimits: tuple[tuple[int, int, int], ...] = ()

    @property
    def id(self) -> str:
        return str(self.rec.spec.id)


@dataclass
class ExecProc:
    exec_id: str
    cid: str
    pid: int
    starting: tuple[Reply, int, bytearray, list[int], bool] | None
    status: ExitStatus | None = None
    waiters: list[Reply] = field(default_factory=list)
    tty_sock: int = -1  #: the master of the exec's pty arrives on it
    pty_master: int = -1  #: kept for resizing


class Supervisor:
    def __init__(self, root: str, instance: str, keeper: Keeper | None = None) -> None:
        self.keeper = keeper
        self._keeper_ops: list[tuple[str, list[int]]] = []  #: (key, fds); no fds = drop
        self._missing_caps: frozenset[str] | None = None
        self.root = os.path.abspath(root)
        self.instance = instance
        self.parent_cgroup = f"pycompose_{instance}" if instance else "pycompose"
        self.sel = selectors.DefaultSelector()
        self.containers: dict[str, Ctr] = {}
        self.by_pid: dict[int, Ctr] = {}
        self.execs: dict[str, ExecProc] = {}
        self.exec_by_pid: dict[int, ExecProc] = {}
        self.conns: set[Conn] = set()
        self.events: deque[ContainerEvent] = deque(maxlen=EVENTS_KEPT)
        self.event_seq = 0
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.cancelled_timers: set[int] = set()
        self.timer_ids = itertools.count(1)
        self.running = True
        self.layout: cgroups.CgroupLayout | None = None
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.trash = os.path.join(self.root, "trash")
        self.trash_pending = True  # leftovers of an earlier supervisor, if any
        for sub in ("containers", "volumes", "trash"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)

    # -- setup ------------------------------------------------------------------------

    def listen(self) -> None:
        dirfd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        path = f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.lsock.bind(path)
        finally:
            os.umask(old)
            os.close(dirfd)
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, self._accept)

    def install_signals(self) -> None:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sig_r = r
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.sel.register(r, selectors.EVENT_READ, self._on_signal)

    def adopt(self) -> None:
        """Load every record; re-adopt containers whose init still runs."""
        base = os.path.join(self.root, "containers")
        parked = self.keeper.take_all() if self.keeper is not None else {}
        for cid in sorted(os.listdir(base)):
            cdir = os.path.join(base, cid)
            rec = load(cdir)
            if rec is None:
                continue
            ctr = Ctr(rec=rec, cdir=cdir)
            try:
                self._prepare_process(ctr)
            except ContainerRuntimeError as exc:
                log.warning("container %s: %s", cid[:12], exc)
            self.containers[cid] = ctr
            st = rec.state
            if st.status not in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
                self._kill_half_started(cdir)
            if st.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED) and st.pid:
                if process_start_time(st.pid) == st.pid_start_time and st.pid_start_time:
                    try:
                        ctr.pidfd = os.pidfd_open(st.pid)
                    except OSError:
                        ctr.pidfd = -1
                if ctr.pidfd >= 0:
                    self.by_pid[st.pid] = ctr
                    ctr.cgroup = self._recorded_cgroup(ctr)
                    self._attach_pipes(ctr, parked.pop(cid, []))
                    stdin = parked.pop(cid + ".stdin", [])
                    if stdin:
                        ctr.stdin_w = stdin[0]
                        os.set_inheritable(ctr.stdin_w, False)
                    self.sel.register(ctr.pidfd, selectors.EVENT_READ,
                                      lambda _m, c=ctr: self._on_adopted_exit(c))
                    log.info("re-adopted %s (pid %d)", cid[:12], st.pid)
                else:
                    self._attach_pipes(ctr, parked.pop(cid, []))
                    self._drain_logs(ctr)
                    self._record_exit(ctr, ExitStatus(code=None, exited_at=rfc3339_nano()))
        for cid, fds in parked.items():
            # Pipes of containers without a record: forget them.
            for fd in fds:
                os.close(fd)
            self._unpark(cid)

    @staticmethod
    def _kill_half_started(cdir: str) -> None:
        """Kill an init a crashed supervisor forked but never recorded as started."""
        try:
            with open(os.path.join(cdir, "init.pid")) as fh:
                pid_text, start_text = fh.read().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return
        if start_text != "None" and process_start_time(pid) == int(start_text):
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                return
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)
            log.warning("killed half-started init %d of %s", pid, os.path.basename(cdir))

    def _attach_pipes(self, ctr: Ctr, fds: list[int]) -> None:
        """Resume log capture on pipes a previous supervisor parked in the keeper."""
        if not fds:
            return
        if ctr.log is None:
            ctr.log = LogWriter(self._log_path(ctr), ctr.rec.spec.log.max_size,
                                ctr.rec.spec.log.max_file)
        for fd, name in zip(fds, ("stdout", "stderr"), strict=False):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
            ctr.pipes[fd] = name
            self.sel.register(fd, selectors.EVENT_READ,
                              lambda _m, c=ctr, f=fd: self._on_log(c, f))

    # -- loop -------------------------------------------------------------------------

    def serve(self) -> None:
        while self.running:
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            if self.trash_pending:
                # Deleting removed containers' directories waits for a quiet moment.
                timeout = IDLE_CLEANUP_DELAY if timeout is None else min(timeout,
                                                                         IDLE_CLEANUP_DELAY)
            ready = self.sel.select(timeout)
            for key, mask in ready:
                try:
                    key.data(mask)
                except Exception:
                    log.exception("handler failed")
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, tid, cb = heapq.heappop(self.timers)
                if tid in self.cancelled_timers:
                    self.cancelled_timers.discard(tid)
                    continue
                try:
                    cb()
                except Exception:
                    log.exception("timer failed")
            if self._keeper_ops:
                self._flush_keeper()
            if not ready and self.trash_pending:
                self._empty_trash(one=True)

    # -- the fd keeper -------------------------------------------------------------------
    # Parking is queued and sent at the end of the loop turn, after the replies:
    # a message to another process costs a context switch, and the spawn path
    # must not wait for it. A put and a drop of one key in the same turn cancel.

    def _park(self, key: str, fds: list[int]) -> None:
        if self.keeper is not None:
            self._keeper_ops.append((key, list(fds)))

    def _unpark(self, key: str) -> None:
        if self.keeper is None:
            return
        for i in range(len(self._keeper_ops) - 1, -1, -1):
            if self._keeper_ops[i][0] == key:
                if self._keeper_ops[i][1]:
                    del self._keeper_ops[i]  # never sent: nothing to drop
                    return
                break
        self._keeper_ops.append((key, []))

    def _flush_keeper(self) -> None:
        ops, self._keeper_ops = self._keeper_ops, []
        assert self.keeper is not None
        for key, fds in ops:
            try:
                if fds:
                    self.keeper.put(key, fds)
                else:
                    self.keeper.drop(key)
            except OSError as exc:
                log.error("fd keeper: %s %s: %s", "put" if fds else "drop", key, exc)

    def _add_timer(self, delay: float, cb: Callable[[], None]) -> int:
        tid = next(self.timer_ids)
        heapq.heappush(self.timers, (time.monotonic() + delay, tid, cb))
        return tid

    def _empty_trash(self, one: bool = False) -> list[str]:
        removed = []
        try:
            names = os.listdir(self.trash)
        except FileNotFoundError:
            names = []
        for name in names[:1] if one else names:
            path = os.path.join(self.trash, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        self.trash_pending = len(names) > len(removed)
        return removed

    # -- connections --------------------------------------------------------------------

    def _accept(self, _mask: int) -> None:
        try:
            sock, _ = self.lsock.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns.add(conn)
        self.sel.register(sock, selectors.EVENT_READ, lambda m, c=conn: self._on_conn(c, m))

    def _on_conn(self, conn: Conn, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if not mask & selectors.EVENT_READ or conn.closed:
            return
        try:
            data = conn.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_conn(conn)
            return
        conn.rbuf += data
        while b"\n" in conn.rbuf and not conn.closed:
            line, conn.rbuf = conn.rbuf.split(b"\n", 1)
            self._handle_line(conn, line)

    def _close_conn(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.conns.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        for _, fds in conn.out:
            for fd in fds:
                os.close(fd)
        conn.out.clear()
        conn.sock.close()

    def _send(self, conn: Conn, data: bytes, fds: list[int] | None = None) -> None:
        if conn.closed:
            for fd in fds or ():
                os.close(fd)
            return
        conn.out.append((data, list(fds or ())))
        self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        while conn.out and not conn.closed:
            data, fds = conn.out[0]
            try:
                if fds:
                    n = conn.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                    _pack_fds(fds))])
                    for fd in fds:
                        os.close(fd)
                else:
                    n = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close_conn(conn)
                return
            if n < len(data):
                conn.out[0] = (data[n:], [])
            else:
                conn.out.popleft()
        if conn.closed:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(conn.sock, events, self.sel.get_key(conn.sock).data)

    def _reply(self, to: Reply, result: Any, fds: list[int] | None = None) -> None:
        conn, seq = to
        self._send(conn, P.encode_reply(seq, result, len(fds or ())), fds)

    def _fail(self, to: Reply, exc: BaseException) -> None:
        conn, seq = to
        self._send(conn, P.encode_error(seq, exc))

    def _handle_line(self, conn: Conn, line: bytes) -> None:
        seq = 0
        try:
            msg = json.loads(line)
            seq = int(msg.get("seq", 0))
            req = P.decode_request(msg)
        except (ValueError, TypeError, KeyError) as exc:
            self._fail((conn, seq), ContainerRuntimeError(f"bad request: {exc}"))
            return
        handler = getattr(self, "op_" + req.op)
        try:
            handler((conn, seq), req)
        except ContainerRuntimeError as exc:
            self._fail((conn, seq), exc)
        except Exception as exc:
            log.exception("request %s failed", req.op)
            self._fail((conn, seq), ContainerRuntimeError(f"{req.op}: internal error: {exc}"))

    def _emit(self, kind: EventKind, cid: str, status: ExitStatus | None = None,
              exec_id: str = "") -> None:
        self.event_seq += 1
        ev = ContainerEvent(seq=self.event_seq, kind=kind, id=cid, time=rfc3339_nano(),
                            status=status, exec_id=exec_id)
        self.events.append(ev)
        data = P.encode_event(ev)
        for conn in list(self.conns):
            if conn.subscribed:
                self._send(conn, data)

    # -- helpers --------------------------------------------------------------------------

    def _get(self, cid: str) -> Ctr:
        ctr = self.containers.get(cid)
        if ctr is None:
            matches = [c for k, c in self.containers.items()
                       if k.startswith(cid) or c.rec.spec.name == cid] if cid else []
            if len(matches) == 1:
                return matches[0]
            raise ContainerNotFoundError(f"no such container: {cid}")
        return ctr

    def _cgroup(self, cid: str) -> cgroups.Cgroup | None:
        if self.layout is None:
            try:
                self.layout = cgroups.detect_layout()
            except CgroupError as exc:
                log.warning("no cgroups: %s", exc)
                return None
        return cgroups.open_cgroup(self.layout, self.parent_cgroup, cid)

    def _recorded_cgroup(self, ctr: Ctr) -> cgroups.Cgroup | None:
        """The cgroup where the container's record says it is (this supervisor may run
        in another cgroup than the one that created it); records without one: ours."""
        record = ctr.rec.state.cgroup
        if record:
            try:
                return cgroups.cgroup_from_record(record)
            except CgroupError as exc:
                log.warning("container %s: %s", ctr.id[:12], exc)
        return self._cgroup(ctr.id)

    def _make_cgroup(self, ctr_spec: ContainerSpec, cg: cgroups.Cgroup,
                     device_rules: tuple[cgroups.DeviceRule, ...]) -> None:
        cg.create()
        cg.apply(cgroups.Resources(devices=device_rules, **{
            k: getattr(ctr_spec.resources, k) for k in (
                "memory", "memory_swap", "memory_reservation", "cpus", "cpu_quota",
                "cpu_period", "cpu_shares", "cpuset_cpus", "cpuset_mems", "pids_limit")}))

    def _info(self, ctr: Ctr) -> ContainerInfo:
        st = ctr.rec.state
        return ContainerInfo(
            id=ctr.id, name=ctr.rec.spec.name, status=st.status,
            pid=st.pid if st.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED) else None,
            created_at=st.created_at, started_at=st.started_at, exit=st.exit,
            warnings=st.warnings, log_path=self._log_path(ctr), labels=ctr.rec.spec.labels,
            restart_count=st.restart_count,
            anonymous_volumes={m.target: m.source for m in ctr.rec.spec.mounts
                               if m.type is MountType.VOLUME
                               and m.source in st.anonymous_volumes})

    def _log_path(self, ctr: Ctr) -> str:
        return os.path.join(ctr.cdir, f"{ctr.id}-json.log")

    def _save(self, ctr: Ctr) -> None:
        save_state(ctr.cdir, ctr.rec.state)

    def _unavailable_caps(self) -> frozenset[str]:
        """Capabilities this process lacks (fixed for its lifetime: read once)."""
        if self._missing_caps is None:
            self._missing_caps = capabilities.unavailable(capabilities.all_capabilities())
        return self._missing_caps

    def _prepare_process(self, ctr: Ctr) -> list[str]:
        """Resolve what every start and exec of ``ctr`` needs; returns warnings."""
        spec = ctr.rec.spec
        proc = resolve_process(spec)
        ctr.process_user = proc.user
        ctr.process_env = proc.env
        ctr.working_dir = proc.working_dir
        ctr.rlimits, warnings = clamp_ulimits(spec.ulimits)
        sec = spec.security
        ctr.caps = capabilities.resolve_capabilities(sec.cap_add, sec.cap_drop, sec.privileged)
        missing = ctr.caps & self._unavailable_caps()
        if missing and not sec.privileged:
            warnings = (*warnings, "capabilities the host does not grant were left out: "
                        + ", ".join(sorted(missing)))
        ctr.caps = frozenset(ctr.caps - missing)
        # Compiled once here (cached per profile and capability set); the
        # child only loads the ready program.
        profile = None if sec.privileged else seccomp.resolve_profile(sec.seccomp)
        ctr.seccomp = seccomp.compile_profile(profile, ctr.caps) if profile else None
        return list(warnings)

    # -- create ---------------------------------------------------------------------------

    def op_hello(self, to: Reply, req: P.Hello) -> None:
        self._reply(to, {"pid": os.getpid(), "root": self.root, "instance": self.instance,
                         "protocol": P.PROTOCOL_VERSION})

    def op_create(self, to: Reply, req: P.Create) -> None:
        spec = req.spec
        if len(spec.id) != 64 or not set(spec.id) <= _ID_CHARS:
            raise ContainerError(f"container id {spec.id!r}: must be 64 lowercase hex digits")
        if spec.id in self.containers:
            raise ContainerStateError(f"container {spec.id[:12]} already exists")
        if not spec.layers:
            raise ContainerError(f"container {spec.name}: no image layers")
        for layer in spec.layers:
            if not os.path.isdir(layer):
                raise ContainerError(f"container {spec.name}: image layer {layer} is missing")
        probe = Ctr(rec=Record(spec=spec, state=ContainerState(
            status=ContainerStatus.CREATED, created_at="")), cdir="")
        warnings = tuple(self._prepare_process(probe))  # validates before anything is made
        check_sysctls(dict(spec.sysctls), host_network=spec.netns == "host")
        if spec.netns not in ("none", "host") and not os.path.exists(spec.netns):
            raise ContainerError(f"container {spec.name}: network namespace {spec.netns} "
                                 "does not exist")
        if spec.init and not os.path.exists(INIT_BINARY):
            raise ContainerError(f"init: true needs {INIT_BINARY} (Debian package catatonit)")
        device_rules = _device_rules(spec)  # validates the devices before anything is made
        cdir = container_dir(self.root, spec.id)
        # Anonymous volumes: the spec's, plus the image's VOLUMEs not covered by a mount.
        anon: list[str] = []  #: every anonymous volume it mounts
        made: list[str] = []  #: those made here (removed again if the create fails)
        mounts = list(spec.mounts)
        targets = {m.target.rstrip("/") for m in mounts}
        from pycompose.runtime.spec import Mount
        for path in spec.image.volumes:
            if path.rstrip("/") not in targets:
                mounts.append(Mount(MountType.VOLUME, path))
        resolved_mounts = []
        try:
            os.makedirs(cdir, exist_ok=False)
            prepare_dirs(cdir)
            for m in mounts:
                if m.type is MountType.VOLUME and not m.source:
                    name = anonymous_volume(self.root)
                    anon.append(name)
                    made.append(name)
                    m = replace(m, source=name)
                elif m.type is MountType.VOLUME:
                    if ensure_volume(self.root, m.source).anonymous:
                        anon.append(m.source)  # carried over from a replaced container
                elif m.type is MountType.BIND:
                    if not os.path.isabs(m.source):
                        raise ContainerError(f"container {spec.name}: bind source "
                                             f"{m.source!r} must be an absolute path")
                    if not os.path.exists(m.source):
                        if not m.create_host_path:
                            raise ContainerError(f"container {spec.name}: bind source path "
                                                 f"does not exist: {m.source}")
                        os.makedirs(m.source, exist_ok=True)
                resolved_mounts.append(m)
            for fname, etc in (("hosts", spec.etc_hosts), ("resolv.conf", spec.resolv_conf),
                               ("hostname", spec.etc_hostname)):
                content = _etc_content(fname, etc, spec)
                if content is not None:
                    with open(os.path.join(cdir, fname), "w") as fh:
                        fh.write(content)
            cg = self._cgroup(spec.id)
            if cg is not None:
                self._make_cgroup(spec, cg, device_rules)
            spec = replace(spec, mounts=tuple(resolved_mounts))
            rec = Record(spec=spec, state=ContainerState(
                status=ContainerStatus.CREATED, created_at=rfc3339_nano(), warnings=warnings,
                anonymous_volumes=tuple(anon), cgroup=cg.to_record() if cg else None))
            save_spec(cdir, spec)
            save_state(cdir, rec.state)
        except BaseException:
            self._discard_dir(cdir)
            for name in made:
                remove_volume(self.root, name)
            cg = self._cgroup(spec.id)
            if cg is not None:
                with contextlib.suppress(CgroupError):
                    cg.remove(kill=True)
            raise
        ctr = Ctr(rec=rec, cdir=cdir, cgroup=cg, caps=probe.caps, seccomp=probe.seccomp,
                  process_user=probe.process_user, process_env=probe.process_env,
                  working_dir=probe.working_dir, rlimits=probe.rlimits)
        self.containers[spec.id] = ctr
        self._emit(EventKind.CREATED, spec.id)
        self._reply(to, self._info(ctr))

    def _discard_dir(self, path: str) -> None:
        if not os.path.exists(path):
            return
        dest = os.path.join(self.trash, f"{os.path.basename(path)}-{secrets.token_hex(4)}")
        try:
            os.rename(path, dest)
            self.trash_pending = True
        except OSError:
            shutil.rmtree(path, ignore_errors=True)

    # -- start ----------------------------------------------------------------------------

    def _plan(self, ctr: Ctr) -> InitPlan:
        spec = ctr.rec.spec
        planned: list[PlannedMount] = []
        for fname, target in (("hosts", "/etc/hosts"), ("resolv.conf", "/etc/resolv.conf"),
                              ("hostname", "/etc/hostname")):
            src = os.path.join(ctr.cdir, fname)
            if os.path.exists(src):
                planned.append(PlannedMount("file", target, src, read_only=False))
        for m in sorted(spec.mounts, key=lambda m: m.target.rstrip("/").count("/")):
            if m.type is MountType.TMPFS:
                planned.append(PlannedMount("tmpfs", m.target, read_only=m.read_only,
                                            size=m.tmpfs_size, mode=m.tmpfs_mode))
            elif m.type is MountType.VOLUME:
                planned.append(PlannedMount("volume", m.target,
                                            os.path.join(self.root, "volumes", m.source, "_data"),
                                            read_only=m.read_only, populate=not m.nocopy))
            else:
                planned.append(PlannedMount("bind", m.target, m.source, read_only=m.read_only))
        return InitPlan(
            name=spec.name, cdir=ctr.cdir, layers=spec.layers, argv=resolve_process(spec).argv,
            env=ctr.process_env, working_dir=ctr.working_dir, user=ctr.process_user,
            group_add=spec.group_add, hostname=spec.hostname or spec.id[:12],
            domainname=spec.domainname, netns=spec.netns, read_only=spec.read_only,
            mounts=tuple(planned), init_binary=INIT_BINARY if spec.init else None,
            shm_size=spec.shm_size, rlimits=ctr.rlimits, sysctls=dict(spec.sysctls),
            oom_score_adj=spec.oom_score_adj,
            cgroup_procs=ctr.cgroup.procs_files() if ctr.cgroup else (),
            security=spec.security, caps=ctr.caps, seccomp=ctr.seccomp, tty=spec.tty,
            devices=_planned_devices(spec),
            cgroup2=self.layout is not None and self.layout.mode == "unified"
            and not spec.security.privileged)

    def op_start(self, to: Reply, req: P.Start) -> None:
        ctr = self._get(req.id)
        st = ctr.rec.state
        if ctr.starting is not None:
            raise ContainerStateError(f"container {ctr.rec.spec.name} is already starting")
        if not st.status.can_start():
            raise ContainerStateError(f"container {ctr.rec.spec.name} is {st.status.value}")
        if ctr.cgroup is None:  # first start since this supervisor loaded the record
            ctr.cgroup = self._recorded_cgroup(ctr)
            if ctr.cgroup is not None and not ctr.cgroup.exists():
                # Gone (a host reboot, a hand-made cleanup): made again, limits and all.
                self._make_cgroup(ctr.rec.spec, ctr.cgroup, _device_rules(ctr.rec.spec))
                ctr.rec.state.cgroup = ctr.cgroup.to_record()
        if ctr.plan is None:  # the spec never changes: build the child's plan once
            ctr.plan = self._plan(ctr)
        plan = ctr.plan
        if ctr.log is None:
            ctr.log = LogWriter(self._log_path(ctr), ctr.rec.spec.log.max_size,
                                ctr.rec.spec.log.max_file)
        spec = ctr.rec.spec
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        # With a tty, the terminal comes from the container's own devpts; the child
        # sends its master back, and that is what logs are read from.
        tty_parent, tty_child, out_r, out_w, err_r, err_w = _output_fds(spec.tty)
        stdin_w = -1
        if spec.stdin_open and not spec.tty:
            null, stdin_w = os.pipe2(os.O_CLOEXEC)  # open for attach, never EOF by itself
        else:
            null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        oom_before = 0
        if ctr.cgroup is not None and st.started_at:  # a cgroup never used has none
            with contextlib.suppress(CgroupError):
                oom_before = ctr.cgroup.oom_kill_count()
        # unshare(CLONE_NEWPID) only changes where *children* go: the next fork
        # is PID 1 of a new namespace; then this process returns to its own.
        syscalls.unshare(syscalls.CLONE_NEWPID)
        try:
            pid = os.fork()
        except BaseException:
            syscalls.setns(self.own_pidns, syscalls.CLONE_NEWPID)
            for fd in (sync_r, sync_w, out_r, out_w, err_r, err_w, null, stdin_w, tty_parent,
                       tty_child):
                if fd >= 0:
                    os.close(fd)
            raise
        if pid == 0:
            try:
                for fd in (sync_r, out_r, err_r, stdin_w, tty_parent):
                    if fd >= 0:
                        os.close(fd)
                run_init(plan, sync_w, (null, out_w, err_w), tty_child)
            finally:
                os._exit(127)
        syscalls.setns(self.own_pidns, syscalls.CLONE_NEWPID)
        for fd in (sync_w, out_w, err_w, null, tty_child):
            if fd >= 0:
                os.close(fd)
        ctr.tty_sock = tty_parent
        if stdin_w >= 0:
            ctr.stdin_w = stdin_w
            self._park(ctr.id + ".stdin", [stdin_w])
        ctr.is_child = True
        self.by_pid[pid] = ctr
        st.pid = pid
        st.pid_start_time = process_start_time(pid)
        # Until the start completes, state.json does not name this process; a
        # supervisor crash in between would leave it unknown. This one small
        # write lets the next supervisor find and kill such a half-started init.
        with contextlib.suppress(OSError), open(os.path.join(ctr.cdir, "init.pid"), "w") as fh:
            fh.write(f"{pid} {st.pid_start_time}")
        st.oom_count = oom_before
        st.stopping = False
        if out_r >= 0:
            self._park(ctr.id, [out_r, err_r])
            for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
                self._watch_log_fd(ctr, fd, name)
        ctr.starting = (to, sync_r, bytearray())
        self.sel.register(sync_r, selectors.EVENT_READ, lambda _m, c=ctr: self._on_sync(c))

    def _on_sync(self, ctr: Ctr) -> None:
        assert ctr.starting is not None
        _, fd, data = ctr.starting
        if _read_sync(fd, data):
            self._finish_start(ctr)

    def _finish_start(self, ctr: Ctr) -> None:
        """The sync pipe is at EOF (or the child is dead): exec'd, or failed before."""
        assert ctr.starting is not None
        to, fd, data = ctr.starting
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                data += chunk
        self.sel.unregister(fd)
        os.close(fd)
        ctr.starting = None
        st = ctr.rec.state
        if ctr.tty_sock >= 0:
            with socket.socket(fileno=ctr.tty_sock) as sock:
                ctr.tty_sock = -1
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    _msg, got, _flags, _addr = socket.recv_fds(sock, 16, 1)
                    if got:
                        self._park(ctr.id, [got[0]])
                        self._watch_log_fd(ctr, got[0], "stdout")
        if data:
            try:
                err = json.loads(bytes(data))
            except ValueError:
                err = {"message": bytes(data).decode(errors="replace"), "step": "", "path": ""}
            exc = SpawnError(f"container {ctr.rec.spec.name}: {err['message']}",
                             step=err.get("step", ""), path=err.get("path", ""))
            # The child exits 127 and is reaped by _reap; state stays as before the start.
            st.pid_start_time = None
            ctr.spawn_failed = True
            self._fail(to, exc)
            return
        was_started = bool(st.started_at)
        st.status = ContainerStatus.RUNNING
        st.started_at = rfc3339_nano()
        st.exit = None
        if was_started:
            st.restart_count += 1
        # The caller first, then the record (as for exits): a crash in between leaves
        # init.pid without a running state, and the next supervisor kills that init.
        self._reply(to, self._info(ctr))
        self._emit(EventKind.STARTED, ctr.id)
        self._save(ctr)

    # -- exits ----------------------------------------------------------------------------

    def _on_signal(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            data = os.read(self.sig_r, 512)
            if signal.SIGTERM in data or signal.SIGINT in data:
                log.info("terminating on signal; containers keep running")
                self.running = False
        self._reap()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ctr = self.by_pid.get(pid)
            if ctr is not None and ctr.rec.state.pid == pid:
                self._on_child_exit(ctr, status)
                continue
            ex = self.exec_by_pid.pop(pid, None)
            if ex is not None:
                self._on_exec_exit(ex, status)

    def _on_child_exit(self, ctr: Ctr, status: int) -> None:
        del self.by_pid[ctr.rec.state.pid or 0]
        if ctr.starting is not None:
            self._finish_start(ctr)
        self._drain_logs(ctr)
        code, sig = _decode_status(status)
        if ctr.spawn_failed:
            ctr.spawn_failed = False
            self._close_stdin(ctr)
            ctr.rec.state.pid = None
            self._save(ctr)
            for to, volumes in ctr.remove_after_exit:
                self._remove(ctr, volumes)
                self._reply(to, None)
            ctr.remove_after_exit = []
            return
        oom = False
        if ctr.cgroup is not None:
            with contextlib.suppress(CgroupError):
                oom = ctr.cgroup.oom_killed(ctr.rec.state.oom_count)
        self._record_exit(ctr, ExitStatus(code=code, signal=sig, oom_killed=oom,
                                          exited_at=rfc3339_nano()))

    def _on_adopted_exit(self, ctr: Ctr) -> None:
        self.sel.unregister(ctr.pidfd)
        os.close(ctr.pidfd)
        ctr.pidfd = -1
        self.by_pid.pop(ctr.rec.state.pid or 0, None)
        oom = False
        if ctr.cgroup is not None:
            with contextlib.suppress(CgroupError):
                oom = ctr.cgroup.oom_killed(ctr.rec.state.oom_count)
        self._record_exit(ctr, ExitStatus(code=None, oom_killed=oom, exited_at=rfc3339_nano()))

    def _close_stdin(self, ctr: Ctr) -> None:
        if ctr.stdin_w >= 0:
            os.close(ctr.stdin_w)
            ctr.stdin_w = -1
            self._unpark(ctr.id + ".stdin")

    def _record_exit(self, ctr: Ctr, status: ExitStatus) -> None:
        self._close_stdin(ctr)
        st = ctr.rec.state
        st.status = ContainerStatus.EXITED
        st.pid = None
        st.pid_start_time = None
        st.exit = status
        if ctr.stop_timer is not None:
            self.cancelled_timers.add(ctr.stop_timer)
            ctr.stop_timer = None
        if ctr.cgroup is not None and st.paused:
            with contextlib.suppress(CgroupError):
                ctr.cgroup.thaw()
        st.paused = False
        # Tell the waiters first, then persist: a crash in between only loses
        # the exit code (a new supervisor records it as unknown).
        if status.oom_killed:
            self._emit(EventKind.OOM, ctr.id)
        self._emit(EventKind.EXITED, ctr.id, status)
        for to in ctr.waiters + ctr.stoppers:
            self._reply(to, status)
        ctr.waiters.clear()
        ctr.stoppers.clear()
        self._save(ctr)
        pending, ctr.remove_after_exit = ctr.remove_after_exit, []
        for to, volumes in pending:
            try:
                self._remove(ctr, volumes)
                self._reply(to, None)
            except ContainerRuntimeError as exc:
                self._fail(to, exc)

    # -- logs -----------------------------------------------------------------------------

    def _watch_log_fd(self, ctr: Ctr, fd: int, name: str) -> None:
        os.set_blocking(fd, False)
        ctr.pipes[fd] = name
        self.sel.register(fd, selectors.EVENT_READ, lambda _m, c=ctr, f=fd: self._on_log(c, f))

    def _on_log(self, ctr: Ctr, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:  # EIO: a terminal whose every slave end is closed
            data = b""
        name = ctr.pipes.get(fd, "stdout")
        if data:
            if ctr.log is not None:
                ctr.log.feed(name, data)
            return
        self._close_pipe(ctr, fd)

    def _close_pipe(self, ctr: Ctr, fd: int) -> None:
        name = ctr.pipes.pop(fd, "stdout")
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(fd)
        os.close(fd)
        if ctr.log is not None:
            ctr.log.flush(name)
        if not ctr.pipes:
            self._unpark(ctr.id)

    def _drain_logs(self, ctr: Ctr) -> None:
        for fd in list(ctr.pipes):
            name = ctr.pipes[fd]
            try:
                while data := _read_eio_eof(fd):
                    if ctr.log is not None:
                        ctr.log.feed(name, data)
            except BlockingIOError:
                # A process outside the pid namespace still holds the pipe
                # (only possible with exotic sharing): keep reading it.
                continue
            self._close_pipe(ctr, fd)

    # -- wait / stop / kill ---------------------------------------------------------------

    def op_wait(self, to: Reply, req: P.Wait) -> None:
        ctr = self._get(req.id)
        st = ctr.rec.state
        if st.status is ContainerStatus.EXITED and ctr.starting is None:
            self._reply(to, st.exit)
        else:
            ctr.waiters.append(to)

    def _signal(self, ctr: Ctr, sig: int) -> None:
        pid = ctr.rec.state.pid
        if pid is None:
            raise ContainerStateError(f"container {ctr.rec.spec.name} is not running")
        try:
            if ctr.pidfd >= 0:
                signal.pidfd_send_signal(ctr.pidfd, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def op_stop(self, to: Reply, req: P.Stop) -> None:
        ctr = self._get(req.id)
        st = ctr.rec.state
        if not st.status.can_stop() and ctr.starting is None:
            self._reply(to, st.exit or ExitStatus(code=None))
            return
        spec = ctr.rec.spec
        sig = parse_signal(req.signal) if req.signal else resolve_process(spec).stop_signal
        timeout = spec.stop_grace_period if req.timeout is None else req.timeout
        ctr.stoppers.append(to)
        st.stopping = True
        self._signal(ctr, sig)
        if st.status is ContainerStatus.PAUSED and ctr.cgroup is not None:
            ctr.cgroup.thaw()
            st.status = ContainerStatus.RUNNING
        if ctr.stop_timer is None:
            def kill() -> None:
                ctr.stop_timer = None
                if ctr.rec.state.pid is not None:
                    self._signal(ctr, signal.SIGKILL)
            ctr.stop_timer = self._add_timer(max(0.0, timeout), kill)

    def op_kill(self, to: Reply, req: P.Kill) -> None:
        ctr = self._get(req.id)
        if ctr.rec.state.status not in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
            raise ContainerStateError(f"container {ctr.rec.spec.name} is not running")
        sig = parse_signal(req.signal)
        ctr.rec.state.stopping = True
        self._signal(ctr, sig)
        if sig == signal.SIGKILL and ctr.cgroup is not None and ctr.rec.state.paused:
            ctr.cgroup.thaw()
        self._reply(to, None)

    def op_pause(self, to: Reply, req: P.Pause) -> None:
        ctr = self._get(req.id)
        if not ctr.rec.state.status.can_pause():
            raise ContainerStateError(f"container {ctr.rec.spec.name} is not running")
        if ctr.cgroup is None:
            raise ContainerError("pause needs the freezer cgroup, which this host lacks")
        ctr.cgroup.freeze()
        ctr.rec.state.status = ContainerStatus.PAUSED
        ctr.rec.state.paused = True
        self._save(ctr)
        self._emit(EventKind.PAUSED, ctr.id)
        self._reply(to, None)

    def op_unpause(self, to: Reply, req: P.Unpause) -> None:
        ctr = self._get(req.id)
        if ctr.rec.state.status is not ContainerStatus.PAUSED:
            raise ContainerStateError(f"container {ctr.rec.spec.name} is not paused")
        assert ctr.cgroup is not None
        ctr.cgroup.thaw()
        ctr.rec.state.status = ContainerStatus.RUNNING
        ctr.rec.state.paused = False
        self._save(ctr)
        self._emit(EventKind.UNPAUSED, ctr.id)
        self._reply(to, None)

    # -- remove ---------------------------------------------------------------------------

    def op_remove(self, to: Reply, req: P.Remove) -> None:
        ctr = self._get(req.id)
        st = ctr.rec.state
        if st.status.can_remove() and ctr.starting is None:
            self._remove(ctr, req.volumes)
            self._reply(to, None)
            return
        if not req.force:
            raise ContainerStateError(f"cannot remove container {ctr.rec.spec.name}: it is "
                                      f"{st.status.value}; stop it first or force removal")
        ctr.remove_after_exit.append((to, req.volumes))
        st.stopping = True
        if st.pid is not None:
            self._signal(ctr, signal.SIGKILL)
            if ctr.cgroup is not None and st.paused:
                ctr.cgroup.thaw()

    def _remove(self, ctr: Ctr, volumes: bool) -> None:
        if ctr.log is not None:
            ctr.log.close()
            ctr.log = None
        for fd in list(ctr.pipes):
            self._close_pipe(ctr, fd)
        if ctr.cgroup is None:  # loaded at adoption, never started since
            ctr.cgroup = self._recorded_cgroup(ctr)
        if ctr.cgroup is not None:
            try:
                ctr.cgroup.remove(kill=True)
            except CgroupError as exc:
                # e.g. a re-adopted container's init is a zombie of an unrelated
                # reaper that has not collected it yet: gc() removes it later.
                log.warning("container %s: %s (left for gc)", ctr.id[:12], exc)
        del self.containers[ctr.id]
        self._discard_dir(ctr.cdir)
        if volumes:
            for name in ctr.rec.state.anonymous_volumes:
                remove_volume(self.root, name, defer=True)
                self.trash_pending = True
        for to in ctr.waiters:
            self._reply(to, ctr.rec.state.exit or ExitStatus(code=None))
        ctr.waiters.clear()
        self._emit(EventKind.REMOVED, ctr.id)

    # -- inspect / list / top ---------------------------------------------------------------

    def op_inspect(self, to: Reply, req: P.Inspect) -> None:
        self._reply(to, self._info(self._get(req.id)))

    def op_list(self, to: Reply, req: P.ListContainers) -> None:
        self._reply(to, [self._info(c) for c in self.containers.values()])

    def op_top(self, to: Reply, req: P.Top) -> None:
        ctr = self._get(req.id)
        pid = ctr.rec.state.pid
        if pid is None:
            raise ContainerStateError(f"container {ctr.rec.spec.name} is not running")
        self._reply(to, container_processes(pid))

    def op_attach(self, to: Reply, req: P.Attach) -> None:
        ctr = self._get(req.id)
        if ctr.rec.state.pid is None:
            raise ContainerStateError(f"container {ctr.rec.spec.name} is not running")
        if ctr.rec.spec.tty:
            master = next(iter(ctr.pipes), -1)
            if master < 0:
                raise ContainerStateError(f"container {ctr.rec.spec.name}: terminal is closed")
            self._reply(to, P.Attached(tty=True), [os.dup(master)])
        elif ctr.stdin_w >= 0:
            self._reply(to, P.Attached(tty=False), [os.dup(ctr.stdin_w)])
        else:
            raise ContainerStateError(f"container {ctr.rec.spec.name} has no open stdin "
                                      "(create it with stdin_open or tty)")

    def op_close_stdin(self, to: Reply, req: P.CloseStdin) -> None:
        ctr = self._get(req.id)
        if ctr.rec.spec.tty:
            raise ContainerStateError(f"container {ctr.rec.spec.name} has a terminal: "
                                      "its stdin ends with the terminal (send ^D)")
        self._close_stdin(ctr)
        self._reply(to, None)

    def op_resize(self, to: Reply, req: P.Resize) -> None:
        ctr = self._get(req.id)
        master = next(iter(ctr.pipes), -1) if ctr.rec.spec.tty else -1
        if master < 0:
            raise ContainerStateError(f"container {ctr.rec.spec.name} has no terminal")
        import fcntl
        import struct

        fcntl.ioctl(master, 0x5414, struct.pack("HHHH", req.rows, req.columns, 0, 0))
        self._reply(to, None)

    def op_stats(self, to: Reply, req: P.Stats) -> None:
        ctr = self._get(req.id)
        if ctr.cgroup is None or not ctr.cgroup.exists():
            self._reply(to, ContainerStats())
            return
        st = ctr.cgroup.stats()
        self._reply(to, ContainerStats(
            cpu_usage_ns=st.cpu_usage_ns, memory_usage=st.memory_usage,
            memory_working_set=st.memory_working_set, memory_limit=st.memory_limit,
            pids_current=st.pids_current, pids_limit=st.pids_limit, oom_kills=st.oom_kills))

    def op_subscribe(self, to: Reply, req: P.Subscribe) -> None:
        conn = to[0]
        self._reply(to, self.event_seq)
        for ev in self.events:
            if ev.seq > req.since:
                self._send(conn, P.encode_event(ev))
        conn.subscribed = True

    def op_shutdown(self, to: Reply, req: P.Shutdown) -> None:
        self._empty_trash()
        if not self.containers and self.layout is not None:
            # Nothing left of this root: take the cgroup parent away too.
            with contextlib.suppress(CgroupError):
                cgroups.remove_parent(self.layout, self.parent_cgroup)
        self._reply(to, None)
        self.running = False

    def op_gc(self, to: Reply, req: P.Gc) -> None:
        from pycompose.runtime.gc import collect

        self._reply(to, collect(self.root, self.layout or cgroups.detect_layout(),
                                self.parent_cgroup, set(self.containers)))

    # -- exec -------------------------------------------------------------------------------

    def op_exec(self, to: Reply, req: P.Exec) -> None:
        ctr = self._get(req.id)
        st = ctr.rec.state
        if not st.status.can_exec() or st.pid is None:
            raise ContainerStateError(f"container {ctr.rec.spec.name} is not running")
        spec = req.spec
        if not spec.argv:
            raise ContainerError("exec: no command given")
        env = list(ctr.process_env)
        keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
        for k, v in spec.env.items():
            if k in keys:
                env[keys[k]] = f"{k}={v}"
            else:
                env.append(f"{k}={v}")
        plan = ExecPlan(argv=spec.argv, env=tuple(env),
                        working_dir=spec.working_dir or ctr.working_dir,
                        user=spec.user if spec.user is not None else ctr.process_user,
                        group_add=ctr.rec.spec.group_add, rlimits=ctr.rlimits,
                        cgroup_procs=ctr.cgroup.procs_files() if ctr.cgroup else (),
                        security=ctr.rec.spec.security,
                        caps=(capabilities.all_capabilities()
                              - self._unavailable_caps()
                              if spec.privileged else ctr.caps),
                        seccomp=None if spec.privileged else ctr.seccomp,
                        tty_size=spec.tty_size)
        pidns = os.open(f"/proc/{st.pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        ns_fds = open_namespaces(st.pid)
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        # The pty comes from the container's own devpts: the child opens it and
        # sends the master back. Its stdio pipes are not needed then.
        tty_parent, tty_child, out_r, out_w, err_r, err_w = _output_fds(spec.tty)
        if spec.stdin and not spec.tty:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), -1
        try:
            # As for start: the next child is born in the container's pid namespace.
            syscalls.setns(pidns, syscalls.CLONE_NEWPID)
            try:
                pid = os.fork()
            except BaseException:
                syscalls.setns(self.own_pidns, syscalls.CLONE_NEWPID)
                raise
            if pid != 0:
                syscalls.setns(self.own_pidns, syscalls.CLONE_NEWPID)
            else:
                try:
                    for fd in (sync_r, out_r, err_r, in_w, pidns, tty_parent):
                        if fd >= 0:
                            os.close(fd)
                    run_exec(plan, ns_fds, sync_w, (in_r, out_w, err_w), tty_child)
                finally:
                    os._exit(127)
        finally:
            os.close(pidns)
            for fd, _ in ns_fds:
                os.close(fd)
            for fd in (sync_w, out_w, err_w, in_r, tty_child):
                if fd >= 0:
                    os.close(fd)
        exec_id = secrets.token_hex(16)
        client_fds = [] if spec.tty else ([in_w] if in_w >= 0 else []) + [out_r, err_r]
        ex = ExecProc(exec_id=exec_id, cid=ctr.id, pid=pid,
                      starting=(to, sync_r, bytearray(), client_fds, spec.stdin),
                      tty_sock=tty_parent)
        self.execs[exec_id] = ex
        self.exec_by_pid[pid] = ex
        self.sel.register(sync_r, selectors.EVENT_READ, lambda _m, e=ex: self._on_exec_sync(e))

    def _on_exec_sync(self, ex: ExecProc) -> None:
        assert ex.starting is not None
        _, fd, data, _, _ = ex.starting
        if _read_sync(fd, data):
            self._finish_exec_start(ex)

    def _finish_exec_start(self, ex: ExecProc) -> None:
        assert ex.starting is not None
        to, fd, data, fds, stdin = ex.starting
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                data += chunk
        self.sel.unregister(fd)
        os.close(fd)
        ex.starting = None
        if ex.tty_sock >= 0:
            with socket.socket(fileno=ex.tty_sock) as sock:
                ex.tty_sock = -1
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    _msg, got, _flags, _addr = socket.recv_fds(sock, 16, 1)
                    if got:
                        ex.pty_master = got[0]
                        fds = [os.dup(got[0])]
        if data:
            for f in fds:
                os.close(f)
            self._close_pty(ex)
            try:
                err = json.loads(bytes(data))
            except ValueError:
                err = {"message": bytes(data).decode(errors="replace")}
            self.execs.pop(ex.exec_id, None)
            self._fail(to, SpawnError(err["message"], step=err.get("step", ""),
                                      path=err.get("path", "")))
            return
        self._reply(to, P.ExecStarted(ex.exec_id, ex.pid, stdin, tty=ex.pty_master >= 0), fds)

    def _close_pty(self, ex: ExecProc) -> None:
        if ex.pty_master >= 0:
            os.close(ex.pty_master)
            ex.pty_master = -1

    def _on_exec_exit(self, ex: ExecProc, status: int) -> None:
        if ex.starting is not None:
            self._finish_exec_start(ex)
            if ex.exec_id not in self.execs:
                return
        self._close_pty(ex)
        code, sig = _decode_status(status)
        ex.status = ExitStatus(code=code, signal=sig, exited_at=rfc3339_nano())
        for to in ex.waiters:
            self._reply(to, ex.status)
        ex.waiters.clear()
        self._emit(EventKind.EXEC_EXITED, ex.cid, ex.status, ex.exec_id)
        # Keep the status for a late exec_wait; forget it after a minute.
        self._add_timer(60, lambda: self._forget_exec(ex.exec_id))

    def _forget_exec(self, exec_id: str) -> None:
        self.execs.pop(exec_id, None)

    def op_exec_wait(self, to: Reply, req: P.ExecWait) -> None:
        ex = self.execs.get(req.exec_id)
        if ex is None:
            raise ContainerNotFoundError(f"no such exec: {req.exec_id}")
        if ex.status is not None:
            self._reply(to, ex.status)
        else:
            ex.waiters.append(to)

    def op_exec_resize(self, to: Reply, req: P.ExecResize) -> None:
        ex = self.execs.get(req.exec_id)
        if ex is None:
            raise ContainerNotFoundError(f"no such exec: {req.exec_id}")
        if ex.pty_master < 0:
            raise ContainerStateError("exec has no terminal to resize")
        import fcntl
        import struct

        fcntl.ioctl(ex.pty_master, 0x5414,  # TIOCSWINSZ
                    struct.pack("HHHH", req.rows, req.columns, 0, 0))
        self._reply(to, None)

    def op_exec_kill(self, to: Reply, req: P.ExecKill) -> None:
        ex = self.execs.get(req.exec_id)
        if ex is None:
            raise ContainerNotFoundError(f"no such exec: {req.exec_id}")
        if ex.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(ex.pid, parse_signal(req.signal))
        self._reply(to, None)


def _read_eio_eof(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        raise
    except OSError:
        return b""


def _decode_status(status: int) -> tuple[int, int | None]:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.WEXITSTATUS(status), None


def _pack_fds(fds: list[int]) -> bytes:
    import array

    return array.array("i", fds).tobytes()


def _device_rules(spec: ContainerSpec) -> tuple[cgroups.DeviceRule, ...]:
    """Docker's default device rules, plus the service's devices and extra rules.

    Without them a container's root (which keeps CAP_MKNOD) could create a node
    for the host's disk and read it.
    """
    try:
        extra = [cgroups.host_device_rule(d.source, d.permissions) for d in spec.devices]
        extra += [cgroups.parse_device_rule(r) for r in spec.resources.device_cgroup_rules]
    except CgroupError as exc:
        raise ContainerError(f"container {spec.name}: {exc}") from None
    for d in spec.devices:
        if not os.path.isabs(d.target or d.source):
            raise ContainerError(f"container {spec.name}: device target {d.target!r} "
                                 "must be an absolute path")
    return tuple(cgroups.device_rules(spec.security.privileged, extra))


def _planned_devices(spec: ContainerSpec) -> tuple[tuple[str, int, int, int, int], ...]:
    out = []
    for d in spec.devices:
        try:
            st = os.stat(d.source)
        except OSError as exc:
            raise ContainerError(f"container {spec.name}: device {d.source}: "
                                 f"{exc.strerror}") from None
        out.append((d.target or d.source, st.st_mode, st.st_rdev, st.st_uid, st.st_gid))
    return tuple(out)


def _etc_content(fname: str, etc: Any, spec: ContainerSpec) -> str | None:
    hostname = spec.hostname or spec.id[:12]
    if etc is not None:
        if etc.content is not None:
            return str(etc.content)
        if etc.path:
            try:
                with open(etc.path) as fh:
                    return fh.read()
            except OSError as exc:
                raise ContainerError(f"container {spec.name}: read {etc.path} for "
                                     f"/etc/{fname}: {exc.strerror}") from None
    if fname == "hostname":
        return str(hostname) + "\n"
    if fname == "hosts":
        return ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                f"127.0.1.1\t{hostname}\n")
    return None


def container_processes(init_pid: int) -> list[ProcessInfo]:
    """Processes in the pid namespace of ``init_pid`` (``top``), by host pid."""
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") != ns:
                continue
            with open(f"/proc/{pid}/status") as fh:
                status = dict(line.split(":\t", 1) for line in fh.read().splitlines()
                              if ":\t" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        uid = int(status.get("Uid", "0").split()[0])
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        nspid = status.get("NSpid", entry).split()
        rows.append(ProcessInfo(pid=pid, container_pid=int(nspid[-1]),
                                ppid=int(status.get("PPid", "0")), user=user,
                                command=cmd or f"[{status.get('Name', '').strip()}]"))
    rows.sort(key=lambda r: r.container_pid)
    return rows


__all__ = ["Supervisor", "container_processes", "errno"]
