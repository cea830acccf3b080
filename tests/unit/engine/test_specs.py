"""Service -> ContainerSpec mapping."""

from __future__ import annotations

import pytest

from pycompose.compose.model import (
    FrozenDict,
    Project,
    Service,
    ServiceVolume,
    TmpfsOptions,
    Ulimit,
    Volume,
)
from pycompose.engine.specs import (
    LABEL_CONFIG_HASH,
    LABEL_PROJECT,
    ImageInfo,
    SpecError,
    container_spec,
    network_warning,
)
from pycompose.runtime.spec import ImageDefaults, MountType

IMAGE = ImageInfo(id="sha256:x", layers=("/l1", "/l2"), defaults=ImageDefaults(cmd=("sh",)))


def project(svc: Service) -> Project:
    return Project(name="demo", working_dir="/w", services=FrozenDict({svc.name: svc}),
                   volumes=FrozenDict({"data": Volume(name="demo_data")}))


def test_mapping() -> None:
    svc = Service(
        name="web", image="busybox", command=("sleep", "1"), user="1000:1000",
        environment=FrozenDict({"A": "1", "UNSET": None}), network_mode="host",
        volumes=(ServiceVolume(type="volume", source="data", target="/data"),
                 ServiceVolume(type="volume", target="/anon"),
                 ServiceVolume(type="bind", source="/srv", target="/srv", read_only=True),
                 ServiceVolume(type="tmpfs", target="/t", tmpfs=TmpfsOptions(size=1024))),
        tmpfs=("/run:size=64k,mode=1770",), ulimits=FrozenDict({"nofile": Ulimit(soft=1,
                                                                                  hard=2)}),
        security_opt=("no-new-privileges:true", "seccomp=unconfined"), stop_grace_period=3.0,
        mem_limit=1 << 20, pids_limit=50, init=True)
    spec = container_spec(project(svc), svc, cid="a" * 64, name="demo-web-1", number=1,
                          image=IMAGE, config_hash="h", anonymous={"/anon": "v123"})
    assert spec.layers == ("/l1", "/l2")
    assert spec.command == ("sleep", "1")
    assert spec.entrypoint is None
    assert dict(spec.env) == {"A": "1"}
    assert spec.netns == "host"
    assert network_warning(svc) is None
    m = {x.target: x for x in spec.mounts}
    assert m["/data"].type is MountType.VOLUME
    assert m["/data"].source == "demo_data"
    assert m["/anon"].source == "v123"
    assert m["/srv"].read_only
    assert m["/srv"].type is MountType.BIND
    assert m["/t"].tmpfs_size == 1024
    assert m["/run"].tmpfs_size == 64 * 1024
    assert m["/run"].tmpfs_mode == 0o1770
    assert spec.security.no_new_privileges
    assert spec.security.seccomp == "unconfined"
    assert spec.resources.memory == 1 << 20
    assert spec.resources.pids_limit == 50
    assert spec.stop_grace_period == 3.0
    assert spec.init
    assert spec.labels[LABEL_PROJECT] == "demo"
    assert spec.labels[LABEL_CONFIG_HASH] == "h"


def test_default_network_is_isolated_and_said_so() -> None:
    svc = Service(name="web", image="busybox")
    spec = container_spec(project(svc), svc, cid="a" * 64, name="n", number=1, image=IMAGE,
                          config_hash="h")
    assert spec.netns == "none"
    assert "not wired" in (network_warning(svc) or "")


def test_unsupported_options_are_clear_errors() -> None:
    svc = Service(name="web", image="busybox", pid="host")
    with pytest.raises(SpecError, match="service web: pid: host is not supported"):
        container_spec(project(svc), svc, cid="a" * 64, name="n", number=1, image=IMAGE,
                       config_hash="h")


def test_devices_and_device_cgroup_rules() -> None:
    from pycompose.runtime.spec import Device

    svc = Service(name="hw", image="busybox", extra=FrozenDict({
        "devices": ("/dev/fuse", "/dev/loop0:/dev/xloop", "/dev/kvm:/dev/kvm:r",
                    "/dev/net/tun:rw",
                    FrozenDict({"source": "/dev/sda", "target": "/dev/disk",
                                "permissions": "rm"})),
        "device_cgroup_rules": ("c 1:3 mr",)}))
    spec = container_spec(project(svc), svc, cid="a" * 64, name="demo-hw-1", number=1,
                          image=IMAGE, config_hash="h")
    assert spec.devices == (
        Device("/dev/fuse", "/dev/fuse", "rwm"), Device("/dev/loop0", "/dev/xloop", "rwm"),
        Device("/dev/kvm", "/dev/kvm", "r"), Device("/dev/net/tun", "/dev/net/tun", "rw"),
        Device("/dev/sda", "/dev/disk", "rm"))
    assert spec.resources.device_cgroup_rules == ("c 1:3 mr",)
    bad = Service(name="hw", image="busybox", extra=FrozenDict({"devices": ("/dev/a:/b:x",)}))
    with pytest.raises(SpecError, match="permissions"):
        container_spec(project(bad), bad, cid="a" * 64, name="n", number=1, image=IMAGE,
                       config_hash="h")
