"""Where a reference lives: the registry host to talk to and the repository path.

Names are parsed and normalised by :mod:`pycompose.runtime.images.reference`
(``redis`` → ``docker.io/library/redis:latest``); Docker Hub's API host is
``registry-1.docker.io`` and its credentials are stored under
``https://index.docker.io/v1/`` in ``~/.docker/config.json``.
"""

from __future__ import annotations

from pycompose.runtime.images.reference import DEFAULT_DOMAIN, Reference, parse_reference

DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"

__all__ = ["DOCKER_HUB_API", "Reference", "api_host", "parse_reference", "auth_keys"]


def api_host(domain: str) -> str:
    """The host[:port] serving the distribution API for a reference's domain."""
    return DOCKER_HUB_API if domain in (DEFAULT_DOMAIN, "index.docker.io") else domain


def auth_keys(domain: str) -> list[str]:
    """Keys under which ``config.json`` may hold credentials for ``domain``, best first."""
    if domain in (DEFAULT_DOMAIN, "index.docker.io", DOCKER_HUB_API):
        return [DOCKER_HUB_AUTH_KEY, "index.docker.io", "docker.io", DOCKER_HUB_API]
    return [domain, f"https://{domain}", f"http://{domain}", f"https://{domain}/v1/",
            f"https://{domain}/v2/"]
