"""Stage: check one file's document against the Compose schema, casting scalars.

The schema is a table of small checker objects (``Obj``, ``ListOf``, ``MapOf``,
``OneOf``, scalars). One walk over the document checks every key and type,
collects *all* problems as :class:`SchemaError` with the real key path
(``services.web.ports[1]``), and returns a new document where interpolated
strings are cast to the type the key expects (``"3"`` -> ``3`` for
``deploy.replicas``, ``"true"`` -> ``True`` for ``read_only``), as docker
compose does after interpolation.

Unknown keys are errors, except ``x-*`` extension keys, which are kept.
``!reset`` values pass everywhere (the merge consumes them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import SchemaError
from .keypath import KeyPath, fmt
from .yamlread import RESET, OverrideList, OverrideMapping

__all__ = ["check_document", "SERVICE_KEYS", "TOP_LEVEL_KEYS"]

Errors = list[SchemaError]


class _Invalid:
    """What a checker returns for a value it rejected: the containers drop it, so
    the later stages only ever see well-formed data."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()


class Checker:
    """Checks one value at ``path``; returns the (possibly cast) value."""

    name = "value"

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        """A cheap type test used by :class:`OneOf` to pick a branch."""
        return True


class _Ctx:
    def __init__(self, file: str | None) -> None:
        self.file = file
        self.errors: Errors = []

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(SchemaError(self.file, fmt(path) or None, message))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _wrap(value: Any, like: Any, new: Any) -> Any:
    """Keep the ``!override`` marker type of ``like`` on the rebuilt container ``new``."""
    if isinstance(like, OverrideMapping):
        out = OverrideMapping()
        out.update(new)
        return out
    if isinstance(like, OverrideList):
        return OverrideList(new)
    return new


class Str(Checker):
    name = "a string"

    def __init__(self, enum: tuple[str, ...] | None = None, numbers: bool = True) -> None:
        self.enum = enum
        self.numbers = numbers

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) or (
            self.numbers and isinstance(value, int | float) and not isinstance(value, bool))

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET:
            return value
        if not self.accepts(value):
            ctx.error(path, f"must be a string, not {_type_name(value)}")
            return INVALID
        value = str(value)
        if self.enum is not None and value not in self.enum:
            choices = ", ".join(f'"{e}"' for e in self.enum)
            ctx.error(path, f'invalid value "{value}" (expected one of {choices})')
        return value


class Int(Checker):
    name = "an integer"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str)

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET:
            return value
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            ctx.error(path, f"must be an integer, not {_type_name(value)}")
            return INVALID
        if isinstance(value, float):
            if value.is_integer():
                return int(value)
            ctx.error(path, f"must be an integer, not {value}")
            return INVALID
        if isinstance(value, str):
            try:
                return int(value.strip(), 0) if value.strip()[:2] in ("0x", "0o") else int(value)
            except ValueError:
                ctx.error(path, f'must be an integer, not "{value}"')
                return INVALID
        return value


class Num(Checker):
    name = "a number"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int | float | str) and not isinstance(value, bool)

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            ctx.error(path, f"must be a number, not {_type_name(value)}")
            return INVALID
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                ctx.error(path, f'must be a number, not "{value}"')
                return INVALID
            return int(f) if f.is_integer() and "." not in value else f
        return value


_TRUE = {"true", "yes", "y", "on", "1"}
_FALSE = {"false", "no", "n", "off", "0"}


class Bool(Checker):
    name = "a boolean"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool) or isinstance(value, str) and value.lower() in _TRUE | _FALSE

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET or isinstance(value, bool):
            return value
        if isinstance(value, str):
            low = value.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        shown = repr(value) if isinstance(value, str) else _type_name(value)
        ctx.error(path, f"must be a boolean, not {shown}")
        return INVALID


class Null(Checker):
    name = "null"

    def accepts(self, value: Any) -> bool:
        return value is None

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is not None and value is not RESET:
            ctx.error(path, f"must be null, not {_type_name(value)}")
            return INVALID
        return value


class Anything(Checker):
    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        return value


