"""Registry settings: mirrors, insecure (plain HTTP) registries, where credentials are.

Sources, later ones adding to earlier ones:

1. ``<PYCOMPOSE_ROOT>/registries.json``, in the key names of Docker's ``daemon.json``::

       {"registry-mirrors": ["https://mirror.example.com"],
        "insecure-registries": ["registry.local:5000", "10.0.0.0/8"]}

2. environment variables (comma-separated): ``PYCOMPOSE_REGISTRY_MIRRORS`` and
   ``PYCOMPOSE_INSECURE_REGISTRIES``; ``DOCKER_CONFIG`` (a directory) moves
   ``config.json`` as it does for Docker.

Mirrors serve Docker Hub (``docker.io``) images only, as in Docker; a mirror
that fails is skipped and the next one (finally Docker Hub itself) is tried.
An *insecure* registry is tried over HTTPS first, then over plain HTTP; as in
Docker, ``localhost`` and ``127.0.0.0/8`` are insecure without being listed.
A registry with its own CA: ``<PYCOMPOSE_ROOT>/certs.d/<host[:port]>/ca.crt``
(or Docker's ``/etc/docker/certs.d/…``), plus ``client.cert``/``client.key``
for a client certificate.

The library does not read the environment itself: the CLI calls
:meth:`RegistryConfig.load` with ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pycompose.runtime.registry.errors import RegistryError

CONFIG_NAME = "registries.json"


@dataclass(frozen=True)
class RegistryConfig:
    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    docker_config: Path | None = None  # the config.json with ``auths``; None: no credentials
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    # Directories holding <host[:port]>/{ca.crt,client.cert,client.key}, as Docker's
    # /etc/docker/certs.d: extra CAs (and a client certificate) for that registry.
    certs_dirs: tuple[Path, ...] = ()
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        nets = []
        for entry in ("127.0.0.0/8", "::1/128", *self.insecure):
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        object.__setattr__(self, "_networks", tuple(nets))

    @classmethod
    def load(cls, root: Path | None, environ: Mapping[str, str]) -> RegistryConfig:
        """Read ``<root>/registries.json`` (if any) and the environment variables."""
        mirrors: list[str] = []
        insecure: list[str] = []
        downloads, uploads = 3, 5
        certs: list[Path] = []
        if root is not None:
            certs.append(Path(root) / "certs.d")
            path = Path(root) / CONFIG_NAME
            try:
                doc = json.loads(path.read_text())
            except FileNotFoundError:
                doc = {}
            except (OSError, ValueError) as exc:
                raise RegistryError(f"{path}: unreadable: {exc}") from None
            if not isinstance(doc, dict):
                raise RegistryError(f"{path}: expected a JSON object")
            mirrors += _str_list(doc.get("registry-mirrors", []), path, "registry-mirrors")
            insecure += _str_list(doc.get("insecure-registries", []), path,
                                  "insecure-registries")
            downloads = _positive(doc, "max-concurrent-downloads", 3, path)
            uploads = _positive(doc, "max-concurrent-uploads", 5, path)
        mirrors += _split(environ.get("PYCOMPOSE_REGISTRY_MIRRORS", ""))
        insecure += _split(environ.get("PYCOMPOSE_INSECURE_REGISTRIES", ""))
        docker_dir = environ.get("DOCKER_CONFIG")
        if docker_dir:
            docker_config: Path | None = Path(docker_dir) / "config.json"
        elif environ.get("HOME"):
            docker_config = Path(environ["HOME"]) / ".docker" / "config.json"
        else:
            docker_config = None
        certs.append(Path("/etc/docker/certs.d"))
        return cls(mirrors=tuple(m.rstrip("/") for m in mirrors), insecure=tuple(insecure),
                   docker_config=docker_config, max_concurrent_downloads=downloads,
                   max_concurrent_uploads=uploads, certs_dirs=tuple(certs))

    def tls_files(self, host: str) -> tuple[list[Path], tuple[Path, Path] | None]:
        """(CA certificates, client cert+key) configured for ``host`` (``name[:port]``)."""
        cas: list[Path] = []
        client: tuple[Path, Path] | None = None
        for base in self.certs_dirs:
            directory = base / host
            if not directory.is_dir():
                continue
            cas += sorted(directory.glob("*.crt"))
            for cert in sorted(directory.glob("*.cert")):
                key = cert.with_suffix(".key")
                if key.is_file() and client is None:
                    client = (cert, key)
        return cas, client

    def is_insecure(self, host: str) -> bool:
        """True when ``host`` (``name[:port]``) may be reached over plain HTTP."""
        if host in self.insecure:
            return True
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        name = name.strip("[]")
        if name == "localhost" or name in self.insecure:
            return True
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            return False
        return any(addr in net for net in self._networks)


def _positive(doc: dict[str, object], key: str, default: int, path: Path) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RegistryError(f"{path}: {key}: expected a positive integer, got {value!r}")
    return value


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _str_list(value: object, path: Path, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{path}: {key}: expected a list of strings, got {value!r}")
    return list(value)
