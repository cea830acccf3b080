"""Convergence, step two of three: ``plan(project, observed, options)`` — pure, no I/O.

Observe (the backend takes one snapshot), plan (this module: decide every
change and why), execute (:mod:`pycompose.compose.scheduler`: do them, in
dependency order, deciding nothing). A :class:`Plan` is a set of single-effect
:class:`Operation` chains, one chain per container, grouped by service; each
operation carries its cause. ``str(plan)`` prints one line per operation::

    network default: create — missing
    db-1: leave running — unchanged
    web-1: stop — recreate: environment.DEBUG changed
    web-1: remove — recreate: environment.DEBUG changed
    web-1: create — recreate: environment.DEBUG changed
    web-1: start — recreate: environment.DEBUG changed

which is what ``up --dry-run`` shows and what the golden tests compare.
"Unchanged" is decided by the config hash (:mod:`pycompose.compose.hashing`),
stored with every container; the stored configuration only serves to name
what changed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from pycompose.compose import hashing
from pycompose.compose.backend import Observed, ObservedContainer
from pycompose.compose.errors import ComposeError
from pycompose.compose.model import Dependency, FrozenDict, Project, Service

HashFn = Callable[[Service], str]


class UnknownServiceError(ComposeError):
    """A service named on the command line is not in the project."""


class Action(enum.Enum):
    CREATE_NETWORK = "create network"
    CREATE_VOLUME = "create volume"
    CREATE = "create"
    START = "start"
    STOP = "stop"
    REMOVE = "remove"
    KEEP = "keep"
    REMOVE_NETWORK = "remove network"
    REMOVE_VOLUME = "remove volume"


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One effect. ``subject`` is what it acts on as the user reads it (``web-1``,
    ``network default``); the other fields are what the executor needs to do it."""

    action: Action
    subject: str
    cause: str
    service: str | None = None
    number: int | None = None
    name: str | None = None  # container name (create) or host name of a network/volume
    key: str | None = None  # network / volume key
    container_id: str | None = None  # existing container acted on (start/stop/remove/keep)
    inherit_from: str | None = None  # create: the container being replaced
    keep_state: str = ""  # keep: the state it is left in

    def __str__(self) -> str:
        if self.action is Action.KEEP:
            verb = "leave running" if self.keep_state in ("running", "paused", "restarting") \
                else f"leave {self.keep_state or 'as is'}"
        elif self.action in (Action.CREATE_NETWORK, Action.CREATE_VOLUME):
            verb = "create"
        elif self.action in (Action.REMOVE_NETWORK, Action.REMOVE_VOLUME):
            verb = "remove"
        else:
            verb = self.action.value
        return f"{self.subject}: {verb} — {self.cause}"


Chain = tuple[Operation, ...]
"""Operations on one container (or one network/volume), done in order."""


@dataclass(frozen=True, kw_only=True)
class Plan:
    project: str
    order: tuple[str, ...]
    """Services in dependency order (dependencies first; reversed for ``down``)."""
    prepare: tuple[Operation, ...] = ()
    """Networks and volumes, before any container."""
    services: FrozenDict[str, tuple[Chain, ...]] = field(default_factory=FrozenDict)
    """Per service: one chain per container, run in parallel once dependencies allow."""
    cleanup: tuple[Operation, ...] = ()
    """After the containers: orphans, networks and volumes to remove."""
    warnings: tuple[str, ...] = ()
    reverse: bool = False
    """True for ``down``: a service waits for its dependents instead of its dependencies."""

    def operations(self) -> list[Operation]:
        ops = list(self.prepare)
        names = reversed(self.order) if self.reverse else self.order
        for name in names:
            for chain in self.services.get(name, ()):
                ops.extend(chain)
        for name in sorted(set(self.services) - set(self.order)):
            for chain in self.services[name]:
                ops.extend(chain)
        ops.extend(self.cleanup)
        return ops

    @property
    def changes(self) -> bool:
        """True when executing the plan would change anything."""
        return any(op.action is not Action.KEEP for op in self.operations())

    def __str__(self) -> str:
        lines = [str(op) for op in self.operations()]
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class UpOptions:
    services: tuple[str, ...] = ()
    """Services named on the command line (empty: all)."""
    no_deps: bool = False
    force_recreate: bool = False
    no_recreate: bool = False
    remove_orphans: bool = False
    no_start: bool = False
    scale: Mapping[str, int] = field(default_factory=dict)
    config_hash: HashFn | None = None
    """The hash deciding "unchanged"; ``None``: :func:`pycompose.compose.hashing.config_hash`."""
    image_ids: Mapping[str, str] = field(default_factory=dict)
    """Service -> id of the image it should run now (after pulls and builds); a container
    made from another image is recreated ("image changed")."""


