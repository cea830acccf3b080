"""End to end: the CLI against a real engine and real containers (busybox).

Services run on per-stack networks (bridge, veth, embedded DNS, published ports).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.engine.conftest import Engine, cgroup_children, supervisor_pid, wait_gone

pytestmark = pytest.mark.root

STACK = """
services:
  db:
    image: busybox
    command: ["sh", "-c", "sleep 1; touch /tmp/ready; echo db ready; exec sleep 1000"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 30s
      start_interval: 200ms
  migrate:
    image: busybox
    command: ["sh", "-c", "echo migrating; sleep 0.5; echo migrated"]
    depends_on:
      db: {condition: service_healthy}
  web:
    image: busybox
    command: ["sh", "-c", "echo web DEBUG=$$DEBUG; exec sleep 1000"]
    environment:
      DEBUG: "0"
    depends_on:
      migrate: {condition: service_completed_successfully}
"""


def events(engine: Engine, project: str) -> list[dict[str, object]]:
    with engine.api() as api:
        out = list(api.stream("GET", "/events", query={
            "since": "0", "until": str(time.time()),  # the history only, then stop
            "filters": {"label": [f"com.docker.compose.project={project}"]}}))
    return out


def first(evts: list[dict[str, object]], action: str, service: str) -> int:
    for e in evts:
        attrs = e["Actor"]["Attributes"]  # type: ignore[index]
        if e["Action"] == action and attrs["com.docker.compose.service"] == service:
            return int(e["timeNano"])  # type: ignore[arg-type]
    raise AssertionError(f"no {action} event for {service}")


def test_conditions_order_the_stack_and_second_up_changes_nothing(engine: Engine) -> None:
    engine.compose(STACK)
    up = engine.cli("up", "-d")
    assert "Ready:" in up.stderr
    evts = events(engine, "project")
    assert first(evts, "health_status: healthy", "db") <= first(evts, "start", "migrate")
    assert first(evts, "die", "migrate") <= first(evts, "start", "web")
    states = {c["Service"]: c for c in engine.ps()}
    assert states["db"]["State"] == "running"
    assert states["db"]["Health"] == "healthy"
    assert states["migrate"]["State"] == "exited"
    assert states["migrate"]["ExitCode"] == 0
    assert states["web"]["State"] == "running"
    ids = {c["Service"]: c["ID"] for c in engine.ps()}

    plan = engine.cli("up", "--dry-run").stdout
    assert "web-1: leave running — unchanged" in plan
    again = engine.cli("up", "-d")
    assert "Creating" not in again.stderr
    assert "Recreat" not in again.stderr
    assert {c["Service"]: c["ID"] for c in engine.ps()}["web"] == ids["web"]

    engine.compose(STACK.replace('DEBUG: "0"', 'DEBUG: "1"'))
    plan = engine.cli("up", "--dry-run").stdout
    assert "web-1: create — recreate: environment.DEBUG changed" in plan
    assert "db-1: leave running — unchanged" in plan
    engine.cli("up", "-d")
    after = {c["Service"]: c["ID"] for c in engine.ps()}
    assert after["db"] == ids["db"]
    assert after["web"] != ids["web"]
    logs = engine.cli("logs", "web").stdout
    assert "web DEBUG=1" in logs


def test_failing_dependency_blocks_only_its_dependents(engine: Engine) -> None:
    engine.compose("""
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo cannot open data dir >&2; exit 3"]
  web:
    image: busybox
    command: ["sleep", "1000"]
    depends_on:
      db: {condition: service_completed_successfully}
  cache:
    image: busybox
    command: ["sleep", "1000"]
""")
    up = engine.cli("up", "-d", check=False)
    assert up.returncode != 0
    assert "not started: dependency db failed" in up.stderr
    assert "exited with code 3" in up.stderr
    assert "    cannot open data dir" in up.stderr  # the culprit's last log lines
    assert "see more: pycompose logs db" in up.stderr
    states = {c["Service"]: c["State"] for c in engine.ps()}
    assert states == {"db": "exited", "cache": "running"}


def test_restart_on_failure_gives_up_after_three(engine: Engine) -> None:
    engine.compose("""
services:
  flaky:
    image: busybox
    command: ["sh", "-c", "echo attempt; exit 2"]
    restart: on-failure:3
""")
    engine.cli("up", "-d")
    with engine.api() as api:
        # Block until the engine stops restarting it: the 4th "die" event.
        for dies, _e in enumerate(api.stream("GET", "/events", query={
                "since": "0", "filters": {"event": ["die"]}}), start=1):
            if dies == 4:
                break
        c = api.get("/containers/project-flaky-1/json")
    assert c["RestartCount"] == 3
    assert c["State"]["Status"] == "exited"
    assert c["State"]["ExitCode"] == 2
    assert engine.cli("logs", "flaky").stdout.count("attempt") == 4


def test_engine_kill_9_leaves_containers_running_and_is_adopted(engine: Engine) -> None:
    engine.compose("""
services:
  app:
    image: busybox
    command: ["sh", "-c", "i=0; while true; do i=$$((i+1)); echo tick $$i; sleep 0.2; done"]
    healthcheck:
      test: ["CMD", "true"]
      start_interval: 200ms
""")
    engine.cli("up", "-d")
    before = engine.ps()[0]
    os.kill(engine.pid, signal.SIGKILL)
    wait_gone(engine.pid)
    sup = supervisor_pid(engine.root)
    assert sup is not None
    assert Path(f"/proc/{sup}").exists()
    engine.start()  # as the next CLI command would
    after = engine.ps()[0]
    assert after["ID"] == before["ID"]
    assert after["State"] == "running"
    logs = engine.cli("logs", "--tail", "3", "app").stdout
    assert "tick" in logs
    engine.cli("stop", "-t", "1")
    assert engine.ps()[0]["State"] == "exited"


def test_down_v_leaves_nothing_behind(engine: Engine) -> None:
    engine.compose("""
services:
  app:
    image: busybox
    command: ["sh", "-c", "echo x > /data/x; echo y > /anon/y; exec sleep 1000"]
    volumes: ["data:/data", "/anon"]
volumes:
  data: {}
""")
    engine.cli("up", "-d")
    vols = sorted(p.name for p in (engine.root / "volumes").iterdir())
    assert "project_data" in vols
    assert len(vols) == 2
    sup = supervisor_pid(engine.root)
    assert sup is not None
    kids = [int(p) for p in Path(f"/proc/{sup}/task/{sup}/children").read_text().split()]
    assert kids
    engine.cli("down", "-v", "-t", "1")
    assert engine.ps() == []
    assert list((engine.root / "volumes").iterdir()) == []
    assert list((engine.root / "containers").iterdir()) == []
    for pid in kids:
        wait_gone(pid)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(engine.root) not in mounts
    assert cgroup_children(engine.env["PYCOMPOSE_INSTANCE"]) == []
    with engine.api() as api:
        assert api.get("/projects", all=True) == []


def test_bad_input_is_a_clear_error_and_starts_nothing(engine: Engine) -> None:
    engine.compose("""
services:
  ok:
    image: busybox
    command: ["sleep", "1000"]
  broken:
    image: nosuchimage:1
""")
    up = engine.cli("up", "-d", check=False)
    assert up.returncode != 0
    assert "service broken: image 'nosuchimage:1' is not in the image store" in up.stderr
    assert engine.ps() == []

    engine.compose("services:\n  ok:\n    image: busybox\n    command: [sleep, '1000']\n")
    unknown = engine.cli("up", "-d", "nope", check=False)
    assert unknown.returncode != 0
    assert "no such service: nope" in unknown.stderr

    engine.compose("""
services:
  ok:
    image: busybox
    command: ["sleep", "1000"]
    volumes: ["ext:/data"]
volumes:
  ext: {external: true}
""")
    ext = engine.cli("up", "-d", check=False)
    assert ext.returncode != 0
    assert "external volume 'ext' (volumes.ext) does not exist" in ext.stderr
    assert engine.ps() == []


def test_exec_passes_the_exit_code_and_output(engine: Engine) -> None:
    engine.compose("services:\n  app:\n    image: busybox\n    command: [sleep, '1000']\n")
    engine.cli("up", "-d")
    res = engine.cli("exec", "app", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert res.returncode == 7
    assert res.stdout == "out\n"
    assert "err" in res.stderr
    assert json.loads(engine.cli("ps", "--format", "json").stdout)[0]["State"] == "running"
    piped = engine.cli("exec", "app", "sh", "-c", "tr a-z A-Z; exit 3", input="hello\n",
                       check=False)
    assert piped.returncode == 3
    assert piped.stdout == "HELLO\n"


def test_run_starts_dependencies_and_returns_the_exit_code(engine: Engine) -> None:
    engine.compose("""
services:
  db:
    image: busybox
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 1000"]
    healthcheck: {test: ["CMD", "test", "-f", "/tmp/ok"], start_interval: 200ms}
  tool:
    image: busybox
    depends_on: {db: {condition: service_healthy}}
""")
    res = engine.cli("run", "--rm", "-e", "WHO=tool", "tool", "sh", "-c",
                     "echo hello $WHO; exit 5", check=False)
    assert res.returncode == 5
    assert res.stdout == "hello tool\n"
    states = {c["Service"]: (c["State"], c["Health"]) for c in engine.ps()}
    assert states == {"db": ("running", "healthy")}  # the one-off is gone (--rm)


def test_run_passes_piped_stdin_and_its_end(engine: Engine) -> None:
    """`echo x | pycompose run --rm tool cat` ends (docker compose run -T does the same)."""
    engine.compose("""
services:
  tool:
    image: busybox
""")
    res = engine.cli("run", "--rm", "tool", "cat", input="x\n", timeout=60)
    assert res.stdout == "x\n"
    big = "".join(f"line {i}\n" for i in range(20000))  # more than a pipe holds
    res = engine.cli("run", "--rm", "-T", "tool", "sh", "-c", "wc -l; exit 4", input=big,
                     check=False, timeout=60)
    assert res.returncode == 4
    assert res.stdout.split() == ["20000"]
    # No input at all (/dev/null) is an immediate end too.
    assert engine.cli("run", "--rm", "tool", "cat", timeout=60).stdout == ""
    assert engine.ps() == []


def test_services_reach_each_other_by_name_and_ports_are_published(engine: Engine) -> None:
    engine.compose("""
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-web > /www/index.html
              && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1::80"]
  client:
    image: busybox
    command: ["sleep", "1000"]
    depends_on: [web]
""")
    engine.cli("up", "-d")
    got = engine.cli("exec", "client", "wget", "-q", "-O", "-", "http://web/").stdout
    assert got == "hello-web\n"
    web = next(c for c in engine.ps() if c["Service"] == "web")
    [pub] = web["Publishers"]
    assert pub["TargetPort"] == 80
    assert pub["PublishedPort"] > 0
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{pub['PublishedPort']}/", timeout=10) as r:
        assert r.read() == b"hello-web\n"
    bridges = Path("/sys/class/net")
    alias = f"pycompose/{engine.env['PYCOMPOSE_INSTANCE']}"

    def ours() -> list[str]:
        out = []
        for link in bridges.iterdir():
            try:
                if (link / "ifalias").read_text().strip() == alias:
                    out.append(link.name)
            except OSError:
                continue
        return out

    assert ours()  # the project's bridge and veths
    engine.cli("down", "-t", "1")
    assert ours() == []


def test_two_concurrent_ups_of_one_project_are_serialised(engine: Engine) -> None:
    import subprocess
    import sys

    engine.compose("services:\n" + "".join(
        f"  s{i}:\n    image: busybox\n    command: [sleep, '1000']\n    network_mode: none\n"
        for i in range(5)))
    procs = [subprocess.Popen([sys.executable, "-m", "pycompose", "--progress", "plain", "up",
                               "-d"], cwd=engine.workdir, env=engine.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    created = sum(err.count("Created") for _, err in outs)
    assert created == 5  # one of them created everything, the other found it up to date
    assert sorted(c["Name"] for c in engine.ps()) == [f"project-s{i}-1" for i in range(5)]


def test_recreate_keeps_anonymous_volumes_and_scale_changes_replicas(engine: Engine) -> None:
    base = """
services:
  app:
    image: busybox
    command: ["sh", "-c", "test -f /cache/seen && echo again
              || (touch /cache/seen; echo first); exec sleep 1000"]
    volumes: ["/cache"]
    environment: {V: "%s"}
"""
    engine.compose(base % "1")
    engine.cli("up", "-d")
    engine.compose(base % "2")
    engine.cli("up", "-d")
    logs = engine.cli("logs", "--no-log-prefix", "app").stdout.split()
    assert logs == ["again"]  # the new container found the old one's anonymous volume
    engine.cli("up", "-d", "--scale", "app=3")
    names = sorted(c["Name"] for c in engine.ps())
    assert names == ["project-app-1", "project-app-2", "project-app-3"]
    got = engine.cli("exec", "--index", "2", "app", "nslookup", "app").stdout
    assert got.count("Address:") >= 4  # the server line, then one A record per replica
    engine.cli("up", "-d", "--scale", "app=1")
    assert [c["Name"] for c in engine.ps()] == ["project-app-1"]


def test_anonymous_volume_nobody_took_over_is_removed_at_engine_start(engine: Engine) -> None:
    """A recreate hands the old container's anonymous volume to the new one; if the engine
    dies between the two (the state `rm` without -v leaves too), the next engine removes
    the volume nobody took over instead of leaking it."""
    base = """
services:
  app:
    image: busybox
    command: ["sleep", "1000"]
    volumes: ["/cache"]
    environment: {V: "%s"}
"""
    volumes = engine.root / "volumes"
    engine.compose(base % "1")
    engine.cli("up", "-d")
    (vol,) = [p.name for p in volumes.iterdir()]
    engine.compose(base % "2")
    engine.cli("up", "-d")  # recreated: same volume, now the new container's
    assert [p.name for p in volumes.iterdir()] == [vol]
    os.kill(engine.pid, signal.SIGKILL)
    wait_gone(engine.pid)
    engine.start()  # the running container's volume is not touched
    assert [p.name for p in volumes.iterdir()] == [vol]
    engine.cli("rm", "-s", "-f", "app")  # removed, its volume handed over to nobody yet
    assert [p.name for p in volumes.iterdir()] == [vol]
    os.kill(engine.pid, signal.SIGKILL)
    wait_gone(engine.pid)
    engine.start()
    assert list(volumes.iterdir()) == []


def test_secrets_configs_hooks_cp_and_stats(engine: Engine) -> None:
    (engine.workdir / "pw.txt").write_text("s3cret\n")
    engine.compose("""
services:
  app:
    image: busybox
    command: ["sleep", "1000"]
    secrets: [pw]
    configs:
      - source: conf
        target: /etc/app.conf
        mode: 0400
    post_start:
      - command: ["sh", "-c", "echo started > /tmp/hooked"]
secrets:
  pw: {file: ./pw.txt}
configs:
  conf: {content: "level=debug"}
""")
    engine.cli("up", "-d")
    out = engine.cli("exec", "app", "sh", "-c",
                     "cat /run/secrets/pw /etc/app.conf; echo; stat -c %a /etc/app.conf; "
                     "cat /tmp/hooked; touch /run/secrets/pw 2>/dev/null || echo read-only"
                     ).stdout
    assert out.split("\n") == ["s3cret", "level=debug", "400", "started", "read-only", ""]
    dest = engine.workdir / "copied"
    dest.mkdir()
    engine.cli("cp", "app:/etc/app.conf", str(dest))
    assert (dest / "app.conf").read_text() == "level=debug"
    (dest / "in.txt").write_text("to the container")
    engine.cli("cp", str(dest / "in.txt"), "app:/tmp/in.txt")
    assert engine.cli("exec", "app", "cat", "/tmp/in.txt").stdout == "to the container"
    stats = json.loads(engine.cli("stats", "--format", "json").stdout.splitlines()[0])
    assert stats["Name"] == "project-app-1"
    assert int(stats["PIDs"]) >= 1


def test_post_start_hooks_run_again_when_a_restart_policy_restarts(engine: Engine) -> None:
    (engine.workdir / "shared").mkdir()
    engine.compose("""
services:
  app:
    image: busybox
    command: ["sh", "-c", "if [ -f /shared/ran ]; then exec sleep 1000; fi;
              touch /shared/ran; sleep 1; exit 3"]
    volumes: ["./shared:/shared"]
    restart: on-failure
    post_start:
      - command: ["sh", "-c", "echo hook >> /shared/hooks"]
""")
    engine.cli("up", "-d")
    hooks = engine.workdir / "shared" / "hooks"
    deadline = time.monotonic() + 60
    with engine.api() as api:
        while api.get("/containers/project-app-1/json")["RestartCount"] < 1 or \
                len(hooks.read_text().split()) < 2:
            assert time.monotonic() < deadline, "no restart with its hook"
            time.sleep(0.1)
    assert hooks.read_text().split() == ["hook", "hook"]  # the first start's, the restart's
    assert engine.ps()[0]["State"] == "running"


def test_up_builds_a_missing_image_first(engine: Engine) -> None:
    (engine.workdir / "Dockerfile").write_text(
        'FROM busybox\nRUN echo built > /msg\nCMD ["sh", "-c", "cat /msg; exec sleep 1000"]\n')
    engine.compose("services:\n  app:\n    build: .\n")
    engine.cli("up", "-d")
    [c] = engine.ps()
    assert c["Image"] == "project-app"
    assert engine.cli("logs", "--no-log-prefix", "app").stdout == "built\n"
    assert "leave running — unchanged" in engine.cli("up", "--dry-run").stdout
    (engine.workdir / "Dockerfile").write_text(
        'FROM busybox\nRUN echo rebuilt > /msg\nCMD ["sh", "-c", "cat /msg; exec sleep 1000"]\n')
    engine.cli("up", "-d", "--build")  # same config, new image: recreated
    [again] = engine.ps()
    assert again["ID"] != c["ID"]
    assert engine.cli("logs", "--no-log-prefix", "app").stdout == "rebuilt\n"


def test_a_busy_host_port_is_a_clear_error_and_starts_nothing(engine: Engine) -> None:
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        engine.compose(f"""
services:
  other:
    image: busybox
    command: ["sleep", "1000"]
  web:
    image: busybox
    command: ["httpd", "-f", "-p", "80"]
    ports: ["127.0.0.1:{port}:80"]
""")
        res = engine.cli("up", "-d", check=False)
    finally:
        holder.close()
    assert res.returncode != 0
    assert f"host port 127.0.0.1:{port}/tcp of service web is already in use by pid " \
           f"{os.getpid()}" in res.stderr
    assert engine.ps() == []


def test_wait_timeout_names_the_service_that_is_not_ready(engine: Engine) -> None:
    engine.compose("""
services:
  seed:
    image: busybox
    command: ["sh", "-c", "echo seeded"]
  slow:
    image: busybox
    command: ["sleep", "1000"]
    healthcheck: {test: ["CMD", "false"], interval: 30s, start_interval: 200ms}
""")
    res = engine.cli("up", "-d", "--wait", "--wait-timeout", "2", check=False)
    assert res.returncode != 0
    assert "timed out after 2" in res.stderr
    assert "service slow failed: not ready when --wait-timeout expired" in res.stderr
    assert "service seed" not in res.stderr  # a one-shot that exited 0 is ready


def test_losing_the_supervisor_restarts_the_engine_which_adopts(engine: Engine) -> None:
    engine.compose("services:\n  app:\n    image: busybox\n    command: [sleep, '1000']\n")
    engine.cli("up", "-d")
    [before] = engine.ps()
    sup = supervisor_pid(engine.root)
    assert sup is not None
    os.kill(sup, signal.SIGKILL)
    wait_gone(engine.pid)  # the engine notices and stops
    engine.start()
    [after] = engine.ps()
    assert (after["ID"], after["State"]) == (before["ID"], "running")
    assert engine.cli("exec", "app", "echo", "still here").stdout == "still here\n"


def test_exits_while_the_engine_is_down_are_recorded_and_policies_applied(
        engine: Engine) -> None:
    engine.compose("""
services:
  once:
    image: busybox
    command: ["sh", "-c", "sleep 1; exit 4"]
  again:
    image: busybox
    command: ["sh", "-c", "sleep 1; exit 5"]
    restart: always
""")
    engine.cli("up", "-d")
    ids = [c["ID"] for c in engine.ps()]
    with engine.api() as api:
        ids = [api.get(f"/containers/{i}/json")["Id"] for i in ids]
    os.kill(engine.pid, signal.SIGKILL)
    wait_gone(engine.pid)

    async def both_exit() -> None:  # ask the runtime itself: both exit meanwhile
        import trio

        from pycompose.runtime.client import open_runtime

        async with open_runtime(engine.root, engine.env["PYCOMPOSE_INSTANCE"],
                                autostart=False) as rt:
            with trio.fail_after(30):
                for cid in ids:
                    await rt.wait(cid)

    import trio

    trio.run(both_exit)
    engine.start()
    states = {c["Service"]: c for c in engine.ps()}
    assert states["once"]["State"] == "exited"
    assert states["once"]["ExitCode"] == 4
    # The new engine restarts it as `always` says, after the policy's back-off: wait for it
    # (bounded) instead of reading the count at once.
    deadline = time.monotonic() + 20
    with engine.api() as api:
        while True:
            again = api.get("/containers/project-again-1/json")
            if again["RestartCount"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert again["RestartCount"] >= 1


def test_run_with_a_bind_mount_and_a_published_port(engine: Engine) -> None:
    engine.compose("services:\n  tool:\n    image: busybox\n")
    (engine.workdir / "data").mkdir()
    (engine.workdir / "data" / "in.txt").write_text("from the host\n")
    res = engine.cli("run", "--rm", "-v", "./data:/data:ro", "tool", "sh", "-c",
                     "cat /data/in.txt; touch /data/x 2>/dev/null || echo read-only")
    assert res.stdout == "from the host\nread-only\n"
    bad = engine.cli("run", "--rm", "-p", "abc", "tool", "true", check=False)
    assert bad.returncode != 0
    assert "run -p 'abc': container port must be a number" in bad.stderr


def _on_a_terminal(engine: Engine, *args: str) -> tuple[int, bytes]:
    """Run the CLI with a pseudo-terminal as its stdin/stdout/stderr, as a person would."""
    import pty
    import select
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pycompose", "--progress", "quiet", *args],
                            cwd=engine.workdir, env=engine.env, stdin=slave, stdout=slave,
                            stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave end is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=30), out


def test_exec_and_run_get_a_tty_on_a_terminal(engine: Engine) -> None:
    engine.compose("services:\n  app:\n    image: busybox\n    command: [sleep, '1000']\n")
    engine.cli("up", "-d")
    code, out = _on_a_terminal(engine, "exec", "app", "sh", "-c", "tty; exit 6")
    assert code == 6
    assert b"/dev/pts/" in out
    code, out = _on_a_terminal(engine, "run", "--rm", "app", "sh", "-c", "tty; exit 5")
    assert code == 5, out
    assert b"/dev/pts/" in out or b"/dev/console" in out
    code, out = _on_a_terminal(engine, "exec", "-T", "app", "tty")
    assert code == 1  # `tty` says "not a tty" and fails
    assert b"not a tty" in out


def test_attached_up_prints_the_chosen_services_and_exits_with_the_one_named(
        engine: Engine) -> None:
    engine.compose("""
services:
  base:
    image: busybox
    command: ["sh", "-c", "echo base-line; sleep 1000"]
  app:
    image: busybox
    command: ["sh", "-c", "echo app-line; sleep 0.5; exit 4"]
    depends_on: [base]
  side:
    image: busybox
    command: ["sh", "-c", "echo side-line; sleep 1000"]
""")
    # Attached (no -d): every service's output, until one exits; its code is ours.
    up = engine.cli("up", "--exit-code-from", "app", "--no-attach", "side", check=False,
                    timeout=60)
    assert up.returncode == 4, up.stderr
    assert "app-line" in up.stdout
    assert "base-line" in up.stdout
    assert "side-line" not in up.stdout  # --no-attach
    assert "Attaching to" in up.stderr
    assert "side" not in up.stderr.split("Attaching to", 1)[1].splitlines()[0]
    engine.cli("down", "-t", "0")
    # `up app`: app only (its dependency starts, but is not attached) ...
    up = engine.cli("up", "app", "--abort-on-container-exit", check=False, timeout=60)
    assert up.returncode == 4, up.stderr
    assert "app-line" in up.stdout
    assert "base-line" not in up.stdout
    engine.cli("down", "-t", "0")
    # ... unless --attach-dependencies
    up = engine.cli("up", "app", "--abort-on-container-exit", "--attach-dependencies",
                    check=False, timeout=60)
    assert up.returncode == 4, up.stderr
    assert "base-line" in up.stdout
    bad = engine.cli("up", "-d", "--attach", "app", check=False)
    assert bad.returncode != 0
    assert "need the attached mode" in bad.stderr
    bad = engine.cli("up", "--attach", "nosuch", check=False)
    assert "no such service: nosuch" in bad.stderr
