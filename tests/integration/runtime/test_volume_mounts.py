"""Volumes, bind mounts, tmpfs, image layers with whiteouts, network namespaces."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trio

from pycompose.runtime.client import Runtime
from pycompose.runtime.spec import ContainerSpec, ImageDefaults, Mount, MountType
from pycompose.runtime.volumes import list_volumes

from .test_container_support import TEST_TIMEOUT, run_container, spec

pytestmark = pytest.mark.root


async def run(rt: Runtime, s: ContainerSpec) -> tuple[int | None, str]:
    return await run_container(rt, s, remove=True)


@pytest.fixture
def image_with_data(tmp_path: Path, busybox_rootfs: Path) -> tuple[str, ...]:
    """busybox plus an upper layer with /data content and a whiteout over /etc/motd.

    The middle layer adds /etc/motd; the top one deletes it with an overlay
    whiteout (a 0:0 character device), as the image store makes from OCI's
    ``.wh.motd``.
    """
    mid = tmp_path / "layer-mid"
    (mid / "etc").mkdir(parents=True)
    (mid / "etc" / "motd").write_text("hello from the middle layer\n")
    (mid / "data").mkdir()
    (mid / "data" / "seed.txt").write_text("seeded\n")
    os.chown(mid / "data", 1000, 1000)
    top = tmp_path / "layer-top"
    (top / "etc").mkdir(parents=True)
    os.mknod(top / "etc" / "motd", 0o600 | 0o020000, os.makedev(0, 0))
    return (str(busybox_rootfs), str(mid), str(top))


async def test_whiteout_in_upper_layer_hides_file(rt: Runtime,
                                                  image_with_data: tuple[str, ...]) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(image_with_data, "sh", "-c",
                                       "cat /etc/motd 2>&1 || echo gone; cat /data/seed.txt"))
    assert code == 0
    assert "gone" in out
    assert "hello" not in out
    assert "seeded" in out


async def test_named_volume_populated_and_survives(rt: Runtime,
                                                   image_with_data: tuple[str, ...]) -> None:
    vol = Mount(MountType.VOLUME, "/data", source="appdata")
    with trio.fail_after(TEST_TIMEOUT):
        # First use: the image's /data content (and its owner) is copied in.
        code, out = await run(rt, spec(image_with_data, "sh", "-c",
                                       "cat /data/seed.txt; stat -c %u /data; "
                                       "echo written > /data/new.txt", mounts=(vol,)))
        assert (code, out) == (0, "seeded\n1000\n")
        # A new container on the same volume sees what the first one wrote.
        code, out = await run(rt, spec(image_with_data, "sh", "-c", "cat /data/new.txt",
                                       mounts=(vol,)))
        assert (code, out) == (0, "written\n")
        # nocopy: an empty new volume stays empty.
        code, out = await run(rt, spec(image_with_data, "ls", "-A", "/data", mounts=(
            Mount(MountType.VOLUME, "/data", source="empty", nocopy=True),)))
        assert (code, out) == (0, "")


async def test_anonymous_volumes_removed_with_container(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", "touch /cache/x /declared/y",
                                    mounts=(Mount(MountType.VOLUME, "/cache"),),
                                    image=ImageDefaults(volumes=("/declared",))))
        await rt.start(info.id)
        assert (await rt.wait(info.id)).code == 0
        anonymous = [v for v in list_volumes(rt.root) if v.anonymous]
        assert len(anonymous) == 2
        assert sorted(os.listdir(v.path) for v in anonymous) == [["x"], ["y"]]
        # inspect says which volume is mounted where.
        listed = (await rt.inspect(info.id)).anonymous_volumes
        assert sorted(listed) == ["/cache", "/declared"]
        assert sorted(listed.values()) == sorted(v.name for v in anonymous)
        # A replacement handed the same volumes by name lists (and owns) them too.
        await rt.remove(info.id)
        again = await rt.create(spec(busybox_rootfs, "sh", "-c", "ls /cache /declared",
                                     mounts=(Mount(MountType.VOLUME, "/cache",
                                                   listed["/cache"]),
                                             Mount(MountType.VOLUME, "/declared",
                                                   listed["/declared"]))))
        assert dict(again.anonymous_volumes) == dict(listed)
        await rt.remove(again.id, volumes=True)
        assert [v for v in list_volumes(rt.root) if v.anonymous] == []
        # A named volume is never listed as anonymous.
        named = await rt.create(spec(busybox_rootfs, "true",
                                     mounts=(Mount(MountType.VOLUME, "/data", "named"),)))
        assert dict(named.anonymous_volumes) == {}
        await rt.remove(named.id, volumes=True)
        assert [v.name for v in list_volumes(rt.root)] == ["named"]


async def test_bind_mounts_ro_rw_and_created(rt: Runtime, busybox_rootfs: Path,
                                             tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "in.txt").write_text("from host\n")
    rw = tmp_path / "rw"
    rw.mkdir()
    missing = tmp_path / "made" / "by-runtime"
    single = tmp_path / "single.conf"
    single.write_text("k=v\n")
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c",
                                       "cat /ro/in.txt; touch /ro/x 2>/dev/null || "
                                       "echo ro-refused; echo out > /rw/out.txt; ls -d /made; "
                                       "cat /etc/app.conf",
                                       mounts=(Mount(MountType.BIND, "/ro", str(ro),
                                                     read_only=True),
                                               Mount(MountType.BIND, "/rw", str(rw)),
                                               Mount(MountType.BIND, "/made", str(missing)),
                                               Mount(MountType.BIND, "/etc/app.conf", str(single),
                                                     read_only=True))))
    assert code == 0
    assert out == "from host\nro-refused\n/made\nk=v\n"
    assert (rw / "out.txt").read_text() == "out\n"
    assert missing.is_dir()


async def test_tmpfs_size_mode_and_shm(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(
            busybox_rootfs, "sh", "-c",
            "stat -c %a /scratch; df -k /scratch | tail -1 | awk '{print $2}'; "
            "df -k /dev/shm | tail -1 | awk '{print $2}'; ls /dev; ls /dev/pts",
            mounts=(Mount(MountType.TMPFS, "/scratch", tmpfs_size=4 << 20, tmpfs_mode=0o700),),
            shm_size=8 << 20))
    assert code == 0
    lines = out.split("\n")
    assert lines[:3] == ["700", "4096", "8192"]
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
                "mqueue", "fd", "stdout"):
        assert dev in lines


async def test_network_namespaces(rt: Runtime, busybox_rootfs: Path, tmp_path: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c",
                                       "ip -o link | cut -d: -f2; "
                                       "ip -o addr show lo | grep -c 127.0.0.1"))
        assert code == 0
        assert out.split() == ["lo", "1"]
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", "ip -o link | wc -l",
                                       netns="host"))
        assert int(out.strip()) > 1
        # A namespace handed in by path (what the network library does).
        handle = tmp_path / "netns"
        handle.touch()
        try:
            subprocess.run(["unshare", f"--net={handle}", "ip", "link", "add", "pcdummy0",  # noqa: ASYNC221
                            "type", "veth", "peer", "name", "pcdummy1"], check=True)
            code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", "ip -o link | cut -d: -f2",
                                           netns=str(handle)))
            assert "pcdummy0@pcdummy1" in out.split()
        finally:
            subprocess.run(["umount", str(handle)], check=False)  # noqa: ASYNC221