@dataclass(frozen=True, kw_only=True)
class DownOptions:
    volumes: bool = False
    remove_orphans: bool = False
    services: tuple[str, ...] = ()
    """Only these services (``stop``/``rm`` of a subset); empty: the whole project."""
    remove_networks: bool = True


# --------------------------------------------------------------------------- helpers


def container_name(project: str, service: Service, number: int) -> str:
    if service.container_name and number == 1:
        return str(service.container_name)
    return f"{project}-{service.name}-{number}"


def service_dependencies(project: Project, service: Service) -> dict[str, Dependency]:
    """Everything ``service`` waits for, with its condition: ``depends_on`` as written, and
    ``links``/``network_mode: service:``/``volumes_from`` as ``service_started``. Optional
    (``required: false``) dependencies that are not in the project are left out."""
    deps: dict[str, Dependency] = {}
    started = Dependency(condition="service_started")
    for link in service.links:
        deps.setdefault(link.split(":", 1)[0], started)
    if service.network_mode and service.network_mode.startswith("service:"):
        deps.setdefault(service.network_mode.split(":", 1)[1], started)
    for ref in service.volumes_from:
        if not ref.startswith("container:"):
            deps.setdefault(ref.split(":", 1)[0], started)
    for name, dep in service.depends_on.items():
        deps[name] = dep
    return {n: d for n, d in deps.items() if n in project.services and n != service.name}


def dependency_graph(project: Project) -> nx.DiGraph:
    """Edges ``dependency -> dependent`` with the :class:`Dependency` as ``dep`` attribute."""
    g: nx.DiGraph = nx.DiGraph()
    g.add_nodes_from(sorted(project.services))
    for name in sorted(project.services):
        for dep, spec in sorted(service_dependencies(project, project.services[name]).items()):
            g.add_edge(dep, name, dep=spec)
    return g


def topological_order(project: Project) -> tuple[str, ...]:
    return tuple(nx.lexicographical_topological_sort(dependency_graph(project)))


def service_config(service: Service) -> dict[str, Any]:
    """The plain configuration stored with a container, to explain later changes: exactly
    what the config hash covers."""
    return dict(hashing.hash_input(service))


def _default_hash(service: Service) -> str:
    return str(hashing.config_hash(service))


def describe_change(old: Mapping[str, Any] | None, new: Mapping[str, Any], limit: int = 3) -> str:
    """``environment.DEBUG changed`` — the dotted paths that differ, at most ``limit`` named."""
    if old is None:
        return "configuration changed"
    paths = sorted(_diff_paths(old, new, ""))
    if not paths:
        return "configuration changed"
    shown = ", ".join(paths[:limit])
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return f"{shown}{more} changed"


