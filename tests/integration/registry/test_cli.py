"""The commands as a user types them: image push/pull, pull and push of a project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pycompose.runtime.images import Image, ImageStore
from tests.helpers.registry import RegistryServer


def cli(*argv: str, root: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYCOMPOSE_")}
    env["PYCOMPOSE_ROOT"] = str(root)
    env["HOME"] = str(root)  # no developer credentials
    return subprocess.run([sys.executable, "-m", "pycompose", "--progress", "plain", *argv],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_image_push_and_pull(registry: RegistryServer, store: ImageStore, multilayer: Image,
                             tmp_path: Path, run_id: str) -> None:
    src_root = store.root.parent
    ref = f"{registry.host}/pc{run_id}/cli:1"
    store.tag("app:1", ref)
    out = cli("image", "push", ref, root=src_root)
    assert out.returncode == 0, out.stderr
    assert "1: digest: sha256:" in out.stdout
    dst = tmp_path / "dst-root"
    out = cli("image", "pull", ref, root=dst)
    assert out.returncode == 0, out.stderr
    assert "Pull complete" in out.stdout
    assert f"Status: Downloaded newer image for {ref}" in out.stdout
    assert ImageStore(dst / "images").get(ref).config.config.cmd == ("sh",)
    missing = cli("image", "pull", f"{registry.host}/pc{run_id}/nope:1", root=dst)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_project_pull_and_push(registry: RegistryServer, store: ImageStore, multilayer: Image,
                               tmp_path: Path, run_id: str) -> None:
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
