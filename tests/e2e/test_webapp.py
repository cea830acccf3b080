"""examples/stacks/webapp: Python + PostgreSQL + Redis, as a user brings it up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Engine, Footprint, eventually, get_json, http_get, ps, stack

pytestmark = [pytest.mark.root, pytest.mark.slow]

NAME = "webapp"
REPO = Path(__file__).resolve().parents[2]

SEED = ["PostgreSQL keeps these rows in the db-data volume", "Redis counts the visits",
        "pycompose runs all three containers"]


def visits(html: str) -> int:
    m = re.search(r'id="visits">(\d+)<', html)
    assert m, html
    return int(m.group(1))


def demo(eng: Engine) -> str:
    """``scripts/demo`` (what ``make demo`` runs) against the test's engine; its output."""
    bindir = Path(sys.executable).parent
    proc = subprocess.run([str(REPO / "scripts" / "demo")], env={
        **eng.env, "PYCOMPOSE": str(bindir / "pycompose"), "PYTHON": sys.executable},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def test_webapp_page_has_postgres_rows_and_a_redis_counter(stack_engine: Engine) -> None:
    eng = stack_engine
    url = f"http://127.0.0.1:{eng.env['WEB_PORT']}/"
    # The main job: builds the images from Debian packages and brings the stack up.
    out = demo(eng)
    assert "Building db (pycompose-examples/postgres:15)" in out
    assert "The webapp stack is up" in out
    assert f"open {url}" in out
    assert "visits (Redis counter): 1\n" in out
    assert "note (PostgreSQL): #3 pycompose runs all three containers" in out
    # A second run reuses everything: nothing built, nothing recreated.
    out = demo(eng)
    assert "Building" not in out
    assert "Creat" not in out
    assert "visits (Redis counter): 2\n" in out
    states = {c["Service"]: c for c in ps(eng, NAME)}
    assert states["db"]["Health"] == "healthy"
    assert states["cache"]["Health"] == "healthy"
    assert states["migrate"]["State"] == "exited"
    assert states["migrate"]["ExitCode"] == 0
    assert states["web"]["State"] == "running"

    status, page = http_get(url)
    assert status == 200, page
    assert re.findall(r"<li>#\d+ (.*?)</li>", page) == SEED
    first = visits(page)
    assert visits(http_get(url)[1]) == first + 1
    stats = get_json(url + "api/stats")
    assert stats["visits"] == first + 2
    assert stats["postgres"].startswith("15.")
    assert stats["served_by"] == states["web"]["ID"][:12]

    # The migration again, as a one-off: idempotent, and its container is removed.
    again = stack(eng, NAME, "run", "--rm", "migrate")
    assert "migrate: table notes ready, 3 rows" in again.stdout
    assert sorted(c["Service"] for c in ps(eng, NAME)) == ["cache", "db", "migrate", "web"]

    # down keeps the named volume: the next up finds the database initialised.
    stack(eng, NAME, "down")
    assert ps(eng, NAME) == []
    stack(eng, NAME, "up", "-d", "--wait")
    db_logs = stack(eng, NAME, "logs", "db").stdout
    assert "ready to accept connections" in db_logs
    assert "initialising" not in db_logs
    page = eventually(lambda: (lambda r: r[1] if r[0] == 200 else None)(http_get(url)),
                      "the page after a second up")
    assert re.findall(r"<li>#\d+ (.*?)</li>", page) == SEED

    footprint = Footprint(eng, NAME, ["default"])
    stack(eng, NAME, "down", "-v")
    footprint.assert_gone()
