"""Published ports: the preflight, and host-port reservation (incl. ephemeral ports).

The preflight runs before anything of a project starts. A host port is
refused when it is asked for twice in the project, published by another
stack (the caller passes those in), or held by any program on the host —
found in ``/proc/net/{tcp,tcp6,udp,udp6}`` and named by pid and command by
mapping the socket inode through ``/proc/<pid>/fd``.

Reservation: a published port is DNAT-ed in the kernel, so nothing of ours
listens on it; to stop another program from binding it later, and to pick
ephemeral ports without a race, :func:`reserve` *holds* a bound (not
listening) socket per host port. ``bind(port 0)`` lets the kernel choose an
ephemeral port from ``ip_local_port_range`` and the held socket keeps it ours
— "bind and release" would let anyone take it between the check and the
use. The engine keeps the :class:`Reservation` open as long as the ports are
published (and takes it again after a restart). A bound-only TCP socket is
not listed in ``/proc/net/tcp``, which is why the other stacks' ports come
from the caller, not from the scan.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Literal

from .errors import PortBusyError, PortConflictError, PortError

__all__ = [
    "AssignedPort",
    "ForeignPort",
    "HostSocket",
    "PortRequest",
    "Reservation",
    "expand_ports",
    "find_holders",
    "preflight",
    "reserve",
    "scan_host_sockets",
]

Protocol = Literal["tcp", "udp"]


@dataclass(frozen=True)
class PortRequest:
    """One container port to publish, for one service.

    ``host_port`` None means "any": from ``host_range`` if given (Docker's
    ``8000-8010:80``), else an ephemeral port. ``host_ip`` None means all
    host addresses.
    """

    service: str
    container_port: int
    protocol: Protocol = "tcp"
    host_port: int | None = None
    host_ip: IPv4Address | None = None
    host_range: tuple[int, int] | None = None

    def label(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else ""
        return f"{ip}{self.host_port}/{self.protocol}"


@dataclass(frozen=True)
class ForeignPort:
    """A host port published by another pycompose stack."""

    stack: str
    service: str
    protocol: Protocol
    host_port: int
    host_ip: IPv4Address | None = None


@dataclass(frozen=True)
class HostSocket:
    protocol: Protocol
    address: IPv4Address | IPv6Address
    port: int
    inode: int
    listening: bool


@dataclass(frozen=True)
class AssignedPort:
    request: PortRequest
    host_port: int


def _parse_range(value: str | int, what: str, service: str) -> tuple[int, int]:
    text = str(value)
    lo_s, sep, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise PortError(f"service {service}: invalid {what} {text!r}") from None
    if not (1 <= lo <= hi <= 65535) and not (what == "published" and lo == hi == 0):
        raise PortError(f"service {service}: {what} {text!r} out of range 1-65535")
    return lo, hi


def expand_ports(
    service: str,
    target: str | int,
    published: str | int | None = None,
    protocol: str = "tcp",
    host_ip: str | None = None,
) -> list[PortRequest]:
    """Turn one Compose port entry (long syntax fields) into single-port requests.

    ``80-82`` with ``8080-8082`` maps one to one; a published range with a
    single target means "one free port of that range"; no published port
    means ephemeral.
    """
    if protocol not in ("tcp", "udp"):
        raise PortError(f"service {service}: protocol {protocol!r} is not supported (tcp, udp)")
    ip: IPv4Address | None = None
    if host_ip not in (None, "", "0.0.0.0"):
        try:
            parsed = ip_address(str(host_ip))
        except ValueError:
            raise PortError(f"service {service}: invalid host ip {host_ip!r}") from None
        if not isinstance(parsed, IPv4Address):
            raise PortError(f"service {service}: IPv6 host ip {host_ip} is not supported yet")
        ip = parsed
    t_lo, t_hi = _parse_range(target, "target", service)
    proto: Protocol = "tcp" if protocol == "tcp" else "udp"
    if published in (None, "", 0, "0"):
        return [PortRequest(service, p, proto, None, ip) for p in range(t_lo, t_hi + 1)]
    p_lo, p_hi = _parse_range(published, "published", service)
    if t_lo == t_hi and p_hi > p_lo:
        return [PortRequest(service, t_lo, proto, None, ip, host_range=(p_lo, p_hi))]
    if p_hi - p_lo != t_hi - t_lo:
        raise PortError(f"service {service}: published {published} and target {target} "
                        "ranges differ in size")
    return [PortRequest(service, t, proto, p, ip)
            for t, p in zip(range(t_lo, t_hi + 1), range(p_lo, p_hi + 1), strict=True)]


# --- reading the host -----------------------------------------------------------

def _parse_addr(hexaddr: str) -> IPv4Address | IPv6Address:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return IPv4Address(raw[::-1])
    # /proc prints IPv6 as four host-order 32-bit words
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    v6 = IPv6Address(words)
    return v6.ipv4_mapped or v6


def scan_host_sockets(proc: Path = Path("/proc")) -> list[HostSocket]:
    """Listening TCP and bound UDP sockets of the current network namespace."""
    found: list[HostSocket] = []
    for name, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, state, inode = parts[1], parts[3], int(parts[9])
            addr_hex, port_hex = local.split(":")
            port = int(port_hex, 16)
            listening = state == "0A"
            if proto == "tcp" and not listening:
                continue
            if port == 0:
                continue
            found.append(HostSocket(proto, _parse_addr(addr_hex), port, inode,  # type: ignore[arg-type]
                                    listening))
    return found


def find_holders(inodes: Iterable[int], proc: Path = Path("/proc")) -> dict[int, tuple[int, str]]:
    """Map socket inodes to (pid, command) by walking ``/proc/<pid>/fd``."""
    wanted = {f"socket:[{i}]": i for i in inodes}
    result: dict[int, tuple[int, str]] = {}
    if not wanted:
        return result
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(entry / "fd" / fd)
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and inode not in result:
                result[inode] = (int(entry.name), _command(entry))
        if len(result) == len(wanted):
            break
    return result


def _command(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        raw = b""
    cmd = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    if not cmd:
        try:
            cmd = "[" + (pid_dir / "comm").read_text().strip() + "]"
        except OSError:
            cmd = "?"
    return cmd


def _ip_overlap(a: IPv4Address | None, b: IPv4Address | None) -> bool:
    return a is None or b is None or a == b


def _socket_overlaps(sock: HostSocket, host_ip: IPv4Address | None) -> bool:
    addr = sock.address
    if isinstance(addr, IPv6Address):
        # only a wildcard v6 socket (possibly dual-stack) competes with IPv4 ports
        return addr == IPv6Address("::")
    if addr == IPv4Address("0.0.0.0"):
        return True
    return host_ip is None or host_ip == addr


# --- the preflight ----------------------------------------------------------------

def preflight(
    requests: Sequence[PortRequest],
    *,
    others: Iterable[ForeignPort] = (),
    proc: Path = Path("/proc"),
) -> None:
    """Refuse the project's ports before anything starts (first problem wins, in order).

    Raises :class:`PortConflictError` for a port asked for twice or held by
    another stack, :class:`PortBusyError` for a port held by a program.
    """
    fixed = [r for r in requests if r.host_port is not None]
    seen: list[PortRequest] = []
    for r in fixed:
        for prev in seen:
            if prev.protocol == r.protocol and prev.host_port == r.host_port and _ip_overlap(
                    prev.host_ip, r.host_ip):
                who = (f"services {prev.service} and {r.service}" if prev.service != r.service
                       else f"service {r.service} twice")
                raise PortConflictError(f"host port {r.label()} is asked for by {who}")
        seen.append(r)
    others = list(others)
    for r in fixed:
        for o in others:
            if o.protocol == r.protocol and o.host_port == r.host_port and _ip_overlap(
                    o.host_ip, r.host_ip):
                raise PortConflictError(
                    f"host port {r.label()} of service {r.service} is already published by "
                    f"stack {o.stack} (service {o.service})")
    sockets = scan_host_sockets(proc)
    for r in fixed:
        for s in sockets:
            if s.protocol == r.protocol and s.port == r.host_port and _socket_overlaps(
                    s, r.host_ip):
                holder = find_holders([s.inode], proc).get(s.inode)
                pid, cmd = holder if holder else (None, None)
                by = f"pid {pid} ({cmd})" if holder else "a program pycompose cannot see"
                raise PortBusyError(
                    f"host port {r.label()} of service {r.service} is already in use by {by}",
                    port=r.host_port or 0, service=r.service, pid=pid, command=cmd)


# --- holding the ports ----------------------------------------------------------------

@dataclass
class Reservation:
    """Bound sockets that keep the published host ports ours. Close to release."""

    ports: list[AssignedPort] = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for s in self._sockets:
            s.close()
        self._sockets.clear()

    def release(self, service: str) -> None:
        """Release the ports of one service (it was removed)."""
        keep_p, keep_s = [], []
        for p, s in zip(self.ports, self._sockets, strict=True):
            if p.request.service == service:
                s.close()
            else:
                keep_p.append(p)
                keep_s.append(s)
        self.ports, self._sockets = keep_p, keep_s

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bind(r: PortRequest, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if r.protocol == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((str(r.host_ip) if r.host_ip else "0.0.0.0", port))
    except BaseException:
        s.close()
        raise
    return s


def _busy(r: PortRequest, port: int, proc: Path) -> PortBusyError:
    holder = None
    for s in scan_host_sockets(proc):
        if s.protocol == r.protocol and s.port == port and _socket_overlaps(s, r.host_ip):
            holder = find_holders([s.inode], proc).get(s.inode)
            if holder:
                break
    pid, cmd = holder if holder else (None, None)
    by = f"pid {pid} ({cmd})" if holder else "another socket"
    ip = f"{r.host_ip}:" if r.host_ip else ""
    return PortBusyError(f"host port {ip}{port}/{r.protocol} of service {r.service} is "
                         f"already in use by {by}", port=port, service=r.service,
                         pid=pid, command=cmd)


def reserve(requests: Sequence[PortRequest], *, proc: Path = Path("/proc")) -> Reservation:
    """Bind and hold every requested host port; choose the free ones (blocking-free, fast).

    All or nothing: on a busy port every socket taken so far is closed and
    :class:`PortBusyError` names the holder.
    """
    res = Reservation()
    try:
        for r in requests:
            if r.host_port is not None:
                candidates: Iterable[int] = (r.host_port,)
            elif r.host_range is not None:
                candidates = range(r.host_range[0], r.host_range[1] + 1)
            else:
                candidates = (0,)
            last: OSError | None = None
            for port in candidates:
                try:
                    s = _bind(r, port)
                except OSError as e:
                    if e.errno != errno.EADDRINUSE:
                        raise PortError(f"service {r.service}: cannot reserve host port "
                                        f"{port}/{r.protocol}: {e.strerror}") from None
                    last = e
                    continue
                res._sockets.append(s)
                res.ports.append(AssignedPort(r, s.getsockname()[1]))
                break
            else:
                assert last is not None
                if r.host_range is not None and r.host_port is None:
                    raise PortBusyError(
                        f"service {r.service}: every host port of {r.host_range[0]}-"
                        f"{r.host_range[1]}/{r.protocol} is in use",
                        port=r.host_range[0], service=r.service, pid=None, command=None)
                raise _busy(r, next(iter(candidates)), proc)
    except BaseException:
        res.close()
        raise
    return res
