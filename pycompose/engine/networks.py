"""Per-stack networks in the engine, with :mod:`pycompose.network`.

Per network: a subnet from IPAM (state kept in the store, so addresses survive
engine restarts), a bridge, the firewall rules of the instance's nftables table,
and an embedded DNS server on the gateway (a task in the engine's nursery).
Per container: a network namespace file under the root (the runtime joins it),
one veth per network in ``priority``/name order with a static address, DNS
records (container name, service, hostname, aliases, short id) while it runs,
``/etc/hosts`` and ``/etc/resolv.conf`` rendered for it, and its published ports
(held by a reservation, forwarded by nftables DNAT).

At engine start :meth:`Networks.load` brings recorded networks back (bridge,
firewall, DNS) and :meth:`Networks.readopt` re-adds the records of running
containers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import trio

from pycompose.compose.model import Project, Service
from pycompose.engine.store import NetworkRecord, Store
from pycompose.network import bridge as nbridge
from pycompose.network import dns as ndns
from pycompose.network import firewall, hostsfiles, ipam, links, names, netns, ports
from pycompose.network.errors import NetworkError
from pycompose.paths import HostPaths
from pycompose.runtime.spec import EtcFile

log = logging.getLogger("pycompose.engine.networks")

KV_IPAM = "ipam"


@dataclass
class _Net:
    name: str
    key: str
    project: str
    bridge: str
    subnet: IPv4Network
    gateway: IPv4Address
    internal: bool
    records: ndns.Records
    scope: trio.CancelScope | None = None


@dataclass
class Attachment:
    """What a container got: its namespace, files, and per-network addresses."""

    netns: str
    hosts: EtcFile
    resolv: EtcFile
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"netns": self.netns, "endpoints": self.endpoints, "ports": self.ports}


def uses_networks(service: Service) -> bool:
    return service.network_mode in (None, "bridge")


def service_network_keys(service: Service) -> list[str]:
    """The service's networks in attachment order: priority (high first), then name."""
    nets = dict(service.networks) or {"default": None}

    def order(key: str) -> tuple[int, str]:
        cfg = nets[key]
        return (-(cfg.priority or 0) if cfg is not None else 0, key)

    return sorted(nets, key=order)


