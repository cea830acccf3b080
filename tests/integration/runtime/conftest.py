"""Fixtures shared by the container tests of this directory (see test_container_support)."""

from tests.integration.runtime.test_container_support import instance, rt  # noqa: F401
