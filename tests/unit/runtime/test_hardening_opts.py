"""security_opt parsing and the default path lists (no root needed)."""

from __future__ import annotations

import pytest

from pycompose.runtime.errors import SecurityError
from pycompose.runtime.hardening import (
    MASKED_PATHS,
    READONLY_PATHS,
    SecurityOptions,
    parse_security_opts,
)


def test_default_lists_match_docker() -> None:
    for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/acpi",
              "/proc/sched_debug", "/proc/scsi", "/sys/devices/virtual/powercap"):
        assert p in MASKED_PATHS
    assert set(READONLY_PATHS) == {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                   "/proc/sysrq-trigger"}


@pytest.mark.parametrize(("opts", "expected"), [
    ([], SecurityOptions()),
    (["no-new-privileges"], SecurityOptions(no_new_privileges=True)),
    (["no-new-privileges:true"], SecurityOptions(no_new_privileges=True)),
    (["no-new-privileges=true", "no-new-privileges=false"], SecurityOptions()),
    (["seccomp=unconfined"], SecurityOptions(seccomp="unconfined")),
    (["seccomp:unconfined"], SecurityOptions(seccomp="unconfined")),
    (["seccomp=/etc/p.json"], SecurityOptions(seccomp="/etc/p.json")),
    (["systempaths=unconfined"], SecurityOptions(unmask_system_paths=True)),
])
def test_security_opts(opts: list[str], expected: SecurityOptions) -> None:
    assert parse_security_opts(opts) == expected


def test_apparmor_and_label_are_accepted_with_a_warning() -> None:
    got = parse_security_opts(["apparmor=unconfined", "label:disable", "label=user:USER"])
    assert got.no_new_privileges is False
    assert len(got.warnings) == 3
    assert "apparmor" in got.warnings[0]
    assert "not enforced" in got.warnings[1]


@pytest.mark.parametrize(("opt", "message"), [
    ("no-new-privileges:maybe", "takes true or false"),
    ("seccomp=", "seccomp needs"),
    ("systempaths=strict", "only 'unconfined'"),
    ("mask=/proc/x", "unknown option 'mask'"),
])
def test_bad_security_opts_are_named(opt: str, message: str) -> None:
    with pytest.raises(SecurityError, match=message):
        parse_security_opts([opt])
