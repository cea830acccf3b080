"""The devices cgroup: a container's root keeps CAP_MKNOD but cannot use the host's disks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from pycompose.runtime.client import Runtime
from pycompose.runtime.errors import ContainerError
from pycompose.runtime.spec import Device, Resources, Security

from .test_container_support import TEST_TIMEOUT, spec
from .test_container_support import run_container as run

pytestmark = pytest.mark.root


def loop_device() -> tuple[int, int]:
    """A block device this host lets root open (``/dev/loop0``), as (major, minor)."""
    try:
        st = os.stat("/dev/loop0")
    except OSError:
        pytest.skip("no /dev/loop0 on this host")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


# /tmp/sda is 8:0 (SCSI disk: "No such device or address" where there is none, and
# "Operation not permitted" only from the device cgroup); /tmp/loop is the host's
# first loop device, which root here can open outside a container.
MKNOD_DISK = ("mknod /tmp/sda b 8 0 && mknod /tmp/loop b {major} {minor} && echo made; "
              "head -c1 /tmp/sda 2>&1; dd if=/tmp/loop of=/dev/null count=0 2>/dev/null "
              "&& echo loop-ok || echo loop-denied")
USUAL = ("head -c1 /dev/zero | wc -c; head -c4 /dev/urandom | wc -c; echo x > /dev/null && "
         "echo null-ok; test -c /dev/pts/ptmx && echo ptmx-ok")


async def test_host_disk_denied_usual_devices_allowed(rt: Runtime,
                                                      busybox_rootfs: Path) -> None:
    major, minor = loop_device()
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c",
                                       MKNOD_DISK.format(major=major, minor=minor)
                                       + "; " + USUAL))
    assert code == 0, out
    lines = out.splitlines()
    # Creating the node is allowed (images ship device nodes); opening it is not.
    assert lines[:3] == ["made", "head: /tmp/sda: Operation not permitted", "loop-denied"]
    assert lines[-4:] == ["1", "4", "null-ok", "ptmx-ok"]


async def test_pty_works_with_device_rules(rt: Runtime, busybox_rootfs: Path) -> None:
    from pycompose.runtime.spec import ExecSpec

    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sleep", "60", tty=True))
        await rt.start(info.id)
        proc = await rt.exec(info.id, ExecSpec(argv=("sh", "-c", "tty; echo done"), tty=True))
        chunks = []
        while True:
            data = await proc.stdout.receive_some()
            if not data:
                break
            chunks.append(bytes(data))
        assert await proc.wait() == 0
        await proc.aclose()
        text = b"".join(chunks).decode()
        assert "/dev/pts/" in text, text
        assert "done" in text
        await rt.kill(info.id)
        await rt.wait(info.id)


async def test_privileged_may_open_any_device(rt: Runtime, busybox_rootfs: Path) -> None:
    major, minor = loop_device()
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c",
                                       MKNOD_DISK.format(major=major, minor=minor),
                                       security=Security(privileged=True)))
    assert code == 0, out
    assert out.splitlines() == ["made", "head: /tmp/sda: No such device or address", "loop-ok"]


async def test_host_device_mapping_and_extra_rule(rt: Runtime, busybox_rootfs: Path) -> None:
    """``devices: [/dev/loop0:/dev/xloop:r]``: the node appears, readable only as asked;
    ``device_cgroup_rules`` opens a device by number."""
    loop = "/dev/loop0"
    loop_device()
    st = os.stat(loop)
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(
            busybox_rootfs, "sh", "-c",
            "ls -ln /dev/xloop; dd if=/dev/xloop of=/dev/null count=0 2>/dev/null && echo r-ok; "
            "dd if=/dev/zero of=/dev/xloop count=0 2>/dev/null || echo w-denied; "
            "mknod /tmp/fuse c 10 229 && dd if=/tmp/fuse of=/dev/null count=0 2>/dev/null "
            "&& echo fuse-ok; mknod /tmp/kmsg c 1 11 && dd if=/tmp/kmsg of=/dev/null count=0 "
            "2>/dev/null || echo kmsg-denied",
            devices=(Device(source=loop, target="/dev/xloop", permissions="r"),),
            resources=Resources(device_cgroup_rules=("c 10:229 rwm",))))
    assert code == 0, out
    first = out.splitlines()[0].split()
    assert first[0].startswith("b")
    assert f"{os.major(st.st_rdev)}," in first
    assert str(os.minor(st.st_rdev)) in first
    assert out.splitlines()[1:] == ["r-ok", "w-denied", "fuse-ok", "kmsg-denied"], out


async def test_missing_host_device_is_a_clear_error(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT), pytest.raises(ContainerError, match="/dev/nope"):
        await rt.create(spec(busybox_rootfs, "true",
                             devices=(Device(source="/dev/nope"),)))
