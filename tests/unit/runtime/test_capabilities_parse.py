"""Capability names and Docker's cap_add / cap_drop rules (no root needed)."""

from __future__ import annotations

import pytest

from pycompose.runtime.capabilities import (
    DEFAULT_CAPABILITIES,
    all_capabilities,
    from_mask,
    normalize,
    resolve_capabilities,
    to_mask,
)
from pycompose.runtime.errors import SecurityError


@pytest.mark.parametrize("name", ["NET_ADMIN", "net_admin", "CAP_NET_ADMIN", "cap_Net_Admin"])
def test_names_with_or_without_prefix(name: str) -> None:
    assert normalize(name) == "NET_ADMIN"


def test_unknown_name_is_refused() -> None:
    with pytest.raises(SecurityError, match="unknown capability 'CAP_FLY'"):
        resolve_capabilities(cap_add=["CAP_FLY"])


def test_docker_rules() -> None:
    assert len(DEFAULT_CAPABILITIES) == 14
    assert resolve_capabilities(cap_drop=["NET_RAW"]) == DEFAULT_CAPABILITIES - {"NET_RAW"}
    assert resolve_capabilities(cap_drop=["all"], cap_add=["chown"]) == {"CHOWN"}
    everything = resolve_capabilities(cap_add=["ALL"], cap_drop=["SYS_ADMIN"])
    assert everything == all_capabilities() - {"SYS_ADMIN"}
    assert resolve_capabilities(privileged=True, cap_drop=["CHOWN"]) == all_capabilities()
    assert resolve_capabilities(cap_add=["NET_ADMIN"], cap_drop=["NET_ADMIN"]) >= {"NET_ADMIN"}


def test_masks_round_trip() -> None:
    assert to_mask(["CHOWN", "SYS_ADMIN"]) == 1 | 1 << 21
    assert from_mask(to_mask(DEFAULT_CAPABILITIES)) == DEFAULT_CAPABILITIES
    # Docker's default set as the kernel prints it
    assert to_mask(DEFAULT_CAPABILITIES) == 0xA80425FB
