"""Which services pull/push act on."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.cli.commands._registry import selected_services
from pycompose.errors import UsageError
from tests.unit.compose.loader_helpers import load

STACK = """
services:
  web: {image: web, depends_on: [api]}
  api: {image: api, depends_on: [db]}
  db: {image: db}
  other: {image: other}
"""


def test_all_services_when_none_named(tmp_path: Path) -> None:
    assert selected_services(load(tmp_path, STACK), [], False) == ["api", "db", "other", "web"]


def test_include_deps_is_transitive(tmp_path: Path) -> None:
    assert selected_services(load(tmp_path, STACK), ["web"], True) == ["api", "db", "web"]
    assert selected_services(load(tmp_path, STACK), ["web"], False) == ["web"]


def test_unknown_service_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such service: nope"):
        selected_services(load(tmp_path, STACK), ["nope"], False)
