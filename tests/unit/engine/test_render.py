"""Progress rendering on a fixed, colourless stream: plain lines and the failure report."""

from __future__ import annotations

import io

from pycompose.cli.render.progress import ProgressRenderer, choose_mode


def feed(mode: str, messages: list[dict[str, object]]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    r = ProgressRenderer(mode, out=out, err=err, ansi="never", command="up")
    for m in messages:
        r.handle(m)
    code = r.close()
    return code, out.getvalue(), err.getvalue()


def progress(resource: str, status: str, text: str = "", kind: str = "container"
             ) -> dict[str, object]:
    return {"type": "progress", "resource": resource, "status": status, "text": text,
            "kind": kind, "service": resource.split("-")[1] if "-" in resource else resource}


FAILED = {
    "type": "result", "ok": False, "errors": [], "changes": True,
    "services": [
        {"name": "db", "status": "failed", "error": "demo-db-1: is unhealthy (last probe: "
         "exit 1, 'connection refused')", "started_s": 0.1, "created_s": 0.05,
         "healthy_s": None, "completed_s": None,
         "details": {"container": "demo-db-1", "probes": ["connection refused\n"],
                     "log_tail": ["starting", "FATAL: bad config"]}},
        {"name": "web", "status": "blocked", "error": "not started: dependency db failed",
         "started_s": None, "created_s": None, "healthy_s": None, "completed_s": None,
         "details": {}},
    ],
}


def test_plain_progress_and_failure_report() -> None:
    code, out, err = feed("plain", [
        {"type": "plan", "text": "", "changes": True, "warnings": ["found orphan x"]},
        progress("demo-db-1", "Created"), progress("demo-db-1", "Started"),
        progress("db", "Error", "demo-db-1: is unhealthy", kind="service"),
        FAILED])
    assert code == 1
    assert out == ""
    assert err.splitlines()[:4] == [
        "warning: found orphan x",
        "Container demo-db-1  Created",
        "Container demo-db-1  Started",
        "Service db  Error  demo-db-1: is unhealthy",
    ]
    report = err.split("Service db  Error  demo-db-1: is unhealthy\n", 1)[1]
    assert report == (
        "error: service db failed: demo-db-1: is unhealthy (last probe: exit 1, "
        "'connection refused')\n"
        "  last health probe output:\n"
        "    connection refused\n"
        "  last log lines of demo-db-1:\n"
        "    starting\n"
        "    FATAL: bad config\n"
        "  not started because of it: web\n"
        "  see more: pycompose logs db\n")


def test_readiness_report_and_json_mode() -> None:
    ok = {"type": "result", "ok": True, "errors": [], "changes": True, "services": [
        {"name": "db", "status": "done", "error": None, "created_s": 0.01, "started_s": 0.02,
         "healthy_s": 1.5, "completed_s": None, "details": {}}]}
    code, _, err = feed("plain", [ok])
    assert code == 0
    assert err == "Ready:\n  db                   created 0.01s, running 0.02s, healthy 1.50s\n"
    code, out, err = feed("json", [progress("demo-db-1", "Started"), ok])
    assert code == 0
    assert err == ""
    assert [line[:30] for line in out.splitlines()] == [
        '{"type": "progress", "resource', '{"type": "result", "ok": true,']


def test_auto_mode_follows_the_terminal() -> None:
    assert choose_mode("auto", io.StringIO()) == "plain"
    assert choose_mode("json", io.StringIO()) == "json"
