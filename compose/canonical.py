"""Stage: short syntaxes -> long form, for one checked file.

Runs per file (after :mod:`.schema`), before ``extends`` and the merge of
several files, so that merging can key list entries (ports by address,
volumes by target, ...). Relative paths are made absolute against
``base_dir`` (the project directory for ``-f`` files, the file's own
directory for ``extends``/``include`` files); ``~`` uses ``HOME`` from the
environment passed in.

Results: ports are one mapping per port (ranges expanded), volumes are
mappings with ``type``, ``depends_on``/``networks`` are mappings,
``environment``/``labels``/... are mappings, ``command``/``entrypoint`` are
argument lists (shell-split), durations are seconds (``float``) and sizes
bytes (``int``). Bad values are collected as :class:`SchemaError` with the
key path; with ``raw`` (``config --no-interpolate``) values that still hold a
``$`` are kept as written.

Each rule sits in :data:`CANONICAL`, keyed by path pattern.
"""

from __future__ import annotations

import contextlib
import ipaddress
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from .errors import SchemaError
from .keypath import KeyPath, RuleTable, fmt
from .units import parse_bytes, parse_duration
from .yamlread import RESET, OverrideList, OverrideMapping

__all__ = ["CANONICAL", "Context", "build_defaults", "canonicalize", "parse_port", "parse_volume",
           "resolve_path"]


class Context:
    """Where one file's rules run (for paths and messages), and the problems they find."""

    __slots__ = ("base_dir", "errors", "file", "home", "raw")

    def __init__(self, *, file: str | None, base_dir: str, home: str | None = None,
                 raw: bool = False) -> None:
        self.file = file
        self.base_dir = base_dir
        self.home = home
        self.raw = raw
        self.errors: list[SchemaError] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(SchemaError(self.file, fmt(path) or None, message))

    def is_raw(self, value: Any) -> bool:
        return self.raw and isinstance(value, str) and "$" in value


Rule = Callable[[Any, KeyPath, Context], Any]


def _keep(like: Any, new: Any) -> Any:
    """Carry the ``!override`` marker over to a rebuilt value."""
    if isinstance(like, OverrideMapping) and isinstance(new, dict):
        out = OverrideMapping()
        out.update(new)
        return out
    if isinstance(like, OverrideList) and isinstance(new, list):
        return OverrideList(new)
    return new


def resolve_path(path: str, base_dir: str, home: str | None) -> str:
    """``~`` and relative paths -> an absolute, normalised path."""
    if (path == "~" or path.startswith("~/")) and home:
        path = home + path[1:]
    if not posixpath.isabs(path):
        path = posixpath.join(base_dir, path)
    return posixpath.normpath(path)


def _is_remote(context: str) -> bool:
    return bool(re.match(r"^(?:[a-z][a-z0-9+.-]*://|git@|github\.com/)", context))


# --------------------------------------------------------------------------- small shapes


def list_or_dict(value: Any, path: KeyPath, ctx: Context, sep: str = "=") -> Any:
    """``["A=1", "B"]`` -> ``{"A": "1", "B": None}``; mappings pass through."""
    if value is RESET or isinstance(value, dict):
        return value
    out: dict[str, str | None] = {}
    for i, item in enumerate(value):
        text = str(item)
        if sep in text:
            key, val = text.split(sep, 1)
            out[key] = val
        else:
            out[text] = None
        if not text or text.startswith(sep):
            ctx.error((*path, i), f'invalid entry "{text}" (expected KEY{sep}VALUE)')
    return _keep(value, out)


