"""``pycompose build`` as a user runs it: a compose project with build:, then a cached rebuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.runtime.images import ImageStore
from tests.helpers.builds import cli
from tests.helpers.ssh import (
    SSH_ADD,
    add_key,
    agents_started,
    assert_stopped,
    make_key,
    ssh_agent,
    ssh_tools,
)

pytestmark = pytest.mark.root


def test_build_services(root: Path, instance: str, tmp_path: Path) -> None:
    proj = tmp_path / "shop"
    (proj / "api").mkdir(parents=True)
    (proj / "api" / "Dockerfile").write_text(
        "FROM busybox\nARG FLAVOUR=plain\nCOPY hello.txt /srv/\n"
        "RUN echo \"$FLAVOUR\" > /srv/flavour\nCMD [\"cat\", \"/srv/flavour\"]\n")
    (proj / "api" / "hello.txt").write_text("hi\n")
    (proj / "compose.yaml").write_text(
        "services:\n"
        "  api:\n    build:\n      context: ./api\n      args:\n        FLAVOUR: spicy\n"
        "      labels:\n        team: shop\n"
        "  web:\n    image: busybox\n")
    out = cli("build", root=root, instance=instance, cwd=proj)
    assert out.returncode == 0, out.stderr
    assert "[stage-0 4/5] RUN echo" in out.stdout
    assert "naming to shop-api" in out.stdout
    image = ImageStore(root / "images").get("shop-api")
    assert image.config.config.labels["team"] == "shop"
    flavour = image.layers[-1].path / "srv" / "flavour"
    assert flavour.read_text() == "spicy\n"
    again = cli("build", "api", root=root, instance=instance, cwd=proj)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("CACHED") == 3  # COPY, RUN, CMD
    assert ImageStore(root / "images").get("shop-api").id == image.id
    bad = cli("build", "nope", root=root, instance=instance, cwd=proj)
    assert bad.returncode == 1
    assert "no such service: nope" in bad.stderr


def test_build_secrets_from_compose(root: Path, instance: str, tmp_path: Path) -> None:
    """``build.secrets`` hands top-level secrets (a file, an environment variable) to
    ``RUN --mount=type=secret`` under their name or their ``target`` id."""
    proj = tmp_path / "sec"
    proj.mkdir()
    (proj / "token.txt").write_text("from-a-file\n")
    (proj / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN --mount=type=secret,id=token --mount=type=secret,id=npmrc \\\n"
        "    sh -c 'cat /run/secrets/token /run/secrets/npmrc > /seen'\n")
    (proj / "compose.yaml").write_text(
        "services:\n"
        "  app:\n    build:\n      context: .\n      secrets:\n"
        "        - token\n        - source: npm\n          target: npmrc\n"
        "secrets:\n  token:\n    file: ./token.txt\n  npm:\n    environment: NPM_TOKEN\n")
    (proj / ".env").write_text("NPM_TOKEN=from-the-env\n")
    out = cli("build", root=root, instance=instance, cwd=proj)
    assert out.returncode == 0, out.stderr
    image = ImageStore(root / "images").get("sec-app")
    assert (image.layers[-1].path / "seen").read_text() == "from-a-file\nfrom-the-env"
    (proj / "compose.yaml").write_text(
        "services:\n  app:\n    build:\n      context: .\n      secrets: [nope]\n")
    bad = cli("build", root=root, instance=instance, cwd=proj)
    assert bad.returncode == 1
    assert "service 'app': build.secrets: 'nope' is not defined" in bad.stderr


def test_build_ssh_from_compose(root: Path, instance: str, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``build.ssh``: ``default`` forwards the agent of ``$SSH_AUTH_SOCK``, ``id=path``
    loads a key file (relative to the project) into an agent the build stops; a
    malformed entry names the file and the key."""
    proj = tmp_path / "ssh"
    ssh_tools(proj / "tools")
    host_key, host_fp = make_key(tmp_path, "host")
    deploy_key, deploy_fp = make_key(proj, "deploy_key")
    (proj / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN --mount=type=bind,source=tools,target=/tools --mount=type=ssh \\\n"
        "    --mount=type=ssh,id=deploy,target=/deploy.sock \\\n"
        f"    sh -c '{SSH_ADD} -l > /default; SSH_AUTH_SOCK=/deploy.sock {SSH_ADD} -l > /deploy'\n")
    (proj / "compose.yaml").write_text(
        "services:\n  app:\n    build:\n      context: .\n"
        "      ssh: [default, deploy=./deploy_key]\n")
    with ssh_agent(tmp_path / "agent.sock") as sock:
        add_key(sock, host_key)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        out = cli("build", root=root, instance=instance, cwd=proj)
    assert out.returncode == 0, out.stderr
    top = ImageStore(root / "images").get("ssh-app").layers[-1].path
    assert (top / "default").read_text().split()[1] == host_fp
    assert (top / "deploy").read_text().split()[1] == deploy_fp
    started = agents_started(out.stdout.splitlines())
    assert len(started) == 1  # for the key file only
    assert_stopped(started)
    (proj / "compose.yaml").write_text(
        "services:\n  app:\n    build:\n      context: .\n      ssh: [deploy=]\n")
    bad = cli("build", root=root, instance=instance, cwd=proj)
    assert bad.returncode == 1
    assert "compose.yaml: services.app.build.ssh.deploy: deploy='': expected an agent " \
        "socket or key files" in bad.stderr
    (proj / "compose.yaml").write_text("services:\n  app:\n    build: .\n")
    bad = cli("build", "--ssh", "a b", root=root, instance=instance, cwd=proj)
    assert bad.returncode == 1
    assert "--ssh: 'a b': an id is a word without spaces" in bad.stderr
