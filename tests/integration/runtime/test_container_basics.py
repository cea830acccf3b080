"""Real containers from a busybox rootfs: isolation, identity, filesystem, users."""

from __future__ import annotations

import os
from contextlib import aclosing
from pathlib import Path

import pytest
import trio

from pycompose.runtime.client import Runtime
from pycompose.runtime.errors import ContainerStateError, SpawnError
from pycompose.runtime.logs import follow, read_logs
from pycompose.runtime.spec import Mount, MountType, Security, Ulimit

from .test_container_support import TEST_TIMEOUT, spec
from .test_container_support import run_container as run

pytestmark = pytest.mark.root


async def test_pid1_and_no_host_processes(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c",
                                       "echo self=$$; ls /proc | grep -c '^[0-9]'"))
    assert code == 0
    lines = out.split()
    assert lines[0] == "self=1"
    # sh (PID 1) and ls, and the grep: nothing from the host.
    assert int(lines[1]) <= 3


async def test_hostname_domainname_and_etc_files(rt: Runtime, busybox_rootfs: Path) -> None:
    from pycompose.runtime.spec import EtcFile

    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(
            busybox_rootfs, "sh", "-c",
            "hostname; cat /proc/sys/kernel/domainname; cat /etc/hostname; cat /etc/hosts; "
            "cat /etc/resolv.conf; echo $HOSTNAME",
            hostname="web-1", domainname="example.test",
            etc_hosts=EtcFile(content="10.1.2.3 db\n"),
            resolv_conf=EtcFile(content="nameserver 10.1.2.1\n")))
    assert code == 0
    assert out.split("\n")[:7] == ["web-1", "example.test", "web-1", "10.1.2.3 db",
                                   "nameserver 10.1.2.1", "web-1", ""]


async def test_exit_code_and_missing_binary(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, _ = await run(rt, spec(busybox_rootfs, "sh", "-c", "exit 42"))
        assert code == 42
        info = await rt.create(spec(busybox_rootfs, "no-such-program"))
        with pytest.raises(SpawnError) as err:
            await rt.start(info.id)
        assert 'exec: "no-such-program": executable file not found in $PATH' in str(err.value)
        assert err.value.step == "exec"
        # Nothing half-made: the container is still just created, and can be removed.
        again = await rt.inspect(info.id)
        assert again.status.value == "created"
        await rt.remove(info.id)


async def test_sysctls_applied_and_proc_sys_read_only(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(
            busybox_rootfs, "sh", "-c",
            "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start; "
            "echo 0 > /proc/sys/kernel/shm_rmid_forced || echo procsys-ro; "
            "touch /sys/x 2>/dev/null || echo sys-ro",
            sysctls={"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "80"}))
    assert code == 0
    assert out.split("\n")[:2] == ["1", "80"]
    assert "procsys-ro" in out
    assert "sys-ro" in out


async def test_read_only_rootfs(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(
            busybox_rootfs, "sh", "-c",
            "touch /x 2>&1 || echo refused; touch /tmp/ok 2>&1 && echo tmpfs-ok",
            read_only=True, mounts=(Mount(MountType.TMPFS, "/tmp"),)))
    assert code == 0
    assert "refused" in out
    assert "Read-only file system" in out
    assert "tmpfs-ok" in out


async def test_user_numeric_and_named(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "id", user="1000:1000"))
        assert code == 0
        assert out.strip() == "uid=1000(app) gid=1000(app) groups=1000(app)"
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", "id; echo $HOME",
                                       user="app", group_add=("daemon",)))
        assert code == 0
        assert out.split("\n")[0] == ("uid=1000(app) gid=1000(app) "
                                       "groups=1(daemon),1000(app),2000(extra)")
        assert out.split("\n")[1] == "/home/app"
        info = await rt.create(spec(busybox_rootfs, "true", user="nosuchuser"))
        with pytest.raises(SpawnError, match="unable to find user nosuchuser"):
            await rt.start(info.id)


async def test_env_workdir_and_image_config_merge(rt: Runtime, busybox_rootfs: Path) -> None:
    from pycompose.runtime.spec import ImageDefaults

    image = ImageDefaults(entrypoint=("sh", "-c"), cmd=("echo image-cmd",),
                          env=("A=image", "B=image"), working_dir="/srv/app")
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, image=image))
        assert (code, out) == (0, "image-cmd\n")
        code, out = await run(rt, spec(busybox_rootfs, 'echo "$A $B $PWD"', image=image,
                                       env={"B": "spec"}))
        assert (code, out) == (0, "image spec /srv/app\n")
        # Overriding the entrypoint drops the image's cmd, as Docker does.
        code, out = await run(rt, spec(busybox_rootfs, image=image, entrypoint=("pwd",),
                                       working_dir="/tmp"))
        assert (code, out) == (0, "/tmp\n")