class ListOf(Checker):
    name = "a list"

    def __init__(self, item: Checker, unique: bool = False) -> None:
        self.item = item
        self.unique = unique

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list)

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET:
            return value
        if not isinstance(value, list):
            ctx.error(path, f"must be a list, not {_type_name(value)}")
            return INVALID
        out = [self.item(v, (*path, i), ctx) for i, v in enumerate(value) if v is not RESET]
        out = [v for v in out if v is not INVALID]
        if self.unique:
            seen: set[str] = set()
            for i, v in enumerate(out):
                key = repr(v)
                if key in seen:
                    ctx.error((*path, i), f"duplicate entry {v!r}")
                seen.add(key)
        return _wrap(value, value, out)


class MapOf(Checker):
    """A mapping with free-form keys (optionally matching ``key_check``)."""

    name = "a mapping"

    def __init__(self, item: Checker, key_check: Callable[[str], str | None] | None = None) -> None:
        self.item = item
        self.key_check = key_check

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET:
            return value
        if not isinstance(value, dict):
            ctx.error(path, f"must be a mapping, not {_type_name(value)}")
            return INVALID
        out = {}
        for k in sorted(value, key=str):
            v = value[k]
            if not isinstance(k, str):
                k_str = str(k).lower() if isinstance(k, bool) else str(k)
                k = k_str
            if self.key_check is not None and not k.startswith("x-"):
                problem = self.key_check(k)
                if problem:
                    ctx.error((*path, k), problem)
            checked = self.item(v, (*path, k), ctx)
            if checked is not INVALID:
                out[k] = checked
        return _wrap(value, value, {k: out[k] for k in (str(x) for x in value) if k in out})


class Obj(Checker):
    """A mapping with known keys; ``x-*`` keys are always allowed."""

    name = "a mapping"

    def __init__(self, props: Mapping[str, Checker], required: tuple[str, ...] = (),
                 extensions: bool = True) -> None:
        self.props = dict(props)
        self.required = required
        self.extensions = extensions

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict)

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET:
            return value
        if not isinstance(value, dict):
            ctx.error(path, f"must be a mapping, not {_type_name(value)}")
            return INVALID
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            checker = self.props.get(key)
            if v is None and checker is not None and not checker.accepts(None):
                continue  # ``key:`` with no value means the key is not set
            if checker is None:
                if self.extensions and key.startswith("x-"):
                    out[key] = v
                    continue
                ctx.error((*path, key), "unknown key (not allowed here)")
                continue
            checked = checker(v, (*path, key), ctx)
            if checked is not INVALID:
                out[key] = checked
        for key in self.required:
            if key not in out and not isinstance(value, OverrideMapping):
                if key not in value:
                    ctx.error(path, f'missing required key "{key}"')
                return INVALID
        return _wrap(value, value, out)


class OneOf(Checker):
    """The first alternative whose :meth:`accepts` holds checks the value."""

    def __init__(self, *options: Checker, name: str | None = None) -> None:
        self.options = options
        self.name = name or " or ".join(o.name for o in options)

    def accepts(self, value: Any) -> bool:
        return any(o.accepts(value) for o in self.options)

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is RESET:
            return value
        for option in self.options:
            if option.accepts(value):
                return option(value, path, ctx)
        ctx.error(path, f"must be {self.name}, not {_type_name(value)}")
        return INVALID


# --------------------------------------------------------------------------- building blocks

STR = Str()
INT = Int()
NUM = Num()
BOOL = Bool()
NULL = Null()
ANY = Anything()
STR_LIST = ListOf(STR)
STR_OR_LIST = OneOf(STR, STR_LIST, name="a string or a list of strings")
NULLABLE_STR = OneOf(NULL, STR, name="a string or null")
DURATION = OneOf(Str(), name="a duration")
SIZE = OneOf(Str(numbers=True), name="a byte size")
CMD = OneOf(NULL, STR, ListOf(STR), name="a string or a list of strings")


