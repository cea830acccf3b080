"""examples/stacks/proxy: nginx in front of two backend replicas."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Engine, Footprint, get_json, http_get, ps, stack

pytestmark = [pytest.mark.root, pytest.mark.slow]

NAME = "proxy"


def test_proxy_serves_the_site_and_spreads_requests_over_the_replicas(
        stack_engine: Engine) -> None:
    eng = stack_engine
    base = f"http://127.0.0.1:{eng.env['PROXY_PORT']}"
    stack(eng, NAME, "up", "-d", "--wait")
    containers = ps(eng, NAME)
    backends = {c["ID"][:12] for c in containers if c["Service"] == "backend"}
    assert len(backends) == 2
    # --wait returned: every container with a healthcheck is healthy, nginx's included
    assert {c["Service"]: c["Health"] for c in containers} == {"web": "healthy",
                                                                 "backend": "healthy"}

    status, page = http_get(base + "/")
    assert status == 200
    assert "A static site behind nginx" in page

    answers = [get_json(base + "/api/whoami") for _ in range(20)]
    assert {a["path"] for a in answers} == {"/api/whoami"}
    assert {a["replica"] for a in answers} == backends

    footprint = Footprint(eng, NAME, ["default"])
    stack(eng, NAME, "down", "-v")
    footprint.assert_gone()