async def test_ulimits_clamped_with_warning(rt: Runtime, busybox_rootfs: Path) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with trio.fail_after(TEST_TIMEOUT):
        s = spec(busybox_rootfs, "sh", "-c", "ulimit -n; ulimit -Hn",
                 ulimits=(Ulimit("nofile", 1024, hard * 10 if hard > 0 else 1 << 30),))
        info = await rt.create(s)
        if hard != resource.RLIM_INFINITY:
            assert any("clamped" in w for w in info.warnings)
        await rt.start(info.id)
        assert (await rt.wait(info.id)).code == 0
        out = "".join(e.text for e in read_logs(rt.log_path(info.id))).split()
        assert out[0] == "1024"
        if hard != resource.RLIM_INFINITY:
            assert out[1] == str(hard)


async def test_start_twice_refused_and_restart(rt: Runtime, busybox_rootfs: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        info = await rt.create(spec(busybox_rootfs, "sh", "-c", "echo run; sleep 30"))
        await rt.start(info.id)
        with pytest.raises(ContainerStateError):
            await rt.start(info.id)
        with pytest.raises(ContainerStateError):
            await rt.remove(info.id)
        status = await rt.stop(info.id, timeout=0.2)
        assert status.signal == 9
        assert status.code == 137
        again = await rt.start(info.id)
        assert again.restart_count == 1
        async with aclosing(follow(rt.log_path(info.id))) as entries:
            seen = 0
            async for _ in entries:
                seen += 1
                if seen == 2:
                    break
        await rt.kill(info.id)
        assert (await rt.wait(info.id)).code == 137
        assert "".join(e.text for e in read_logs(rt.log_path(info.id))) == "run\nrun\n"
        await rt.remove(info.id)
        assert not os.path.exists(rt.log_path(info.id))  # noqa: ASYNC240


async def test_capabilities_seccomp_and_masked_paths(rt: Runtime, busybox_rootfs: Path) -> None:
    script = ("grep CapEff /proc/self/status; "
              "mount -t tmpfs none /mnt 2>&1 || echo mount-refused; "
              "stat -c 'masked=%t:%T' /proc/timer_list; "
              "echo 1 > /proc/sys/vm/drop_caches 2>&1 || echo procsys-ro; "
              "unshare -r true 2>&1 || echo unshare-refused")
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", script))
        assert code == 0
        # Docker's default set: 0x00000000a80425fb
        assert "CapEff:\t00000000a80425fb" in out
        assert "mount-refused" in out
        assert "procsys-ro" in out
        assert "unshare-refused" in out
        assert "masked=1:3" in out  # /dev/null bound over it
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", "grep CapEff /proc/self/status",
                                       security=Security(cap_drop=("ALL",), cap_add=("CHOWN",))))
        assert "CapEff:\t0000000000000001" in out
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", "grep CapEff /proc/self/status",
                                       user="1000"))
        assert "CapEff:\t0000000000000000" in out


async def test_failures_leave_nothing_half_made(rt: Runtime, busybox_rootfs: Path,
                                                instance: str, tmp_path: Path) -> None:
    from pycompose.runtime import cgroups
    from pycompose.runtime.errors import ContainerError

    layout = cgroups.detect_layout()
    with trio.fail_after(TEST_TIMEOUT):
        # Refused at create: nothing on disk, no cgroup.
        bad = spec(busybox_rootfs, "true", sysctls={"vm.swappiness": "1"})
        with pytest.raises(ContainerError, match="vm.swappiness is not namespaced"):
            await rt.create(bad)
        assert not (rt.root / "containers" / bad.id).exists()
        assert not cgroups.open_cgroup(layout, f"pycompose_{instance}", bad.id).exists()
        with pytest.raises(ContainerError, match="image layer /nonexistent is missing"):
            await rt.create(spec(("/nonexistent",), "true"))
        # Fails in the child at a mount: a typed error with the step and the path.
        afile = tmp_path / "a-file"
        afile.write_text("x")
        info = await rt.create(spec(busybox_rootfs, "true", mounts=(
            Mount(MountType.BIND, "/etc", str(afile)),)))
        with pytest.raises(SpawnError) as err:
            await rt.start(info.id)
        assert err.value.step == "mounts"
        assert "/etc" in str(err.value)
        assert (await rt.inspect(info.id)).status.value == "created"
        await rt.remove(info.id)
        assert not cgroups.open_cgroup(layout, f"pycompose_{instance}", info.id).exists()
        with pytest.raises(ContainerError, match="must be 64 lowercase hex"):
            await rt.create(spec(busybox_rootfs, "true", id="nothex"))


async def test_oom_score_adj_no_new_privs_and_seccomp_choice(rt: Runtime,
                                                             busybox_rootfs: Path) -> None:
    script = "cat /proc/self/oom_score_adj; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"
    with trio.fail_after(TEST_TIMEOUT):
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", script, oom_score_adj=500,
                                       security=Security(no_new_privileges=True)))
        assert code == 0
        assert out.split("\n")[:3] == ["500", "NoNewPrivs:\t1", "Seccomp:\t2"]
        code, out = await run(rt, spec(busybox_rootfs, "sh", "-c", script,
                                       security=Security(seccomp="unconfined")))
        assert out.split("\n")[:3] == ["0", "NoNewPrivs:\t0", "Seccomp:\t0"]
