"""gc() removes what vanished containers left, and nothing of the live ones."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import trio

from pycompose.runtime import cgroups
from pycompose.runtime.client import Runtime

from .test_container_support import (
    TEST_TIMEOUT,
    mounts_below,
    new_id,
    spec,
)

pytestmark = pytest.mark.root


async def test_gc_removes_leftovers_only(rt: Runtime, busybox_rootfs: Path, instance: str) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        live = await rt.create(spec(busybox_rootfs, "sleep", "300"))
        await rt.start(live.id)
        # Leftovers of containers that no longer exist:
        stale_dir = rt.root / "containers" / new_id()
        (stale_dir / "upper" / "etc").mkdir(parents=True)
        (rt.root / "trash" / "old-thing").mkdir(parents=True)
        stale_cg = cgroups.open_cgroup(cgroups.detect_layout(), f"pycompose_{instance}", new_id())
        stale_cg.create()
        mnt = stale_dir / "rootfs"
        mnt.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=True)  # noqa: ASYNC221
        try:
            report = await rt.gc()
        finally:
            if mounts_below(rt.root):
                subprocess.run(["umount", "-l", str(mnt)], check=False)  # noqa: ASYNC221
        assert str(mnt) in report.unmounted
        assert str(stale_dir) in report.removed_dirs
        assert stale_cg.name in report.removed_cgroups
        assert not stale_dir.exists()
        assert not stale_cg.exists()
        assert not (rt.root / "trash" / "old-thing").exists()
        # The live container is untouched.
        info = await rt.inspect(live.id)
        assert info.status.value == "running"
        assert os.path.exists(f"/proc/{info.pid}")  # noqa: ASYNC240
        assert (rt.root / "containers" / live.id / "config.json").exists()
        # A second run finds nothing.
        again = await rt.gc()
        assert again.removed_dirs == ()
        assert again.removed_cgroups == ()
        assert again.unmounted == ()
