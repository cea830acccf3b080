"""The example stacks of ``examples/stacks/``, brought up with the ``pycompose`` CLI.

Each test gets the engine of ``tests/integration/engine`` (a temporary state
root, ``PYCOMPOSE_INSTANCE`` from ``run_id``, everything taken down and stopped
afterwards) with ``debian:bookworm-slim`` loaded into its image store. That
image is bootstrapped once per session with debootstrap from the Debian mirror
(about 40 s; the stacks' ``build:`` steps install Debian packages from it too)
and saved as an archive each test loads. ``PYCOMPOSE_TEST_DEBIAN_ARCHIVE``
names an archive made earlier (``pycompose image save -o FILE
debian:bookworm-slim``) to skip the bootstrap.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.integration.engine.conftest import (  # noqa: F401 - fixtures reused here
    Engine,
    cgroup_children,
    engine,
    instance,
    supervisor_pid,
    wait_gone,
)

STACKS = Path(__file__).resolve().parents[2] / "examples" / "stacks"
BASE = "debian:bookworm-slim"
T = TypeVar("T")


@pytest.fixture(scope="session")
def debian_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``debian:bookworm-slim`` as a ``docker save`` archive, made once per session."""
    given = os.environ.get("PYCOMPOSE_TEST_DEBIAN_ARCHIVE")
    if given:
        return Path(given)
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    if shutil.which("debootstrap") is None:
        pytest.skip("needs Debian's debootstrap (make apt installs it)")
    from pycompose.runtime.bootstrap import bootstrap
    from pycompose.runtime.images import ImageStore

    work = tmp_path_factory.mktemp("debian")
    store = ImageStore(work / "images")
    bootstrap(store, BASE)
    archive = work / "debian-bookworm-slim.tar"
    store.save([BASE], archive)
    shutil.rmtree(work / "images")
    return archive


@pytest.fixture
def stack_engine(engine: Engine, debian_archive: Path) -> Engine:  # noqa: F811
    """The engine, with the Debian base image in its store; stacks use free host ports."""
    from pycompose.runtime.images import ImageStore

    ImageStore(engine.root / "images").load(debian_archive)
    for var in ("WEB_PORT", "PROXY_PORT", "QUEUE_PORT"):
        engine.env[var] = str(free_port())
    return engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack(eng: Engine, name: str, *args: str, check: bool = True, timeout: float = 600
          ) -> subprocess.CompletedProcess[str]:
    """``pycompose -f examples/stacks/NAME/compose.yaml ARGS`` against the test's eng."""
    return eng.cli("-f", str(STACKS / name / "compose.yaml"), *args, check=check,
                      timeout=timeout)


def ps(eng: Engine, name: str) -> list[dict[str, Any]]:
    """``ps -a --format json`` of example stack ``name``."""
    return list(json.loads(stack(eng, name, "ps", "-a", "--format", "json").stdout))


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get_json(url: str) -> Any:
    status, body = http_get(url)
    assert status == 200, f"GET {url}: {status} {body}"
    return json.loads(body)


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll ``probe`` until it returns something (not a timing assertion: a bound on waiting)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def links(*args: str) -> list[str]:
    out = subprocess.run(["ip", "-j", "link", "show", *args], capture_output=True, text=True,
                         check=False)
    return [link["ifname"] for link in json.loads(out.stdout or "[]")]


class Footprint:
    """What a running stack holds on the host, to check that ``down -v`` removes all of it."""

    def __init__(self, eng: Engine, project: str, networks: list[str]) -> None:
        from pycompose.network.names import bridge_name

        self.eng = eng
        self.project = project
        self.bridges = [bridge_name(eng.env["PYCOMPOSE_INSTANCE"], project, n)
                        for n in networks]
        for bridge in self.bridges:
            assert links(bridge) == [bridge], f"bridge {bridge} of {project} is missing"
        self.veths = [v for b in self.bridges for v in links("master", b)]
        assert self.veths, "no container is attached to the stack's bridge"
        self.netns = sorted(p.name for p in (eng.root / "netns").iterdir())
        assert self.netns
        sup = supervisor_pid(eng.root)
        assert sup is not None
        self.inits = [int(p) for p in
                      Path(f"/proc/{sup}/task/{sup}/children").read_text().split()]
        assert self.inits
        assert cgroup_children(eng.env["PYCOMPOSE_INSTANCE"])

    def assert_gone(self) -> None:
        eng = self.eng
        assert ps(eng, self.project) == []
        assert list((eng.root / "containers").iterdir()) == []
        assert list((eng.root / "volumes").iterdir()) == []
        for pid in self.inits:
            wait_gone(pid)
        assert str(eng.root) not in Path("/proc/self/mountinfo").read_text()
        for name in (*self.bridges, *self.veths):
            assert links(name) == [], f"link {name} left behind"
        assert list((eng.root / "netns").iterdir()) == []
        assert cgroup_children(eng.env["PYCOMPOSE_INSTANCE"]) == []
        with eng.api() as api:
            assert api.get("/projects", all=True) == []