class Networks:
    def __init__(self, paths: HostPaths, store: Store) -> None:
        self.paths = paths
        self.store = store
        self.instance = paths.instance
        self.table = paths.host_tag
        self.state = ipam.IPAMState()
        self.nets: dict[str, _Net] = {}
        self.reservations: dict[str, ports.Reservation] = {}
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ persistence

    async def _save_state(self) -> None:
        text = json.dumps(self.state.to_dict(), sort_keys=True)
        await self.store.transaction(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (KV_IPAM, text)))

    async def _load_state(self) -> None:
        row = await self.store.run(lambda conn: conn.execute(
            "SELECT value FROM kv WHERE key = ?", (KV_IPAM,)).fetchone())
        if row is not None:
            self.state = ipam.IPAMState.from_dict(json.loads(row[0]))

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.load()
            task_status.started()
            await trio.sleep_forever()

    async def load(self) -> None:
        await self._load_state()
        for rec in await self.store.list_networks():
            cfg = rec.config
            if not cfg.get("wired"):
                continue
            try:
                await self._bring_up(rec.name, rec.key, rec.project, cfg["bridge"],
                                     rec.internal, external=rec.external)
            except NetworkError as exc:
                log.error("network %s could not be restored: %s", rec.name, exc)

    async def _bring_up(self, name: str, key: str, project: str, bridge: str,
                        internal: bool, *, external: bool,
                        request: ipam.SubnetRequest | None = None,
                        mtu: int | None = None) -> _Net:
        if external:
            br = await nbridge.require_bridge(bridge, name)
            if br.subnet is None or br.gateway is None:
                raise NetworkError(f"external network {name}: bridge {bridge} has no IPv4 "
                                   "address")
            subnet, gateway = br.subnet, br.gateway
            self.state = ipam.IPAMState(networks={**self.state.networks, name: ipam.Subnet(
                subnet=subnet, gateway=gateway,
                addresses=self.state.networks[name].addresses
                if name in self.state.networks else {})})
        else:
            own = [n.bridge for n in self.nets.values()]
            host = await trio.to_thread.run_sync(lambda: ipam.host_networks(
                ignore_ifnames=[*own, bridge]))
            self.state, sub = ipam.allocate_subnet(self.state, name, request, avoid=host)
            subnet, gateway = sub.subnet, sub.gateway
            await nbridge.create_bridge(nbridge.BridgeSpec(
                name=bridge, subnet=subnet, gateway=gateway, mtu=mtu,
                alias=names.link_alias(self.instance)))
            await firewall.setup_network(self.table, firewall.FirewallNetwork(
                bridge=bridge, subnet=subnet, internal=internal))
        await self._save_state()
        net = _Net(name=name, key=key, project=project, bridge=bridge, subnet=subnet,
                   gateway=gateway, internal=internal,
                   records=ndns.Records(local_subnets=[subnet]))
        assert self._nursery is not None
        scope = trio.CancelScope()
        net.scope = scope

        async def serve(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED
                        ) -> None:
            with scope:
                await ndns.serve_dns(net.records, gateway, forward=not internal,
                                     task_status=task_status)

        await self._nursery.start(serve)
        self.nets[name] = net
        return net

    # ------------------------------------------------------------------ networks

    async def ensure(self, project: Project, key: str) -> None:
        """Create network ``key`` of ``project`` (bridge, firewall, DNS) unless it exists."""
        net = project.networks.get(key)
        name = net.name if net is not None else f"{project.name}_{key}"
        if name in self.nets:
            return
        async with self._lock:
            opts = nbridge.bridge_options(name, net.driver if net else None,
                                          dict(net.driver_opts) if net else None,
                                          bool(net and net.enable_ipv6))
            external = bool(net and net.external)
            bridge = opts.name or (name if external else
                                   names.bridge_name(self.instance, project.name, key))
            request = None
            if net is not None and net.ipam is not None and net.ipam.config:
                pool = net.ipam.config[0]
                request = ipam.SubnetRequest(subnet=pool.subnet, gateway=pool.gateway,
                                             ip_range=pool.ip_range)
            internal = bool(net and net.internal)
            await self._bring_up(name, key, project.name, bridge, internal, external=external,
                                 request=request, mtu=opts.mtu)
            await self.store.put_network(NetworkRecord(
                name=name, project=project.name, key=key, internal=internal,
                external=external, config={"wired": True, "bridge": bridge,
                                           "subnet": str(self.nets[name].subnet),
                                           "gateway": str(self.nets[name].gateway)}))

    async def remove(self, project: str, key: str) -> None:
        for rec in await self.store.list_networks(project):
            if rec.key != key:
                continue
            net = self.nets.pop(rec.name, None)
            if net is not None and net.scope is not None:
                net.scope.cancel()
            bridge = rec.config.get("bridge")
            if bridge and not rec.external:
                subnet = IPv4Network(rec.config["subnet"]) if rec.config.get("subnet") else None
                await firewall.teardown_network(self.table, bridge, subnet)
                await nbridge.delete_bridge(bridge)
            async with self._lock:
                self.state = ipam.release_subnet(self.state, rec.name)
                await self._save_state()
            await self.store.remove_network(rec.name)

    # ------------------------------------------------------------------ preflight

    def port_requests(self, service: Service) -> list[ports.PortRequest]:
        out: list[ports.PortRequest] = []
        if not uses_networks(service):
            return out  # host: the service binds host ports itself; none: nothing to reach
        for p in service.ports:
            out.extend(ports.expand_ports(service.name, p.target, p.published, p.protocol,
                                          p.host_ip))
        return [r for r in out if r is not None]

    def published(self, exclude: set[str]) -> list[ports.ForeignPort]:
        """Ports held by running containers other than ``exclude`` (ids)."""
        out = []
        for cid, res in self.reservations.items():
            if cid in exclude:
                continue
            for a in res.ports:
                out.append(ports.ForeignPort(stack="", service=a.request.service,
                                             protocol=a.request.protocol,
                                             host_port=a.host_port,
                                             host_ip=a.request.host_ip))
        return out

    def preflight(self, project: Project, services: list[str], replaced: set[str]) -> None:
        """Ports of ``services`` (about to be created) against the host and other stacks."""
        requests = [r for s in services for r in self.port_requests(project.services[s])]
        if requests:
            ports.preflight(requests, others=self.published(replaced))

    # ------------------------------------------------------------------ containers

    async def attach(self, project: Project, service: Service, cid: str, cname: str
                     ) -> Attachment:
        keys = service_network_keys(service)
        for key in keys:
            await self.ensure(project, key)
        path = await netns.create_netns(self.paths.root, names.netns_name(self.instance, cid))
        try:
            specs, endpoints = [], []
            async with self._lock:
                for key in keys:
                    net = self._net(project, key)
                    cfg = service.networks.get(key) if service.networks else None
                    self.state, address = ipam.allocate_address(
                        self.state, net.name, cid, cfg.ipv4_address if cfg else None)
                    specs.append(links.EndpointSpec(
                        bridge=net.bridge, host_ifname=names.veth_name(self.instance, cid,
                                                                        net.name),
                        address=address, prefixlen=net.subnet.prefixlen, gateway=net.gateway,
                        internal=net.internal, mac=cfg.mac_address if cfg else None))
                    endpoints.append({"network": net.name, "key": key, "address": str(address),
                                      "host_ifname": specs[-1].host_ifname,
                                      "aliases": list(cfg.aliases) if cfg else []})
                await self._save_state()
            await links.attach(path, specs)
            first = self._net(project, keys[0])
            hostname = service.hostname or cid[:12]
            aliases = [a for e in endpoints for a in e["aliases"]]
            hosts = hostsfiles.render_hosts(
                hostname, IPv4Address(endpoints[0]["address"]),
                domainname=service.domainname or "", aliases=[cname, service.name, *aliases],
                extra_hosts=hostsfiles.parse_extra_hosts(list(service.extra_hosts)),
                gateway=first.gateway)
            host_resolv = await trio.to_thread.run_sync(_read_host_resolv)
            resolv = hostsfiles.render_resolv_conf(
                [str(first.gateway)], search=list(service.dns_search) or None,
                options=list(service.dns_opt), host_text=host_resolv)
            att = Attachment(netns=str(path), hosts=EtcFile(content=hosts),
                             resolv=EtcFile(content=resolv), endpoints=endpoints)
            requests = self.port_requests(service)
            if requests:
                reservation = await trio.to_thread.run_sync(ports.reserve, requests)
                self.reservations[cid] = reservation
                mappings = [firewall.PortMapping(
                    protocol=a.request.protocol, host_port=a.host_port,
                    container_ip=IPv4Address(endpoints[0]["address"]),
                    container_port=a.request.container_port, host_ip=a.request.host_ip,
                    owner=cid) for a in reservation.ports]
                await firewall.publish(self.table, mappings)
                att.ports = [{"URL": str(a.request.host_ip or "0.0.0.0"),
                              "PublishedPort": a.host_port,
                              "TargetPort": a.request.container_port,
                              "Protocol": a.request.protocol} for a in reservation.ports]
            return att
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.detach(cid, {"netns": str(path), "endpoints": []})
            raise

    def _net(self, project: Project, key: str) -> _Net:
        net = project.networks.get(key)
        name = net.name if net is not None else f"{project.name}_{key}"
        return self.nets[name]

    def dns_add(self, cid: str, names_: list[str], attachment: dict[str, Any]) -> None:
        for ep in attachment.get("endpoints", ()):
            net = self.nets.get(ep["network"])
            if net is not None:
                net.records.add(cid, [*names_, *ep.get("aliases", [])],
                                IPv4Address(ep["address"]))

    def dns_remove(self, cid: str, attachment: dict[str, Any]) -> None:
        for ep in attachment.get("endpoints", ()):
            net = self.nets.get(ep["network"])
            if net is not None:
                net.records.remove(cid)

    async def readopt(self, cid: str, attachment: dict[str, Any]) -> None:
        """After an engine restart: hold the container's published ports again."""
        requested = [ports.PortRequest(service="", container_port=p["TargetPort"],
                                       protocol=p["Protocol"], host_port=p["PublishedPort"])
                     for p in attachment.get("ports", ())]
        if requested:
            try:
                self.reservations[cid] = await trio.to_thread.run_sync(ports.reserve,
                                                                       requested)
            except NetworkError as exc:
                log.warning("could not re-reserve ports of %s: %s", cid[:12], exc)

    async def detach(self, cid: str, attachment: dict[str, Any]) -> None:
        res = self.reservations.pop(cid, None)
        if res is not None:
            mappings = [firewall.PortMapping(
                protocol=a.request.protocol, host_port=a.host_port,
                container_ip=IPv4Address(attachment["endpoints"][0]["address"]),
                container_port=a.request.container_port, host_ip=a.request.host_ip,
                owner=cid) for a in res.ports] if attachment.get("endpoints") else []
            if mappings:
                await firewall.unpublish(self.table, mappings)
            res.close()
        self.dns_remove(cid, attachment)
        ifnames = [e["host_ifname"] for e in attachment.get("endpoints", ())]
        if ifnames:
            await links.detach(ifnames)
        if attachment.get("netns"):
            await netns.remove_netns(Path(attachment["netns"]))
        async with self._lock:
            for e in attachment.get("endpoints", ()):
                self.state = ipam.release_address(self.state, e["network"], cid)
            await self._save_state()


def _read_host_resolv() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""
