"""The config hash: stable, and blind to fields that never force a recreate."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.hashing import config_hash

from .loader_helpers import load

BASE = "services:\n  db: {image: d}\n  web:\n    image: a\n    ports: ['80:80']\n"


def web_hash(tmp_path: Path, extra: str = "", **kwargs: object) -> str:
    return config_hash(load(tmp_path, BASE + extra, **kwargs).services["web"])


def test_stable(tmp_path: Path) -> None:
    first = web_hash(tmp_path)
    assert first == web_hash(tmp_path)
    assert len(first) == 64


@pytest.mark.parametrize("extra", [
    "    depends_on: [db]\n", "    scale: 3\n", "    pull_policy: always\n",
    "    build: .\n", "    profiles: [p]\n", "    deploy: {replicas: 2}\n",
])
def test_ignored_fields(tmp_path: Path, extra: str) -> None:
    assert web_hash(tmp_path, extra, profiles=["p"]) == web_hash(tmp_path)


@pytest.mark.parametrize("extra", [
    "    environment: {A: '1'}\n", "    command: run\n", "    mem_limit: 1g\n",
    "    healthcheck: {test: [CMD, x]}\n", "    deploy: {resources: {limits: {cpus: '1'}}}\n",
])
def test_relevant_fields(tmp_path: Path, extra: str) -> None:
    assert web_hash(tmp_path, extra) != web_hash(tmp_path)


def test_key_order_does_not_matter(tmp_path: Path) -> None:
    a = web_hash(tmp_path, "    environment: {A: '1', B: '2'}\n")
    b = web_hash(tmp_path, "    environment: {B: '2', A: '1'}\n")
    assert a == b
