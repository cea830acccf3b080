"""The commands as a user types them: image push/pull, pull and push of a project."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycompose.runtime.images import Image, ImageStore
from tests.helpers.registry import RegistryServer, write_docker_config
from tests.integration.engine.conftest import (
    _alive,
    remove_cgroup_parent,
    stop_supervisor,
    wait_gone,
)

INSTANCE = ""  # set per test by the ``engines`` fixture


def cli(*argv: str, root: Path, cwd: Path | None = None,
        env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYCOMPOSE_") and k != "DOCKER_CONFIG"}
    env["PYCOMPOSE_ROOT"] = str(root)
    if INSTANCE:
        env["PYCOMPOSE_INSTANCE"] = INSTANCE
    env["HOME"] = str(root)  # no developer credentials
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pycompose", "--progress", "plain", *argv],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def engines(run_id: str) -> Iterator[list[Path]]:
    """``image pull`` runs in the engine, which the CLI starts on the state root: the test
    lists the roots it used; each one's engine (and supervisor, if any) is stopped."""
    global INSTANCE
    INSTANCE = "r" + run_id
    roots: list[Path] = []
    try:
        yield roots
    finally:
        from pycompose.client import connect
        from pycompose.paths import host_paths

        for root in roots:
            try:
                paths = host_paths({"PYCOMPOSE_ROOT": str(root), "PYCOMPOSE_INSTANCE": INSTANCE})
                with connect(paths, autostart=False) as client:
                    pid = int(client.get("/info")["Pid"])
            except Exception:  # noqa: BLE001 - no engine was started on this root
                continue
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
                wait_gone(pid)
            stop_supervisor(root, INSTANCE)
        remove_cgroup_parent(INSTANCE)
        INSTANCE = ""