class _EnvValue(Checker):
    """A mapping value in list-or-dict keys: scalars become strings, null stays null."""

    name = "a string, number, boolean or null"

    def __call__(self, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
        if value is None or value is RESET:
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        ctx.error(path, f"must be a string, number, boolean or null, not {_type_name(value)}")
        return INVALID


LIST_OR_DICT = OneOf(
    MapOf(_EnvValue()), ListOf(Str(), unique=False),
    name="a mapping or a list of KEY=VALUE strings")
EXTRA_HOSTS = OneOf(MapOf(OneOf(STR, STR_LIST)), STR_LIST,
                    name="a mapping or a list of HOST:IP strings")
STR_MAP = MapOf(OneOf(Str(), NULL, Bool()))
EXTERNAL = OneOf(BOOL, Obj({"name": STR}), name="a boolean or a mapping")

ULIMITS = MapOf(OneOf(INT, Obj({"soft": INT, "hard": INT}, required=("soft", "hard")),
                      name="an integer or a mapping with soft and hard"))

RESOURCE = Obj({
    "cpus": NUM,
    "memory": SIZE,
    "pids": INT,
    "devices": ListOf(Obj({
        "capabilities": STR_LIST, "count": OneOf(INT, Str()), "device_ids": STR_LIST,
        "driver": STR, "options": LIST_OR_DICT,
    })),
    "generic_resources": ListOf(ANY),
})

UPDATE_CONFIG = Obj({
    "parallelism": INT, "delay": DURATION, "failure_action": STR, "monitor": DURATION,
    "max_failure_ratio": NUM, "order": Str(("start-first", "stop-first")),
})

DEPLOY = Obj({
    "mode": STR,
    "endpoint_mode": STR,
    "replicas": INT,
    "labels": LIST_OR_DICT,
    "rollback_config": UPDATE_CONFIG,
    "update_config": UPDATE_CONFIG,
    "resources": Obj({"limits": RESOURCE, "reservations": RESOURCE}),
    "restart_policy": Obj({
        "condition": STR, "delay": DURATION, "max_attempts": INT, "window": DURATION,
    }),
    "placement": Obj({
        "constraints": STR_LIST, "preferences": ListOf(Obj({"spread": STR})),
        "max_replicas_per_node": INT,
    }),
})

HEALTHCHECK = Obj({
    "disable": BOOL, "interval": DURATION, "retries": INT, "test": CMD, "timeout": DURATION,
    "start_period": DURATION, "start_interval": DURATION,
})

BUILD = OneOf(STR, Obj({
    "context": STR, "dockerfile": STR, "dockerfile_inline": STR, "entitlements": STR_LIST,
    "args": LIST_OR_DICT, "ssh": LIST_OR_DICT, "labels": LIST_OR_DICT,
    "cache_from": STR_LIST, "cache_to": STR_LIST, "no_cache": BOOL,
    "additional_contexts": LIST_OR_DICT, "network": STR, "provenance": OneOf(STR, BOOL),
    "sbom": OneOf(STR, BOOL), "pull": BOOL, "target": STR, "shm_size": SIZE,
    "extra_hosts": EXTRA_HOSTS, "isolation": STR, "privileged": BOOL,
    "secrets": ListOf(OneOf(STR, Obj({"source": STR, "target": STR, "uid": STR, "gid": STR,
                                      "mode": OneOf(INT, STR)}))),
    "tags": STR_LIST, "ulimits": ULIMITS, "platforms": STR_LIST,
}), name="a string or a mapping")

PORT = OneOf(
    Str(),
    Obj({"name": STR, "mode": STR, "host_ip": STR, "target": OneOf(INT, STR),
         "published": OneOf(Str(), name="a string or a number"), "protocol": STR,
         "app_protocol": STR}),
    name="a string, a number or a mapping",
)

SERVICE_VOLUME = OneOf(Str(numbers=False), Obj({
    "type": Str(("bind", "volume", "tmpfs", "npipe", "cluster", "image")),
    "source": STR, "target": STR, "read_only": BOOL, "consistency": STR,
    "bind": Obj({"propagation": STR, "create_host_path": BOOL, "recursive": STR,
                 "selinux": Str(("z", "Z"))}),
    "volume": Obj({"nocopy": BOOL, "subpath": STR, "labels": LIST_OR_DICT}),
    "tmpfs": Obj({"size": SIZE, "mode": NUM}),
    "image": Obj({"subpath": STR}),
}, required=("type",)), name="a string or a mapping")

DEPENDS_ON = OneOf(
    ListOf(STR, unique=True),
    MapOf(Obj({
        "condition": Str(("service_started", "service_healthy",
                          "service_completed_successfully")),
        "required": BOOL, "restart": BOOL,
    })),
    name="a list of service names or a mapping",
)

SERVICE_NETWORKS = OneOf(
    ListOf(STR, unique=True),
    MapOf(OneOf(NULL, Obj({
        "aliases": STR_LIST, "interface_name": STR, "ipv4_address": STR, "ipv6_address": STR,
        "link_local_ips": STR_LIST, "mac_address": STR, "driver_opts": MapOf(OneOf(STR, NUM)),
        "priority": NUM, "gw_priority": NUM,
    }), name="null or a mapping")),
    name="a list of network names or a mapping",
)

FILE_REFS = ListOf(OneOf(STR, Obj({
    "source": STR, "target": STR, "uid": STR, "gid": STR, "mode": OneOf(NUM, STR),
}, required=("source",)), name="a string or a mapping"))

ENV_FILE = OneOf(STR, ListOf(OneOf(STR, Obj({
    "path": STR, "required": BOOL, "format": STR,
}), name="a string or a mapping")), name="a string or a list")

SERVICE_KEYS: dict[str, Checker] = {
    "annotations": LIST_OR_DICT,
    "attach": BOOL,
    "blkio_config": Obj({
        "device_read_bps": ListOf(ANY), "device_read_iops": ListOf(ANY),
        "device_write_bps": ListOf(ANY), "device_write_iops": ListOf(ANY),
        "weight": INT, "weight_device": ListOf(ANY),
    }),
    "build": BUILD,
    "cap_add": ListOf(STR, unique=True),
    "cap_drop": ListOf(STR, unique=True),
    "cgroup": Str(("host", "private")),
    "cgroup_parent": STR,
    "command": CMD,
    "configs": FILE_REFS,
    "container_name": STR,
    "cpu_count": INT,
    "cpu_percent": INT,
    "cpu_period": OneOf(NUM, STR),
    "cpu_quota": OneOf(NUM, STR),
    "cpu_rt_period": OneOf(NUM, STR),
    "cpu_rt_runtime": OneOf(NUM, STR),
    "cpu_shares": OneOf(NUM, STR),
    "cpus": NUM,
    "cpuset": STR,
    "credential_spec": Obj({"config": STR, "file": STR, "registry": STR}),
    "depends_on": DEPENDS_ON,
    "deploy": OneOf(NULL, DEPLOY),
    "develop": ANY,
    "device_cgroup_rules": STR_LIST,
    "devices": ListOf(OneOf(STR, Obj({"source": STR, "target": STR, "permissions": STR}))),
    "dns": STR_OR_LIST,
    "dns_opt": ListOf(STR, unique=True),
    "dns_search": STR_OR_LIST,
    "domainname": STR,
    "entrypoint": CMD,
    "env_file": ENV_FILE,
    "label_file": STR_OR_LIST,
    "environment": LIST_OR_DICT,
    "expose": ListOf(OneOf(STR, name="a string or a number"), unique=True),
    "extends": OneOf(STR, Obj({"service": STR, "file": STR}, required=("service",))),
    "external_links": ListOf(STR, unique=True),
    "extra_hosts": EXTRA_HOSTS,
    "gpus": OneOf(Str(("all",)), ListOf(ANY)),
    "group_add": ListOf(STR, unique=True),
    "healthcheck": HEALTHCHECK,
    "hostname": STR,
    "image": STR,
    "init": BOOL,
    "ipc": STR,
    "isolation": STR,
    "labels": LIST_OR_DICT,
    "links": ListOf(STR, unique=True),
    "logging": Obj({"driver": STR, "options": MapOf(OneOf(NULL, STR))}),
    "mac_address": STR,
    "mem_limit": SIZE,
    "mem_reservation": SIZE,
    "mem_swappiness": INT,
    "memswap_limit": SIZE,
    "models": ANY,
    "network_mode": STR,
    "networks": SERVICE_NETWORKS,
    "oom_kill_disable": BOOL,
    "oom_score_adj": INT,
    "pid": OneOf(NULL, STR),
    "pids_limit": INT,
    "platform": STR,
    "ports": ListOf(PORT),
    "post_start": ListOf(ANY),
    "pre_stop": ListOf(ANY),
    "privileged": BOOL,
    "profiles": ListOf(STR, unique=True),
    "provider": ANY,
    "pull_policy": STR,
    "pull_refresh_after": STR,
    "read_only": BOOL,
    "restart": STR,
    "runtime": STR,
    "scale": INT,
    "secrets": FILE_REFS,
    "security_opt": ListOf(STR, unique=True),
    "shm_size": SIZE,
    "stdin_open": BOOL,
    "stop_grace_period": DURATION,
    "stop_signal": STR,
    "storage_opt": MapOf(ANY),
    "sysctls": LIST_OR_DICT,
    "tmpfs": STR_OR_LIST,
    "tty": BOOL,
    "ulimits": ULIMITS,
    "use_api_socket": BOOL,
    "user": STR,
    "userns_mode": STR,
    "uts": STR,
    "volumes": ListOf(SERVICE_VOLUME),
    "volumes_from": ListOf(STR, unique=True),
    "working_dir": STR,
}

SERVICE = OneOf(NULL, Obj(SERVICE_KEYS), name="a mapping")

NETWORK = OneOf(NULL, Obj({
    "name": STR, "driver": STR, "driver_opts": MapOf(OneOf(STR, NUM)),
    "ipam": Obj({
        "driver": STR,
        "config": ListOf(Obj({"subnet": STR, "ip_range": STR, "gateway": STR,
                              "aux_addresses": MapOf(STR)})),
        "options": MapOf(STR),
    }),
    "external": EXTERNAL, "internal": BOOL, "enable_ipv4": BOOL, "enable_ipv6": BOOL,
    "attachable": BOOL, "labels": LIST_OR_DICT,
}), name="null or a mapping")

VOLUME = OneOf(NULL, Obj({
    "name": STR, "driver": STR, "driver_opts": MapOf(OneOf(STR, NUM)),
    "external": EXTERNAL, "labels": LIST_OR_DICT,
}), name="null or a mapping")

SECRET = Obj({
    "name": STR, "environment": STR, "file": STR, "external": EXTERNAL, "labels": LIST_OR_DICT,
    "driver": STR, "driver_opts": MapOf(OneOf(STR, NUM)), "template_driver": STR,
})

CONFIG = Obj({
    "name": STR, "content": STR, "environment": STR, "file": STR, "external": EXTERNAL,
    "labels": LIST_OR_DICT, "template_driver": STR,
})

INCLUDE = ListOf(OneOf(STR, Obj({
    "path": STR_OR_LIST, "env_file": STR_OR_LIST, "project_directory": STR,
}, required=("path",)), name="a string or a mapping"))

_SERVICE_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _service_name(name: str) -> str | None:
    if not name or not set(name) <= _SERVICE_NAME_OK:
        return f'invalid service name "{name}" (allowed: letters, digits, ".", "_", "-")'
    return None


TOP_LEVEL_KEYS: dict[str, Checker] = {
    "version": STR,
    "name": STR,
    "include": INCLUDE,
    "services": OneOf(NULL, MapOf(SERVICE, key_check=_service_name), name="a mapping"),
    "networks": OneOf(NULL, MapOf(NETWORK), name="a mapping"),
    "volumes": OneOf(NULL, MapOf(VOLUME), name="a mapping"),
    "secrets": OneOf(NULL, MapOf(SECRET), name="a mapping"),
    "configs": OneOf(NULL, MapOf(CONFIG), name="a mapping"),
    "models": ANY,
}

DOCUMENT = Obj(TOP_LEVEL_KEYS)


def check_document(doc: Any, *,
                   file: str | None = None) -> tuple[dict[str, Any], list[SchemaError]]:
    """Check ``doc`` (one file, after interpolation); return the cast copy and every error.

    The errors are sorted by key path; the caller decides whether to raise.
    """
    ctx = _Ctx(file)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        message = f"the top level must be a mapping, not {_type_name(doc)}"
        return {}, [SchemaError(file, None, message)]
    out = DOCUMENT(doc, (), ctx)
    if out is INVALID:
        out = {}
    return out, sorted(ctx.errors, key=lambda e: (e.path or "", e.message))
