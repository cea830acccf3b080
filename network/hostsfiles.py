"""Text of a container's ``/etc/resolv.conf`` and ``/etc/hosts`` (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, ip_address

from .errors import NetworkError

__all__ = ["parse_extra_hosts", "parse_resolv_conf", "render_hosts", "render_resolv_conf"]

HOST_GATEWAY = "host-gateway"


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf text."""
    ns: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split(";", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            ns.append(parts[1])
        elif parts[0] in ("search", "domain"):
            search = parts[1:]
        elif parts[0] == "options":
            options += parts[1:]
    return ns, search, options


def render_resolv_conf(
    nameservers: Sequence[str | IPv4Address],
    *,
    search: Sequence[str] | None = None,
    options: Sequence[str] = (),
    host_text: str = "",
) -> str:
    """A resolv.conf for a container.

    ``nameservers`` is the network's gateway (the embedded DNS; the
    container's ``dns:`` servers are given to the server as its upstreams).
    ``search`` is ``dns_search`` (None: the host's search domains, from
    ``host_text``); ``options`` is ``dns_opt`` (empty: the host's options).
    """
    _host_ns, host_search, host_opts = parse_resolv_conf(host_text)
    lines = []
    for n in nameservers:
        try:
            ip_address(str(n))
        except ValueError:
            raise NetworkError(f"dns: invalid nameserver address {n!r}") from None
        lines.append(f"nameserver {n}")
    dom = list(search) if search is not None else host_search
    dom = [d for d in dom if d and d != "."]
    if dom:
        lines.append("search " + " ".join(dom))
    opts = list(options) if options else host_opts
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$")


def parse_extra_hosts(entries: Iterable[str] | dict[str, str]) -> list[tuple[str, str]]:
    """``extra_hosts`` in list (``"name:ip"``, ``"name=ip"``) or mapping form -> (name, ip)."""
    pairs: list[tuple[str, str]] = []
    if isinstance(entries, dict):
        items = [(str(k), str(v)) for k, v in entries.items()]
    else:
        items = []
        for e in entries:
            sep = "=" if "=" in e else ":"
            name, _, ip = e.partition(sep)
            items.append((name, ip))
    for name, ip in items:
        name, ip = name.strip(), ip.strip().strip("[]")
        if not _NAME_RE.match(name):
            raise NetworkError(f"extra_hosts: invalid host name {name!r}")
        if ip != HOST_GATEWAY:
            try:
                ip_address(ip)
            except ValueError:
                raise NetworkError(f"extra_hosts: invalid address {ip!r} for {name}") from None
        pairs.append((name, ip))
    return pairs


def render_hosts(
    hostname: str,
    address: IPv4Address | None,
    *,
    domainname: str = "",
    aliases: Sequence[str] = (),
    extra_hosts: Sequence[tuple[str, str]] = (),
    gateway: IPv4Address | None = None,
) -> str:
    """An /etc/hosts: localhost, the container's own name(s) and address, ``extra_hosts``.

    ``host-gateway`` in ``extra_hosts`` becomes ``gateway`` (the first network's
    gateway, i.e. the host as the container sees it).
    """
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for name, ip in extra_hosts:
        if ip == HOST_GATEWAY:
            if gateway is None:
                raise NetworkError(f"extra_hosts: {name}:host-gateway needs a network gateway")
            ip = str(gateway)
        lines.append(f"{ip}\t{name}")
    if address is not None:
        names = [f"{hostname}.{domainname}"] if domainname else []
        names.append(hostname)
        names += [a for a in aliases if a not in names]
        lines.append(f"{address}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"
