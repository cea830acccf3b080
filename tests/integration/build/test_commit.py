"""``pycompose commit``: a running service's changes become a new image."""

from __future__ import annotations

import json

import pytest

from pycompose.runtime.images import ImageStore
from tests.integration.engine.conftest import Engine, engine, instance  # noqa: F401, F811

pytestmark = pytest.mark.root


def test_commit_a_running_service(engine: Engine) -> None:  # noqa: F811 - the fixture
    engine.compose("services:\n  box:\n    image: busybox\n    command: sleep 300\n")
    engine.cli("-p", "cm", "up", "-d")
    engine.cli("-p", "cm", "exec", "-T", "box", "sh", "-c",
               "echo made-inside > /srv.txt && rm /etc/group")
    out = engine.cli("-p", "cm", "commit", "-m", "snapshot", "-c", 'CMD ["cat", "/srv.txt"]',
                     "box", "snap:1")
    image_id = out.stdout.strip()
    store = ImageStore(engine.root / "images")
    image = store.get("snap:1")
    assert image.id == image_id
    base = store.get("busybox")
    assert image.config.diff_ids[:-1] == base.config.diff_ids
    top = image.layers[-1].path
    assert (top / "srv.txt").read_text() == "made-inside\n"
    group = top / "etc" / "group"
    assert group.is_char_device()  # the deletion, as an overlay whiteout
    assert not (top / "etc" / "hosts").exists()  # a mount target, not a change
    assert image.config.config.cmd == ("cat", "/srv.txt")
    assert image.config.history[-1].comment == "snapshot"
    ps = json.loads(engine.cli("-p", "cm", "ps", "--format", "json").stdout)
    assert ps[0]["State"] == "running"  # unpaused again
