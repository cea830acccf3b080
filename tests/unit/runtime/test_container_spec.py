"""Pure parts of the container runtime: image-config merge, users, paths, codec."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from pycompose.runtime.errors import ContainerError, SpawnError
from pycompose.runtime.imageconfig import DEFAULT_PATH, parse_signal, resolve_process
from pycompose.runtime.process import check_sysctls, clamp_ulimits, find_executable
from pycompose.runtime.rootfs import secure_join
from pycompose.runtime.spec import (
    ContainerInfo,
    ContainerSpec,
    ContainerStatus,
    ExitStatus,
    ImageDefaults,
    Mount,
    MountType,
    Ulimit,
)
from pycompose.runtime.supervisor import protocol as P
from pycompose.runtime.supervisor.codec import from_json, to_json
from pycompose.runtime.users import resolve_user

IMAGE = ImageDefaults(entrypoint=("/entry",), cmd=("serve", "--port", "80"),
                      env=("PATH=/opt/bin", "A=1"), working_dir="/app", user="app",
                      stop_signal="SIGQUIT")


def mk(**kw: object) -> ContainerSpec:
    return ContainerSpec(id="a" * 64, name="web", layers=("/l",), image=IMAGE, **kw)  # type: ignore[arg-type]


def test_image_config_only() -> None:
    p = resolve_process(mk())
    assert p.argv == ("/entry", "serve", "--port", "80")
    assert p.env == ("PATH=/opt/bin", "A=1", "HOSTNAME=aaaaaaaaaaaa")
    assert (p.working_dir, p.user, p.stop_signal) == ("/app", "app", 3)


def test_command_replaces_cmd_keeps_entrypoint() -> None:
    assert resolve_process(mk(command=("x",))).argv == ("/entry", "x")


def test_entrypoint_override_drops_image_cmd() -> None:
    assert resolve_process(mk(entrypoint=("sh",))).argv == ("sh",)
    assert resolve_process(mk(entrypoint=("sh",), command=("-c", "x"))).argv == ("sh", "-c", "x")


def test_empty_entrypoint_and_no_command_is_an_error() -> None:
    with pytest.raises(ContainerError, match="no command"):
        resolve_process(mk(entrypoint=(), command=()))


def test_env_merge_and_defaults() -> None:
    p = resolve_process(mk(env={"A": "2", "B": "3"}, hostname="h", user="0",
                           working_dir="/srv/"))
    assert p.env == ("PATH=/opt/bin", "A=2", "HOSTNAME=h", "B=3")
    assert (p.user, p.working_dir) == ("0", "/srv")
    bare = ContainerSpec(id="b" * 64, name="x", layers=("/l",), command=("true",))
    assert resolve_process(bare).env[0] == f"PATH={DEFAULT_PATH}"
    with pytest.raises(ContainerError, match="absolute"):
        resolve_process(mk(working_dir="rel"))


def test_signals() -> None:
    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal("15") == 15
    assert parse_signal("SIGRTMIN+3") > 32
    with pytest.raises(ContainerError, match="invalid signal 'SIGNOPE'"):
        parse_signal("SIGNOPE")


def test_users_and_groups(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                             "app:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app\n")
    r = str(tmp_path)
    assert resolve_user(r, "") == resolve_user(r, "root")
    u = resolve_user(r, "app")
    assert (u.uid, u.gid, u.groups, u.home) == (1000, 1001, (1001, 2000), "/home/app")
    u = resolve_user(r, "1000:extra")
    assert (u.uid, u.gid, u.groups) == (1000, 2000, (2000,))
    u = resolve_user(r, "4242", ("extra", "77"))
    assert (u.uid, u.gid, u.groups, u.home) == (4242, 0, (0, 2000, 77), "/")
    with pytest.raises(SpawnError, match="unable to find user nobody"):
        resolve_user(r, "nobody")
    with pytest.raises(SpawnError, match="unable to find group nogroup"):
        resolve_user(r, "app:nogroup")


def test_passwd_symlink_cannot_escape(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").symlink_to("/etc/passwd")  # host's: must not be read
    (tmp_path / "etc" / "group").symlink_to("../../../../etc/group")
    with pytest.raises(SpawnError):
        resolve_user(str(tmp_path), "root:root")  # no passwd, no group inside the root


def test_secure_join(tmp_path: Path) -> None:
    root = str(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "up").symlink_to("../../../..")
    (tmp_path / "abs").symlink_to("/etc")
    assert secure_join(root, "/a/up/etc/passwd") == os.path.join(root, "etc/passwd")
    assert secure_join(root, "../../x") == os.path.join(root, "x")
    assert secure_join(root, "/abs/hosts") == os.path.join(root, "etc/hosts")
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(OSError, match="too many levels"):
        secure_join(root, "/loop/x")


def test_ulimits_clamped() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limits, warnings = clamp_ulimits((Ulimit("nofile", 100, 200),))
    assert limits == ((resource.RLIMIT_NOFILE, 100, 200),)
    assert warnings == ()
    if hard != resource.RLIM_INFINITY:
        limits, warnings = clamp_ulimits((Ulimit("nofile", hard + 1, hard + 1),))
        assert limits == ((resource.RLIMIT_NOFILE, hard, hard),)
        assert "clamped" in warnings[0]
    with pytest.raises(ContainerError, match="unknown limit"):
        clamp_ulimits((Ulimit("bogus", 1, 1),))
    with pytest.raises(ContainerError, match="exceeds hard"):
        clamp_ulimits((Ulimit("nproc", 5, 1),))


def test_sysctls_must_be_namespaced() -> None:
    check_sysctls({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"}, host_network=False)
    with pytest.raises(ContainerError, match="host network"):
        check_sysctls({"net.ipv4.ip_forward": "1"}, host_network=True)
    with pytest.raises(ContainerError, match="not namespaced"):
        check_sysctls({"vm.swappiness": "1"}, host_network=False)


def test_find_executable(tmp_path: Path) -> None:
    exe = tmp_path / "tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    env = [f"PATH=/nonexistent:{tmp_path}"]
    assert find_executable("tool", env) == str(exe)
    with pytest.raises(SpawnError, match=r'exec: "nope": executable file not found in \$PATH'):
        find_executable("nope", env)
    with pytest.raises(SpawnError, match="no such file"):
        find_executable(str(tmp_path / "missing"), env)


def test_codec_round_trip() -> None:
    spec = mk(mounts=(Mount(MountType.TMPFS, "/t", tmpfs_size=1 << 20),),
              ulimits=(Ulimit("nofile", 1, 2),), env={"A": "1"}, stop_grace_period=2)
    assert from_json(ContainerSpec, to_json(spec)) == spec
    info = ContainerInfo(id="x", name="y", status=ContainerStatus.EXITED, pid=None,
                         created_at="t", exit=ExitStatus(code=None, signal=9))
    assert from_json(ContainerInfo, to_json(info)) == info
    req = P.decode_request(__import__("json").loads(P.encode_request(3, P.Stop("x", None, 1.5))))
    assert req == P.Stop("x", None, 1.5)
    with pytest.raises(ValueError, match="unknown request"):
        P.decode_request({"op": "format_disk"})