def labels(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out = list_or_dict(value, path, ctx)
    # A label without value is an empty label.
    return _keep(out, {k: ("" if v is None else v) for k, v in out.items()})


def str_list(value: Any, path: KeyPath, ctx: Context) -> Any:
    if isinstance(value, str):
        return [value]
    return value


def command(value: Any, path: KeyPath, ctx: Context) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            ctx.error(path, f"cannot split command {value!r}: {exc}")
    return value


def extra_hosts(value: Any, path: KeyPath, ctx: Context) -> Any:
    """-> list of ``host=ip``; a mapping value may list several addresses."""
    if value is RESET:
        return value
    out: list[str] = []
    if isinstance(value, dict):
        for host, ips in value.items():
            for ip in ips if isinstance(ips, list) else [ips]:
                out.append(f"{host}={ip}")
        return _keep(value, out)
    for i, item in enumerate(value):
        if "=" in item:
            host, ip = item.split("=", 1)
        elif ":" in item:
            host, ip = item.split(":", 1)
        else:
            ctx.error((*path, i), f'invalid extra host "{item}" (expected HOST:IP)')
            continue
        out.append(f"{host}={ip.strip('[]') if ip.startswith('[') else ip}")
    return _keep(value, out)


def duration(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET or value is None or ctx.is_raw(value):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        ctx.error(path, str(exc))
        return None


def size(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET or value is None or ctx.is_raw(value):
        return value
    try:
        return parse_bytes(value)
    except ValueError as exc:
        ctx.error(path, str(exc))
        return None


def cpus(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET or ctx.is_raw(value):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        ctx.error(path, f'invalid number of CPUs "{value}"')
        return value
    if f < 0:
        ctx.error(path, f'invalid number of CPUs "{value}" (must not be negative)')
    return f


# --------------------------------------------------------------------------- ports

_PORT_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _port_range(text: str) -> tuple[int, int] | None:
    m = _PORT_RANGE.match(text.strip())
    if not m:
        return None
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else lo
    if not (0 < lo <= 65535 and 0 < hi <= 65535) or hi < lo:
        return None
    return lo, hi


def parse_port(spec: str | int) -> list[dict[str, Any]]:
    """One short-syntax port -> long-form mappings (one per port of a range).

    Raises ``ValueError`` with a message that names the spec.
    """
    text = str(spec).strip()
    bad = ValueError(f'invalid port "{spec}"')
    protocol = "tcp"
    if "/" in text:
        text, protocol = text.rsplit("/", 1)
        if protocol not in ("tcp", "udp", "sctp"):
            raise ValueError(f'invalid port "{spec}": unknown protocol "{protocol}"')
    host_ip: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1: end + 2] != ":":
            raise bad
        host_ip, parts = text[1:end], text[end + 2:].split(":")
        if len(parts) != 2:
            raise bad
    else:
        parts = text.split(":")
        if len(parts) > 3:
            host_ip, parts = ":".join(parts[:-2]), parts[-2:]
        elif len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
    if host_ip is not None:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            if host_ip:
                raise ValueError(f'invalid port "{spec}": invalid host IP "{host_ip}"') from None
        host_ip = host_ip or None
    published = parts[0] if len(parts) == 2 else ""
    target_text = parts[-1]
    target = _port_range(target_text)
    if target is None:
        raise bad
    pub = _port_range(published) if published else None
    if published and pub is None:
        raise bad
    n = target[1] - target[0] + 1
    out: list[dict[str, Any]] = []
    if n == 1:
        pub_text = None
        if pub is not None:
            pub_text = str(pub[0]) if pub[0] == pub[1] else f"{pub[0]}-{pub[1]}"
        out.append(_port(target[0], pub_text, host_ip, protocol))
        return out
    if pub is not None and pub[1] - pub[0] + 1 != n:
        raise ValueError(f'invalid port "{spec}": host and container ranges differ in size')
    for i in range(n):
        out.append(_port(target[0] + i, str(pub[0] + i) if pub else None, host_ip, protocol))
    return out


def _port(target: int, published: str | None, host_ip: str | None,
          protocol: str) -> dict[str, Any]:
    port: dict[str, Any] = {"mode": "ingress"}
    if host_ip:
        port["host_ip"] = host_ip
    port["target"] = target
    if published:
        port["published"] = published
    port["protocol"] = protocol
    return port


def ports(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out: list[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, dict):
            out.extend(_long_port(item, (*path, i), ctx))
            continue
        if ctx.is_raw(item):
            out.append(item)
            continue
        try:
            out.extend(parse_port(item))
        except ValueError as exc:
            ctx.error((*path, i), str(exc))
    return _keep(value, out)


def _long_port(item: dict[str, Any], path: KeyPath, ctx: Context) -> list[dict[str, Any]]:
    if ctx.raw and any(isinstance(v, str) and "$" in v for v in item.values()):
        return [item]
    target = item.get("target")
    rng = _port_range(str(target)) if target is not None else None
    if rng is None:
        ctx.error((*path, "target") if target is not None else path,
                  f'invalid port "{target}"' if target is not None else 'missing "target"')
        return []
    published = item.get("published")
    if published is not None and published != "":
        prng = _port_range(str(published))
        if prng is None:
            ctx.error((*path, "published"), f'invalid port "{published}"')
            return []
        published = str(published)
    else:
        published = None
    protocol = item.get("protocol") or "tcp"
    out = []
    for t in range(rng[0], rng[1] + 1):
        port = _port(t, published, item.get("host_ip"), protocol)
        port["mode"] = item.get("mode") or "ingress"
        for key in ("name", "app_protocol"):
            if item.get(key) is not None:
                port[key] = item[key]
        out.append(port)
    return out


def expose(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out = []
    for i, item in enumerate(value):
        text = str(item)
        base = text.split("/", 1)[0]
        if not ctx.is_raw(text) and _port_range(base) is None:
            ctx.error((*path, i), f'invalid port "{text}"')
        out.append(text)
    return _keep(value, out)


# --------------------------------------------------------------------------- volumes

_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
_CONSISTENCY = {"consistent", "cached", "delegated"}


def _is_file_path(source: str) -> bool:
    return bool(source) and (source[0] in "./~" or bool(re.match(r"^[A-Za-z]:[\\/]", source)))


def parse_volume(spec: str) -> dict[str, Any]:
    """One short-syntax volume -> its long form (paths not yet resolved).

    ``/data`` (anonymous volume), ``name:/data[:opts]``, ``./dir:/data[:opts]``;
    options ``ro``, ``rw``, ``z``, ``Z``, ``nocopy``, propagation and consistency
    modes. Raises ``ValueError``.
    """
    parts = spec.split(":")
    if re.match(r"^[A-Za-z]:[\\/]", spec):  # a Windows drive letter in the source
        parts = [parts[0] + ":" + parts[1], *parts[2:]]
    if len(parts) == 1:
        if not parts[0]:
            raise ValueError("invalid volume: empty")
        return {"type": "volume", "target": parts[0]}
    if len(parts) > 3:
        raise ValueError(f'invalid volume "{spec}": too many colons')
    source, target = parts[0], parts[1]
    if not target:
        raise ValueError(f'invalid volume "{spec}": empty target')
    if not source:
        raise ValueError(f'invalid volume "{spec}": empty source')
    vol: dict[str, Any] = {"type": "bind" if _is_file_path(source) else "volume",
                           "source": source, "target": target}
    if vol["type"] == "bind":
        vol["bind"] = {"create_host_path": True}
    if len(parts) == 3:
        for opt in parts[2].split(","):
            if opt == "ro":
                vol["read_only"] = True
            elif opt == "rw":
                vol["read_only"] = False
            elif opt in ("z", "Z"):
                vol.setdefault("bind", {})["selinux"] = opt
            elif opt == "nocopy":
                vol["volume"] = {"nocopy": True}
            elif opt in _PROPAGATION:
                vol.setdefault("bind", {})["propagation"] = opt
            elif opt in _CONSISTENCY:
                vol["consistency"] = opt
            else:
                raise ValueError(f'invalid volume "{spec}": unknown option "{opt}"')
        if vol["type"] == "volume" and "bind" in vol:
            raise ValueError(f'invalid volume "{spec}": bind options on a named volume')
    return vol


def volumes(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out: list[Any] = []
    for i, item in enumerate(value):
        if ctx.is_raw(item) or (isinstance(item, dict) and ctx.raw and
                                any(ctx.is_raw(v) for v in item.values())):
            out.append(item)
            continue
        if isinstance(item, str):
            try:
                vol = parse_volume(item)
            except ValueError as exc:
                ctx.error((*path, i), str(exc))
                continue
        else:
            vol = dict(item)
            if not vol.get("type"):
                ctx.error((*path, i), 'missing "type"')
                continue
            if not vol.get("target"):
                ctx.error((*path, i), 'missing "target"')
                continue
            if vol["type"] == "tmpfs":
                if vol.get("source"):
                    ctx.error((*path, i, "source"), "a tmpfs mount has no source")
                if "tmpfs" in vol:
                    t = dict(vol["tmpfs"])
                    if "size" in t:
                        t["size"] = size(t["size"], (*path, i, "tmpfs", "size"), ctx)
                    if isinstance(t.get("mode"), float):
                        t["mode"] = int(t["mode"])
                    vol["tmpfs"] = t
            elif vol["type"] == "bind" and not vol.get("source"):
                ctx.error((*path, i), 'a bind mount needs a "source"')
                continue
        if vol["type"] == "bind":
            vol["source"] = resolve_path(vol["source"], ctx.base_dir, ctx.home)
        if not str(vol["target"]).startswith("/") and not re.match(r"^[A-Za-z]:", vol["target"]):
            ctx.error((*path, i), f'invalid volume target "{vol["target"]}" (must be absolute)')
            continue
        out.append(vol)
    return _keep(value, out)


# --------------------------------------------------------------------------- services


def build(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    b: dict[str, Any] = {"context": value} if isinstance(value, str) else dict(value)
    # No defaults here: an override file's ``build: {args: ...}`` must not replace the
    # base file's context or dockerfile (see build_defaults, after the merge).
    context = b.get("context")
    if isinstance(context, str) and not _is_remote(context) and not ctx.is_raw(context):
        b["context"] = resolve_path(context or ".", ctx.base_dir, ctx.home)
    for key in ("args", "labels", "additional_contexts", "ssh"):
        if key in b:
            conv = labels if key == "labels" else list_or_dict
            b[key] = conv(b[key], (*path, key), ctx)
    if isinstance(b.get("additional_contexts"), dict):
        b["additional_contexts"] = {
            k: (resolve_path(v, ctx.base_dir, ctx.home)
                if isinstance(v, str) and not ctx.is_raw(v) and not _is_remote(v)
                and not re.match(r"^[a-z-]+:", v) else v)
            for k, v in b["additional_contexts"].items()}
    if "extra_hosts" in b:
        b["extra_hosts"] = extra_hosts(b["extra_hosts"], (*path, "extra_hosts"), ctx)
    if "shm_size" in b:
        b["shm_size"] = size(b["shm_size"], (*path, "shm_size"), ctx)
    return _keep(value, b)


def build_defaults(doc: dict[str, Any], base_dir: str) -> dict[str, Any]:
    """After the merge: a ``build`` without ``context`` builds ``base_dir`` (the project
    directory), one without ``dockerfile``/``dockerfile_inline`` reads ``Dockerfile``."""
    services = doc.get("services")
    if not isinstance(services, dict):
        return doc
    out = {}
    for name, svc in services.items():
        b = svc.get("build") if isinstance(svc, dict) else None
        if isinstance(b, dict) and (not b.get("context") or
                                    ("dockerfile" not in b and "dockerfile_inline" not in b)):
            b = _keep(b, {**b})
            if not b.get("context"):
                b["context"] = posixpath.normpath(base_dir)
            if "dockerfile" not in b and "dockerfile_inline" not in b:
                b["dockerfile"] = "Dockerfile"
            svc = {**svc, "build": b}
        out[name] = svc
    return {**doc, "services": out}


def depends_on(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    if isinstance(value, list):
        return _keep(value, {name: {"condition": "service_started", "required": True}
                             for name in value})
    out: dict[str, Any] = {}
    for name, dep in value.items():
        if dep is RESET:
            out[name] = dep
            continue
        d = dict(dep or {})
        d.setdefault("condition", "service_started")
        d.setdefault("required", True)
        out[name] = d
    return _keep(value, out)


def service_networks(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    if isinstance(value, list):
        return _keep(value, dict.fromkeys(value))
    return value


def env_file(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    items = [value] if isinstance(value, str) else value
    out = []
    for i, item in enumerate(items):
        entry: dict[str, Any] = ({"path": item, "required": True} if isinstance(item, str)
                                 else dict(item))
        if not entry.get("path"):
            ctx.error((*path, i), 'missing "path"')
            continue
        entry.setdefault("required", True)
        if not ctx.is_raw(entry.get("path")):
            entry["path"] = resolve_path(entry["path"], ctx.base_dir, ctx.home)
        out.append(entry)
    return _keep(value, out)


def label_file(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    items = [value] if isinstance(value, str) else value
    return _keep(value, [item if ctx.is_raw(item) else resolve_path(item, ctx.base_dir, ctx.home)
                         for item in items])


def file_refs(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out = []
    for i, item in enumerate(value):
        entry = {"source": item} if isinstance(item, str) else dict(item)
        if not entry.get("source"):
            ctx.error((*path, i), 'missing "source"')
            continue
        if isinstance(entry.get("mode"), str):
            with contextlib.suppress(ValueError):
                entry["mode"] = int(entry["mode"], 8)
        elif isinstance(entry.get("mode"), float):
            entry["mode"] = int(entry["mode"])
        out.append(entry)
    return _keep(value, out)


def healthcheck(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    hc = dict(value)
    test = hc.get("test")
    if isinstance(test, str):
        hc["test"] = ["CMD-SHELL", test]
    elif isinstance(test, list) and test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        ctx.error((*path, "test"),
                  f'invalid test "{test[0]}" (a list must start with "CMD", "CMD-SHELL" or "NONE")')
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in hc:
            hc[key] = duration(hc[key], (*path, key), ctx)
    if isinstance(hc.get("retries"), int) and hc["retries"] < 0:
        ctx.error((*path, "retries"), "must not be negative")
    return _keep(value, hc)


def ulimits(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out = {}
    for name, limit in value.items():
        if isinstance(limit, int):
            out[name] = {"soft": limit, "hard": limit}
        elif isinstance(limit, dict):
            missing = [k for k in ("soft", "hard") if not isinstance(limit.get(k), int)]
            if missing:
                # e.g. `soft: !reset`: the limit is no longer complete
                ctx.error((*path, name), f"needs both soft and hard (missing {', '.join(missing)})")
                continue
            if limit["soft"] > limit["hard"]:
                ctx.error((*path, name), f"soft limit {limit['soft']} is above the hard "
                                         f"limit {limit['hard']}")
            out[name] = dict(limit)
        else:
            out[name] = limit
    return _keep(value, out)


_RESTART = re.compile(r"^(?:|no|always|unless-stopped|on-failure(?::\d+)?)$")


def restart(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET or ctx.is_raw(value):
        return value
    if not _RESTART.match(str(value)):
        ctx.error(path, f'invalid restart policy "{value}" (expected "no", "always", '
                        '"on-failure[:N]" or "unless-stopped")')
    return value


_PULL = re.compile(r"^(?:always|never|missing|if_not_present|build|daily|weekly"
                   r"|refresh|every_\d+[smhdw]?)$")


def pull_policy(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET or ctx.is_raw(value):
        return value
    if not _PULL.match(str(value)):
        ctx.error(path, f'invalid pull policy "{value}"')
    return value


def extends(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    ext = {"service": value} if isinstance(value, str) else dict(value)
    if not ext.get("service"):
        ctx.error(path, 'missing "service"')
        return RESET
    if ext.get("file") and not ctx.is_raw(ext["file"]):
        ext["file"] = resolve_path(ext["file"], ctx.base_dir, ctx.home)
    return ext


def logging(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out = dict(value)
    if isinstance(out.get("options"), dict):
        out["options"] = {k: v for k, v in out["options"].items() if v is not None}
    return _keep(value, out)


def resources(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out = dict(value)
    for key in ("limits", "reservations"):
        part = out.get(key)
        if isinstance(part, dict):
            part = dict(part)
            if "cpus" in part:
                part["cpus"] = cpus(part["cpus"], (*path, key, "cpus"), ctx)
            if "memory" in part:
                part["memory"] = size(part["memory"], (*path, key, "memory"), ctx)
            out[key] = part
    return _keep(value, out)


def restart_policy(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    out = dict(value)
    for key in ("delay", "window"):
        if key in out:
            out[key] = duration(out[key], (*path, key), ctx)
    if "condition" in out and out["condition"] not in ("none", "on-failure", "any") \
            and not ctx.is_raw(out["condition"]):
        ctx.error((*path, "condition"),
                  f'invalid value "{out["condition"]}" (expected "none", "on-failure" or "any")')
    return _keep(value, out)


def cpu_shares(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET or ctx.is_raw(value):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        ctx.error(path, f'must be an integer, not "{value}"')
        return value


def tmpfs(value: Any, path: KeyPath, ctx: Context) -> Any:
    return str_list(value, path, ctx)


# --------------------------------------------------------------------------- top level


def external(value: Any, path: KeyPath, ctx: Context) -> Any:
    """``external: {name: x}`` (legacy) -> ``external: true`` plus ``name: x`` on the parent."""
    return value


def _top_resource(value: Any, path: KeyPath, ctx: Context) -> Any:
    if value is RESET:
        return value
    res = dict(value or {})
    ext = res.get("external")
    if isinstance(ext, dict):
        res["external"] = True
        if ext.get("name"):
            res["name"] = ext["name"]
    if "labels" in res:
        res["labels"] = labels(res["labels"], (*path, "labels"), ctx)
    if isinstance(res.get("driver_opts"), dict):
        res["driver_opts"] = {k: str(v) for k, v in res["driver_opts"].items()}
    return _keep(value, res)


def top_file_object(value: Any, path: KeyPath, ctx: Context) -> Any:
    res = _top_resource(value, path, ctx)
    if isinstance(res, dict) and res.get("file") and not ctx.is_raw(res["file"]):
        res["file"] = resolve_path(res["file"], ctx.base_dir, ctx.home)
    return res


def top_network(value: Any, path: KeyPath, ctx: Context) -> Any:
    res = _top_resource(value, path, ctx)
    ipam = res.get("ipam") if isinstance(res, dict) else None
    if isinstance(ipam, dict):
        for i, pool in enumerate(ipam.get("config") or []):
            for key in ("subnet", "ip_range"):
                if isinstance(pool.get(key), str) and not ctx.is_raw(pool[key]):
                    try:
                        ipaddress.ip_network(pool[key], strict=False)
                    except ValueError:
                        ctx.error((*path, "ipam", "config", i, key),
                                  f'invalid subnet "{pool[key]}"')
            if isinstance(pool.get("gateway"), str) and not ctx.is_raw(pool["gateway"]):
                try:
                    ipaddress.ip_address(pool["gateway"])
                except ValueError:
                    ctx.error((*path, "ipam", "config", i, "gateway"),
                              f'invalid IP address "{pool["gateway"]}"')
    return res


def include(value: Any, path: KeyPath, ctx: Context) -> Any:
    out = []
    for i, item in enumerate(value):
        entry = {"path": item} if isinstance(item, str) else dict(item)
        if not entry.get("path"):
            ctx.error((*path, i), 'missing "path"')
            continue
        paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        entry["path"] = [resolve_path(p, ctx.base_dir, ctx.home) for p in paths]
        if "env_file" in entry:
            files = entry["env_file"]
            files = files if isinstance(files, list) else [files]
            entry["env_file"] = [resolve_path(p, ctx.base_dir, ctx.home) for p in files]
        if entry.get("project_directory"):
            entry["project_directory"] = resolve_path(entry["project_directory"], ctx.base_dir,
                                                      ctx.home)
        out.append(entry)
    return out


CANONICAL: RuleTable[Rule] = RuleTable({
    "include": include,
    "services.*.annotations": labels,
    "services.*.build": build,
    "services.*.command": command,
    "services.*.configs": file_refs,
    "services.*.cpu_shares": cpu_shares,
    "services.*.cpus": cpus,
    "services.*.depends_on": depends_on,
    "services.*.deploy.labels": labels,
    "services.*.deploy.resources": resources,
    "services.*.deploy.restart_policy": restart_policy,
    "services.*.dns": str_list,
    "services.*.dns_search": str_list,
    "services.*.entrypoint": command,
    "services.*.env_file": env_file,
    "services.*.label_file": label_file,
    "services.*.environment": list_or_dict,
    "services.*.expose": expose,
    "services.*.extends": extends,
    "services.*.extra_hosts": extra_hosts,
    "services.*.healthcheck": healthcheck,
    "services.*.labels": labels,
    "services.*.logging": logging,
    "services.*.mem_limit": size,
    "services.*.mem_reservation": size,
    "services.*.memswap_limit": size,
    "services.*.networks": service_networks,
    "services.*.ports": ports,
    "services.*.pull_policy": pull_policy,
    "services.*.restart": restart,
    "services.*.secrets": file_refs,
    "services.*.shm_size": size,
    "services.*.stop_grace_period": duration,
    "services.*.sysctls": list_or_dict,
    "services.*.tmpfs": tmpfs,
    "services.*.ulimits": ulimits,
    "services.*.volumes": volumes,
    "networks.*": top_network,
    "volumes.*": _top_resource,
    "secrets.*": top_file_object,
    "configs.*": top_file_object,
})

_MAX_DEPTH = max(len(p.split(".")) for p in CANONICAL)


def _split_resets(value: Any, at: tuple[Any, ...] = ()) -> tuple[Any, list[tuple[Any, ...]]]:
    """``value`` without its ``!reset`` mapping entries, and the key paths they were at.

    A rule rewrites a value without knowing about the tags; the entries go back in
    afterwards (:func:`_put_resets`) so that the merge still removes those keys.
    ``!reset`` as a sequence item resets nothing and is dropped."""
    if isinstance(value, dict):
        found: list[tuple[Any, ...]] = []
        out = {}
        for k, v in value.items():
            if v is RESET:
                found.append((*at, k))
                continue
            out[k], inner = _split_resets(v, (*at, k))
            found += inner
        return _keep(value, out), found
    if isinstance(value, list):
        items = [_split_resets(v, at)[0] for v in value if v is not RESET]
        return _keep(value, items), []
    return value, []


def _put_resets(value: Any, paths: list[tuple[Any, ...]]) -> Any:
    """Put ``!reset`` back at each path whose parent the rule kept as a mapping
    (copying the mappings on the way: rule output may share input objects)."""
    for keys in paths:
        if isinstance(value, dict):
            value = _put_reset(value, keys)
    return value


def _put_reset(node: dict[Any, Any], keys: tuple[Any, ...]) -> dict[Any, Any]:
    head, rest = keys[0], keys[1:]
    value: Any = RESET
    if rest:
        child = node.get(head)
        if not isinstance(child, dict):
            return node
        value = _put_reset(child, rest)
    out: dict[Any, Any] = _keep(node, {**node, head: value})
    return out


def _walk(value: Any, path: KeyPath, ctx: Context) -> Any:
    if path:
        rule = CANONICAL.find(path)
        if rule is not None:
            if value is RESET:
                return value
            clean, resets = _split_resets(value)
            return _put_resets(rule(clean, path, ctx), resets)
    if not isinstance(value, dict) or len(path) >= _MAX_DEPTH:
        return value
    out = {k: (v if str(k).startswith("x-") else _walk(v, (*path, k), ctx))
           for k, v in value.items()}
    return _keep(value, out)


def canonicalize(doc: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """Return the long-form copy of one checked document; problems go to ``ctx.errors``."""
    services = doc.get("services")
    if isinstance(services, dict):
        doc = {**doc, "services": {name: (svc if svc is not None else {})
                                   for name, svc in services.items()}}
    for key in ("networks", "volumes"):
        if isinstance(doc.get(key), dict):
            doc = {**doc, key: {n: (v if v is not None else {}) for n, v in doc[key].items()}}
    result: dict[str, Any] = _walk(doc, (), ctx)
    return result
