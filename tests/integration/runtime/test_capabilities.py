"""Capabilities applied in a forked child, read back from /proc/self/status (root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest

from pycompose.runtime import capabilities as caps_mod
from pycompose.runtime.capabilities import (
    DEFAULT_CAPABILITIES,
    after_user_switch,
    apply_capabilities,
    before_user_switch,
    from_mask,
    read_status_masks,
    resolve_capabilities,
    to_mask,
)
from tests.helpers.forked import in_child

pytestmark = pytest.mark.root


def _masks_after_exec() -> dict[str, int]:
    """What a program sees after execve (root's caps are recomputed from the bounding set)."""
    text = subprocess.run(["/bin/busybox", "cat", "/proc/self/status"], capture_output=True,
                          text=True, check=True).stdout
    return {k: int(v.strip(), 16) for k, _, v in
            (line.partition(":") for line in text.splitlines()) if k.startswith("Cap")}


def _as_root(caps: frozenset[str]) -> Callable[[], dict[str, object]]:
    def run() -> dict[str, object]:
        apply_capabilities(caps, uid=0)
        return {"now": read_status_masks(), "exec": _masks_after_exec()}
    return run


def _as_user(caps: frozenset[str], uid: int) -> Callable[[], dict[str, object]]:
    def run() -> dict[str, object]:
        before_user_switch(caps)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        after_user_switch(caps, uid)
        return {"now": read_status_masks(), "exec": _masks_after_exec()}
    return run


def _held(caps: frozenset[str]) -> int:
    """The part of ``caps`` this test process itself holds (root here lacks SYS_RESOURCE)."""
    return int(to_mask(caps)) & int(read_status_masks()["CapBnd"])


def test_default_set_matches_docker() -> None:
    caps = resolve_capabilities()
    assert caps == DEFAULT_CAPABILITIES
    out = in_child(_as_root(caps))
    for when in ("now", "exec"):
        masks = out[when]
        assert isinstance(masks, dict)
        assert masks["CapEff"] == masks["CapPrm"] == masks["CapBnd"] == to_mask(caps)
        assert masks["CapInh"] == 0
        assert masks["CapAmb"] == 0
    assert "SYS_ADMIN" not in from_mask(out["now"]["CapEff"])  # type: ignore[index]


def test_cap_drop_all_leaves_nothing() -> None:
    out = in_child(_as_root(resolve_capabilities(cap_drop=["ALL"])))
    for when in ("now", "exec"):
        masks = out[when]
        assert isinstance(masks, dict)
        assert masks["CapEff"] == masks["CapPrm"] == masks["CapBnd"] == 0


def test_cap_add_sys_admin() -> None:
    caps = resolve_capabilities(cap_add=["sys_admin"])
    out = in_child(_as_root(caps))
    eff = out["exec"]["CapEff"]  # type: ignore[index]
    assert "SYS_ADMIN" in from_mask(eff)
    assert eff == to_mask(DEFAULT_CAPABILITIES | {"SYS_ADMIN"})


def test_privileged_gets_everything_this_process_holds() -> None:
    caps = resolve_capabilities(privileged=True)
    assert len(caps) == caps_mod.last_cap() + 1
    out = in_child(_as_root(caps))
    assert out["exec"]["CapEff"] == _held(caps)  # type: ignore[index]
    assert caps_mod.unavailable(caps) == from_mask(to_mask(caps) & ~_held(caps))


def test_non_root_user_has_an_empty_effective_set() -> None:
    caps = resolve_capabilities()
    out = in_child(_as_user(caps, 1000))
    for when in ("now", "exec"):
        masks = out[when]
        assert isinstance(masks, dict)
        assert masks["CapEff"] == 0
        assert masks["CapPrm"] == 0
        assert masks["CapAmb"] == 0
        assert masks["CapBnd"] == to_mask(caps)


def test_user_switch_works_even_with_setuid_dropped() -> None:
    caps = resolve_capabilities(cap_drop=["ALL"])
    out = in_child(_as_user(caps, 1000))
    masks = out["exec"]
    assert isinstance(masks, dict)
    assert masks["CapEff"] == masks["CapBnd"] == 0


def test_root_with_setuid_dropped_cannot_switch_user_afterwards() -> None:
    def run() -> dict[str, object]:
        apply_capabilities(resolve_capabilities(cap_drop=["SETUID"]), uid=0)
        try:
            os.setresuid(1000, 1000, 1000)
        except PermissionError:
            return {"refused": True}
        return {"refused": False}
    assert in_child(run) == {"refused": True}
