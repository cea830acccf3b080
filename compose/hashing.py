"""The config hash: does a running container still match its service's configuration?

The hash covers the service's canonical configuration minus the fields that
never force a recreate: ``build`` and ``pull_policy`` (how the image is made
or fetched, not what runs), ``scale`` and ``deploy.replicas`` (how many),
``depends_on`` and ``profiles`` (when and whether). The engine stores it with
each container and recreates only when it changes. Stable across runs,
Python versions and key order: SHA-256 over sorted, compact JSON.
"""

from __future__ import annotations

import hashlib
import json

from .model import Service
from .serialize import service_to_dict

__all__ = ["EXCLUDED_KEYS", "config_hash", "hash_input"]

EXCLUDED_KEYS = ("build", "pull_policy", "scale", "depends_on", "profiles")


def hash_input(service: Service) -> dict[str, object]:
    """The mapping that is hashed (useful to see why two hashes differ)."""
    data = {k: v for k, v in service_to_dict(service).items() if k not in EXCLUDED_KEYS}
    deploy = data.get("deploy")
    if isinstance(deploy, dict) and "replicas" in deploy:
        deploy = {k: v for k, v in deploy.items() if k != "replicas"}
        if deploy:
            data["deploy"] = deploy
        else:
            del data["deploy"]
    return data


def config_hash(service: Service) -> str:
    """Hex SHA-256 of the service's recreate-relevant configuration."""
    text = json.dumps(hash_input(service), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