def _connections(pid: int, port: int) -> set[int]:
    """Local ports of ``pid``'s established TCP connections to 127.0.0.1:``port``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and inode in inodes and int(remote.split(":")[1], 16) == port:
                ports.add(int(local.split(":")[1], 16))
    return ports


def test_image_push_and_pull(registry: RegistryServer, store: ImageStore, multilayer: Image,
                             tmp_path: Path, run_id: str, engines: list[Path]) -> None:
    src_root = store.root.parent
    ref = f"{registry.host}/pc{run_id}/cli:1"
    store.tag("app:1", ref)
    out = cli("image", "push", ref, root=src_root)
    assert out.returncode == 0, out.stderr
    assert "1: digest: sha256:" in out.stdout
    dst = tmp_path / "dst-root"
    engines.append(dst)
    out = cli("image", "pull", ref, root=dst)
    assert out.returncode == 0, out.stderr
    assert "Pull complete" in out.stdout
    assert f"Status: Downloaded newer image for {ref}" in out.stdout
    assert ImageStore(dst / "images").get(ref).config.config.cmd == ("sh",)
    missing = cli("image", "pull", f"{registry.host}/pc{run_id}/nope:1", root=dst)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    quiet = cli("image", "pull", "-q", ref, root=dst)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == f"{ref}\n"


def test_image_pull_stream_through_engine(registry: RegistryServer, store: ImageStore,
                                          multilayer: Image, tmp_path: Path, run_id: str,
                                          engines: list[Path]) -> None:
    """``POST /images/create`` streams Docker-shaped progress; a registry failure after
    the stream began arrives in-band with its message and type."""
    from pycompose.client import APIError, connect
    from pycompose.paths import host_paths

    src_root = store.root.parent
    ref = f"{registry.host}/pc{run_id}/stream:1"
    store.tag("app:1", ref)
    assert cli("image", "push", "-q", ref, root=src_root).returncode == 0
    dst = tmp_path / "api-root"
    engines.append(dst)
    paths = host_paths({"PYCOMPOSE_ROOT": str(dst), "PYCOMPOSE_INSTANCE": INSTANCE})
    with connect(paths) as client:
        lines = list(client.stream("POST", "/images/create", None, {"fromImage": ref}))
        downloading = [x for x in lines if x.get("status") == "Downloading"]
        assert downloading, lines
        assert all(set(x["progressDetail"]) == {"current", "total"} for x in downloading)
        assert all(len(x["id"]) == 12 for x in downloading)
        assert lines[-1]["status"] == "Pulled"
        assert lines[-1]["reference"] == ref
        assert ImageStore(dst / "images").get(ref).id == lines[-1]["imageId"]
        # The engine keeps its registry connections for the next pull, which reuses them.
        engine_pid = int(client.get("/info")["Pid"])
        kept = _connections(engine_pid, registry.port)
        assert kept, "no keep-alive connection to the registry after the pull"
        again = list(client.stream("POST", "/images/create", None, {"fromImage": ref}))
        assert again[-1]["status"] == "Pulled"
        assert _connections(engine_pid, registry.port) <= kept
        bad = list(client.stream("POST", "/images/create", None,
                                 {"fromImage": f"{registry.host}/pc{run_id}/nope", "tag": "2"}))
        assert "error" in bad[-1], bad
        assert bad[-1]["errorType"] == "ManifestNotFoundError"
        assert "not found" in bad[-1]["errorDetail"]["message"]
        with pytest.raises(APIError, match="expected NAME=VALUE"):
            list(client.stream("POST", "/images/create", None,
                               {"fromImage": ref, "env": ["HOME"]}))


def test_image_pull_in_the_engine_uses_the_callers_credentials(
        basic_registry: RegistryServer, store: ImageStore, multilayer: Image, tmp_path: Path,
        run_id: str, engines: list[Path]) -> None:
    """The engine pulls with the registry settings of the shell that asked, not its own:
    the CLI sends them (``DOCKER_CONFIG`` here) with the request."""
    ref = f"{basic_registry.host}/pc{run_id}/creds:1"
    docker_dir = write_docker_config(tmp_path / "docker", basic_registry.host).parent
    with_creds = {"DOCKER_CONFIG": str(docker_dir)}
    store.tag("app:1", ref)
    pushed = cli("image", "push", "-q", ref, root=store.root.parent, env_extra=with_creds)
    assert pushed.returncode == 0, pushed.stderr
    dst = tmp_path / "dst-root"
    engines.append(dst)
    # This CLI starts the engine, with an environment that has no credentials.
    refused = cli("image", "pull", "-q", ref, root=dst)
    assert refused.returncode == 1
    assert "user name and password" in refused.stderr
    pulled = cli("image", "pull", "-q", ref, root=dst, env_extra=with_creds)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout == f"{ref}\n"
    assert ImageStore(dst / "images").get(ref).id == multilayer.id


def test_project_pull_and_push(registry: RegistryServer, store: ImageStore, multilayer: Image,
                               tmp_path: Path, run_id: str, engines: list[Path]) -> None:
    src_root = store.root.parent
    web = f"{registry.host}/pc{run_id}/web:1"
    store.tag("app:1", web)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "compose.yaml").write_text(
        f"services:\n"
        f"  web:\n    image: {web}\n"
        f"  db:\n    image: {registry.host}/pc{run_id}/db:1\n"
        f"  api:\n    build: .\n")
    out = cli("push", "web", root=src_root, cwd=project)
    assert out.returncode == 0, out.stderr
    dst = tmp_path / "dst-root"
    engines.append(dst)
    out = cli("pull", root=dst, cwd=project)
    assert out.returncode == 1  # db:1 was never pushed
    assert "db" in out.stderr
    out = cli("pull", "--ignore-pull-failures", root=dst, cwd=project)
    assert out.returncode == 0, out.stderr
    assert "warning: db:" in out.stderr
    assert ImageStore(dst / "images").get(web).id
    quiet = cli("pull", "-q", "web", root=dst, cwd=project)
    assert quiet.returncode == 0
    assert quiet.stdout == ""
    # Both at once, in parallel streams: one pulled, one failing with its own message.
    both = cli("pull", "--policy", "missing", "web", "db", root=dst, cwd=project)
    assert both.returncode == 1
    assert "web Pulled" in both.stdout
    assert "db" in both.stderr
    assert "not found" in both.stderr
