"""A real engine on a temporary state root, driven through the ``pycompose`` CLI.

The engine is started once per test (``start_engine``, as the CLI would) with
``PYCOMPOSE_INSTANCE`` derived from ``run_id``; a busybox image is imported
into its image store. The finaliser takes every project down with ``-v``,
stops the engine (SIGTERM to the pid we started) and asks the runtime's
supervisor — which the engine started under this root — to exit, then checks
that none of their processes is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.images import make_rootfs_tar

pytestmark = pytest.mark.root


class Engine:
    def __init__(self, root: Path, env: dict[str, str], pid: int, workdir: Path) -> None:
        self.root = root
        self.env = env
        self.pid = pid
        self.workdir = workdir

    def cli(self, *args: str, check: bool = True, timeout: float = 120,
            cwd: Path | None = None, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "pycompose", "--progress", "plain",
                               *args], cwd=cwd or self.workdir, env=self.env, text=True,
                              capture_output=True, timeout=timeout,
                              **({"input": input} if input is not None
                                 else {"stdin": subprocess.DEVNULL}))
        if check and proc.returncode != 0:
            raise AssertionError(f"pycompose {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def compose(self, text: str, name: str = "compose.yaml") -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    def ps(self, *args: str) -> list[dict[str, Any]]:
        out = self.cli("ps", "-a", "--format", "json", *args).stdout
        return list(json.loads(out))

    def api(self) -> Any:
        from pycompose.client import EngineClient
        from pycompose.paths import host_paths

        return EngineClient(host_paths(self.env))

    def start(self) -> int:
        from pycompose.client import start_engine
        from pycompose.paths import host_paths

        self.pid = start_engine(host_paths(self.env))
        return self.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "Z" not in Path(
            f"/proc/{pid}/stat").read_text().split(")")[-1][:3]


def wait_gone(pid: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} did not exit")
        time.sleep(0.05)


def supervisor_pid(root: Path) -> int | None:
    log = root / "supervisor.log"
    if not log.exists():
        return None
    pid = None
    for line in log.read_text().splitlines():
        if "supervisor " in line and " serving " in line:
            pid = int(line.split("supervisor ", 1)[1].split()[0])
    return pid


def stop_supervisor(root: Path, instance: str) -> None:
    import trio

    from pycompose.runtime.client import open_runtime

    pid = supervisor_pid(root)
    helpers = _helper_processes(root)

    async def shutdown() -> None:
        async with open_runtime(root, instance, autostart=False) as rt:
            for info in await rt.list():
                await rt.remove(info.id, force=True, volumes=True)
            await rt.shutdown()

    try:
        trio.run(shutdown)
    except Exception:  # noqa: BLE001 - already gone is fine; the pid check below decides
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGTERM)
    if pid is not None:
        wait_gone(pid)
    for helper in helpers:  # the supervisor's own helpers for this root (fd keeper, ...)
        if _alive(helper):
            os.kill(helper, signal.SIGTERM)
            wait_gone(helper)


def cgroup_children(instance: str) -> list[Path]:
    """Container cgroups left under this instance's parent, in every hierarchy."""
    from pycompose.runtime import cgroups

    out = []
    for d in cgroups.parent_dirs(cgroups.detect_layout(), f"pycompose_{instance}"):
        if d.is_dir():
            out += [c for c in d.iterdir() if c.is_dir()]
    return out


def remove_cgroup_parent(instance: str) -> None:
    """The (empty) parent cgroup the runtime made for this test's instance."""
    from pycompose.runtime import cgroups

    try:
        cgroups.remove_parent(cgroups.detect_layout(), f"pycompose_{instance}")
    except Exception as exc:  # noqa: BLE001 - shown, and the test's own checks decide
        print(f"cgroup parent pycompose_{instance} not removed: {exc}")


def _helper_processes(root: Path) -> list[int]:
    """Runtime processes serving ``root`` (their command line names it)."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pycompose.runtime.supervisor" in cmd and str(root).encode() in cmd:
            out.append(int(proc.name))
    return out


@pytest.fixture
def instance(run_id: str) -> str:
    return "e" + run_id


@pytest.fixture
def engine(state_root: Path, instance: str, busybox_rootfs: Path, tmp_path: Path
           ) -> Iterator[Engine]:
    from pycompose.runtime.images import ImageStore

    tar = make_rootfs_tar(busybox_rootfs, tmp_path / "busybox.tar")
    ImageStore(state_root / "images").import_rootfs(tar, "busybox:latest",
                                                   changes=['CMD ["sh"]'])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCOMPOSE_")}
    env.update(PYCOMPOSE_ROOT=str(state_root), PYCOMPOSE_INSTANCE=instance)
    workdir = tmp_path / "project"
    workdir.mkdir()
    eng = Engine(state_root, env, 0, workdir)
    try:
        eng.start()
        yield eng
    finally:
        try:
            if eng.pid:
                with eng.api() as api:
                    names = [p["Name"] for p in api.get("/projects", all=True)]
                for name in names:
                    eng.cli("-p", name, "down", "-v", "-t", "0", check=False, cwd=tmp_path)
        finally:
            if eng.pid and _alive(eng.pid):
                os.kill(eng.pid, signal.SIGTERM)
                wait_gone(eng.pid)
            stop_supervisor(state_root, instance)
            remove_cgroup_parent(instance)