def _diff_paths(old: Any, new: Any, prefix: str) -> Iterable[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                yield path
            elif old[key] != new[key]:
                yield from _diff_paths(old[key], new[key], path)
        return
    if old != new:
        yield prefix or "(root)"


# --------------------------------------------------------------------------- up


def selected_services(project: Project, options: UpOptions) -> list[str]:
    """The named services (all if none), plus their dependencies unless ``no_deps``."""
    unknown = [s for s in options.services if s not in project.services]
    if unknown:
        known = ", ".join(sorted(project.services)) or "none"
        raise UnknownServiceError(f"no such service: {', '.join(unknown)} (services: {known})")
    if not options.services:
        return list(project.services)
    chosen = set(options.services)
    if not options.no_deps:
        g = dependency_graph(project)
        for name in options.services:
            chosen |= nx.ancestors(g, name)
    return sorted(chosen)


def _replicas(service: Service, options: UpOptions) -> int:
    return options.scale.get(service.name, service.replicas)


def plan_up(project: Project, observed: Observed, options: UpOptions | None = None) -> Plan:
    """The operations that bring ``observed`` to ``project`` (see module docstring)."""
    options = options or UpOptions()
    hash_fn = options.config_hash or _default_hash
    selected = selected_services(project, options)
    order = tuple(n for n in topological_order(project) if n in selected)
    warnings: list[str] = []

    prepare: list[Operation] = []
    for key in sorted(_networks_used(project, selected)):
        net = project.networks.get(key)
        if net is not None and net.external:
            continue
        if key not in observed.networks:
            prepare.append(Operation(action=Action.CREATE_NETWORK, subject=f"network {key}",
                                     cause="missing", key=key,
                                     name=net.name if net else f"{project.name}_{key}"))
    for key in sorted(_volumes_used(project, selected)):
        vol = project.volumes[key]
        if vol.external:
            continue
        if key not in observed.volumes:
            prepare.append(Operation(action=Action.CREATE_VOLUME, subject=f"volume {key}",
                                     cause="missing", key=key, name=vol.name))

    recreated: set[str] = set()
    services: dict[str, tuple[Chain, ...]] = {}
    for name in order:
        service = project.services[name]
        want_hash = hash_fn(service)
        restart_because = sorted(
            dep for dep, spec in service_dependencies(project, service).items()
            if spec.restart and dep in recreated)
        shared = _namespace_owner(project, service)
        if shared in recreated:
            # Its network namespace went away with the old container: join the new one.
            restart_because.append(f"{shared} (network_mode: {service.network_mode})")
        chains = _plan_service(project, service, observed.of_service(name), want_hash,
                               _replicas(service, options), options, restart_because)
        if any(op.action is Action.REMOVE for chain in chains for op in chain
               if op.number is not None and op.number <= _replicas(service, options)):
            recreated.add(name)
        services[name] = tuple(chains)

    cleanup: list[Operation] = []
    orphans = [c for c in observed.containers
               if c.service not in project.services and not c.oneoff]
    for c in sorted(orphans, key=lambda c: c.name):
        if options.remove_orphans:
            subject = c.name
            if c.running:
                cleanup.append(Operation(action=Action.STOP, subject=subject, name=c.name,
                                         service=c.service,
                                         number=c.number, container_id=c.id,
                                         cause="orphan: service not in the project"))
            cleanup.append(Operation(action=Action.REMOVE, subject=subject, name=c.name,
                                     service=c.service,
                                     number=c.number, container_id=c.id,
                                     cause="orphan: service not in the project"))
        else:
            warnings.append(
                f"found orphan container {c.name} (service {c.service!r} is not in the "
                f"project); run with --remove-orphans to remove it")
    return Plan(project=project.name, order=order, prepare=tuple(prepare),
                services=FrozenDict(services), cleanup=tuple(cleanup),
                warnings=tuple(warnings))


def _namespace_owner(project: Project, service: Service) -> str | None:
    """The project service whose network namespace ``service`` joins (``network_mode:
    service:X``, or ``container:NAME`` naming one of the project's containers)."""
    kind, _, target = (service.network_mode or "").partition(":")
    if kind == "service":
        return target
    if kind == "container":
        for other in project.services.values():
            if any(container_name(project.name, other, n) == target
                   for n in range(1, max(other.replicas, 1) + 1)):
                return str(other.name)
    return None


def _plan_service(project: Project, service: Service, existing: list[ObservedContainer],
                  want_hash: str, replicas: int, options: UpOptions,
                  restart_because: list[str]) -> list[Chain]:
    chains: list[Chain] = []
    config = service_config(service)
    by_number: dict[int, ObservedContainer] = {}
    extras: list[ObservedContainer] = []
    for c in existing:
        if c.number in by_number or c.number > replicas:
            extras.append(c)
        else:
            by_number[c.number] = c
    for number in range(1, replicas + 1):
        subject = f"{service.name}-{number}"
        name = container_name(project.name, service, number)
        current = by_number.get(number)
        base: dict[str, Any] = dict(service=service.name, number=number, subject=subject,
                                    name=current.name if current is not None else name)
        if current is None:
            cause = f"scale up to {replicas}" if existing else "missing"
            ops = [Operation(action=Action.CREATE, cause=cause, **base)]
            if not options.no_start:
                ops.append(Operation(action=Action.START, cause=cause, **base))
            chains.append(tuple(ops))
            continue
        reason = None
        if options.force_recreate:
            reason = "recreate: --force-recreate"
        elif current.config_hash != want_hash and not options.no_recreate:
            reason = "recreate: " + describe_change(current.config, config)
        elif (not options.no_recreate and current.image_id
              and options.image_ids.get(service.name, current.image_id) != current.image_id):
            reason = "recreate: image changed"
        elif restart_because and not options.no_recreate:
            reason = f"recreate: dependency {', '.join(restart_because)} recreated"
            if not all("network_mode" in r for r in restart_because):
                reason += " (depends_on restart: true)"
        if reason is not None:
            ops = []
            if current.running:
                ops.append(Operation(action=Action.STOP, cause=reason,
                                     container_id=current.id, **base))
            ops.append(Operation(action=Action.REMOVE, cause=reason, container_id=current.id,
                                 **base))
            ops.append(Operation(action=Action.CREATE, cause=reason,
                                 inherit_from=current.id, **{**base, "name": name}))
            if not options.no_start:
                ops.append(Operation(action=Action.START, cause=reason, **base))
            chains.append(tuple(ops))
            continue
        if current.config_hash != want_hash:
            cause = "changed, kept because of --no-recreate"
        else:
            cause = "unchanged"
        if current.running or options.no_start:
            chains.append((Operation(action=Action.KEEP, cause=cause, container_id=current.id,
                                     keep_state=current.state, **base),))
        else:
            why = f"not running ({current.state}" + (
                f", exit code {current.exit_code})" if current.exit_code is not None else ")")
            chains.append((Operation(action=Action.START, cause=why, container_id=current.id,
                                     **base),))
    for c in sorted(extras, key=lambda c: -c.number):
        base = dict(service=service.name, number=c.number,
                    subject=f"{service.name}-{c.number}", container_id=c.id, name=c.name)
        cause = f"scale down to {replicas}"
        ops = []
        if c.running:
            ops.append(Operation(action=Action.STOP, cause=cause, **base))
        ops.append(Operation(action=Action.REMOVE, cause=cause, **base))
        chains.append(tuple(ops))
    return chains


def _networks_used(project: Project, services: Iterable[str]) -> set[str]:
    used: set[str] = set()
    for name in services:
        s = project.services[name]
        if s.network_mode is not None:
            continue
        used |= set(s.networks) if s.networks else {"default"}
    return {k for k in used if k in project.networks or k == "default"}


def _volumes_used(project: Project, services: Iterable[str]) -> set[str]:
    used: set[str] = set()
    for name in services:
        for v in project.services[name].volumes:
            if v.type == "volume" and v.source and v.source in project.volumes:
                used.add(v.source)
    return used


# --------------------------------------------------------------------------- down


def plan_down(project: Project | None, project_name: str, observed: Observed,
              options: DownOptions | None = None) -> Plan:
    """Stop and remove the project's containers (dependents first), then its networks and,
    with ``volumes``, its volumes. Without a model (``down -p NAME``) every container of the
    project goes, in no particular order."""
    options = options or DownOptions()
    known = set(project.services) if project else set()
    order = topological_order(project) if project else ()
    wanted = set(options.services) or None
    services: dict[str, list[Chain]] = {}
    cleanup: list[Operation] = []
    warnings: list[str] = []
    for c in sorted(observed.containers, key=lambda c: (c.service, c.number, c.name)):
        if wanted is not None and c.service not in wanted:
            continue
        orphan = project is not None and c.service not in known and not c.oneoff
        if orphan and not options.remove_orphans:
            warnings.append(f"found orphan container {c.name}; run with --remove-orphans "
                            "to remove it")
            continue
        cause = "orphan: service not in the project" if orphan else "down"
        base: dict[str, Any] = dict(service=c.service, number=c.number, subject=c.name,
                                    container_id=c.id, name=c.name)
        ops = []
        if c.running:
            ops.append(Operation(action=Action.STOP, cause=cause, **base))
        ops.append(Operation(action=Action.REMOVE, cause=cause, **base))
        services.setdefault(c.service, []).append(tuple(ops))
    if wanted is None and options.remove_networks:
        for key in sorted(observed.networks):
            net = project.networks.get(key) if project else None
            if net is not None and net.external:
                continue
            cleanup.append(Operation(action=Action.REMOVE_NETWORK, subject=f"network {key}",
                                     cause="down", key=key,
                                     name=net.name if net else f"{project_name}_{key}"))
        if options.volumes:
            for key in sorted(observed.volumes):
                vol = project.volumes.get(key) if project else None
                if vol is not None and vol.external:
                    continue
                cleanup.append(Operation(action=Action.REMOVE_VOLUME, subject=f"volume {key}",
                                         cause="down -v", key=key,
                                         name=vol.name if vol else f"{project_name}_{key}"))
    return Plan(project=project_name, order=tuple(order),
                services=FrozenDict({k: tuple(v) for k, v in services.items()}),
                cleanup=tuple(cleanup), warnings=tuple(warnings), reverse=True)
