"""What the builder tests share: running a command in a built image, finding the work
directories a build must not leave behind, and the ``pycompose`` command line."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import trio

from pycompose.runtime.client import Runtime
from pycompose.runtime.images import Image
from pycompose.runtime.logs import read_logs
from pycompose.runtime.spec import ContainerSpec, ImageDefaults

WORK_DIRS = ("build-copy-", "build-add-", "build-mounts-")


def leftovers(state_root: Path) -> list[str]:
    """Work directories of builds left in the state root (there must be none)."""
    return [p for p in os.listdir(state_root) if p.startswith(WORK_DIRS)]


async def run_in(rt: Runtime, image: Image, *argv: str) -> str:
    """The output of ``argv`` run as root in a container of ``image`` (it must exit 0)."""
    cid = secrets.token_hex(32)
    await rt.create(ContainerSpec(id=cid, name="t", layers=tuple(map(str, image.layer_dirs)),
                                  image=ImageDefaults.from_config(image.config.config),
                                  entrypoint=(), command=argv, user="0"))
    try:
        await rt.start(cid)
        with trio.fail_after(30):
            status = await rt.wait(cid)
        text = "".join(e.text for e in read_logs(rt.log_path(cid)))
        assert status.code == 0, text
        return text
    finally:
        await rt.remove(cid, force=True)


def cli(*argv: str, root: Path, instance: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``pycompose ARGV`` on state root ``root`` (and ``instance``), as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCOMPOSE_")}
    env.update(PYCOMPOSE_ROOT=str(root), PYCOMPOSE_INSTANCE=instance)
    return subprocess.run([sys.executable, "-m", "pycompose", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
