"""Images: pulling a multi-layer image from a local registry, and a no-change rebuild.

* ``pull_s``: ``pycompose image pull`` of a 4-layer image (busybox plus three
  layers of 16 MiB of incompressible data) from Debian's ``docker-registry`` on
  127.0.0.1 into an empty state root (download, verify, unpack into the store),
  side by side with ``skopeo copy`` of the same image to an OCI directory
  (download and verify only). Target: pycompose at most 1x skopeo.
  The pull runs in pycompose's engine (as ``docker pull`` in dockerd): the engine
  on its own state root is started in the group setup, outside the samples, and
  stopped at exit; each sample empties its image store first (untimed).
* ``pull_peak_rss_mib``: the peak resident memory of each of those commands (GNU
  time); for pycompose the CLI's peak plus the engine's peak during that pull
  (``VmHWM``, reset before each sample through ``/proc/PID/clear_refs``).
* ``pull_rtt20_s``: the same pull from the same registry 20 ms of round trip away
  (a registry in the same region), through a proxy on 127.0.0.1 that delays each
  byte 10 ms each way (``_latency.py``; these kernels have no netem). No target:
  it shows what the loopback figure hides, the round trips a pull waits for.
* ``rebuild_nochange_s``: ``pycompose build`` of a project whose image was just
  built (FROM busybox, COPY, RUN): every step is a cache hit. Target: < 1 s.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures._supervisor import stop_supervisor
from benchmarks.harness import Context, Figure, Group, MeasureError, Target, Tool, program

REPO = Path(__file__).resolve().parents[2]
LAYER_MIB = 16
IMAGE = "bench/multi:1"


def _pycompose_available(ctx: Context) -> str | None:
    if program("pycompose") is None:
        return "pycompose is not installed"
    if not os.path.exists("/usr/bin/docker-registry"):
        return "docker-registry is not installed (Debian package docker-registry)"
    return None


def _skopeo_available(ctx: Context) -> str | None:
    if program("skopeo") is None:
        return "skopeo is not installed (Debian package skopeo)"
    if not os.path.exists("/usr/bin/docker-registry"):
        return "docker-registry is not installed (Debian package docker-registry)"
    return None


def _builder_available(ctx: Context) -> str | None:
    if program("pycompose") is None:
        return "pycompose is not installed"
    if os.geteuid() != 0:
        return "needs root (RUN steps run in containers)"
    return None


TOOLS = [
    Tool("pycompose", _pycompose_available),
    Tool("skopeo", _skopeo_available),
    Tool("pycompose-build", _builder_available),
]


def _run_child(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one run; raises MeasureError when it fails.

    The peak comes from GNU time (``%M``): the rusage of a child forked from this
    Python process would count the pages it shared with it before exec.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapper = ["/usr/bin/time", "-f", "%M", "-o", rss.name] \
            if os.path.exists("/usr/bin/time") else []
        start = time.perf_counter()
        proc = subprocess.run([*wrapper, *argv], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise MeasureError(f"{argv[0]} exited {proc.returncode}: "
                               f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
        text = rss.read().strip().splitlines()
    peak = float(text[-1]) / 1024 if wrapper and text and text[-1].isdigit() else float("nan")
    return elapsed, peak


def setup(ctx: Context) -> None:
    sys.path.insert(0, str(REPO))
    import trio

    from pycompose.runtime.bootstrap import bootstrap_busybox
    from pycompose.runtime.images import ImageStore
    from pycompose.runtime.registry import push_image
    from tests.helpers.registry import RegistryServer, free_port

    # Outside the harness's workdir, which is gone by the time atexit runs the teardown.
    base = Path(tempfile.mkdtemp(prefix="pycompose-img-"))
    started: dict[str, int] = {}  # what stop() must end: engine PID

    def stop() -> None:
        if proxy is not None:
            proxy.kill()
            proxy.wait()
        registry.kill()
        engine_pid = started.get("engine")
        if engine_pid is not None and engine_pid > 0:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(engine_pid, signal.SIGTERM)
                os.waitpid(engine_pid, 0)
            stop_supervisor(pull_root, pull_instance)
        stop_supervisor(build_root, instance)
        shutil.rmtree(base, ignore_errors=True)

    # Registered before anything starts: a setup that fails half-way leaves nothing behind.
    registry = RegistryServer(base / "registry")
    proxy: subprocess.Popen[str] | None = None
    build_root = base / "build-root"
    instance = "i" + secrets.token_hex(2)
    pull_root = base / "pull-root"
    pull_instance = "p" + secrets.token_hex(2)
    atexit.register(stop)
    registry.start()
    src_root = base / "src"
    store = ImageStore(src_root / "images")
    image = bootstrap_busybox(store)
    for n in range(3):
        diff = base / f"diff{n}"
        (diff / "data").mkdir(parents=True)
        with open(diff / "data" / f"blob{n}.bin", "wb") as f:
            for _ in range(LAYER_MIB):
                f.write(os.urandom(1 << 20))
        image = store.commit(diff, parent=image, ref=None)
    ref = f"{registry.host}/{IMAGE}"
    store.tag(image.id, ref)
    trio.run(lambda: push_image(store, ref, work_dir=src_root / "downloads"))
    ctx.state["img_ref"] = ref
    ctx.state["img_base"] = base
    far = free_port()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.figures._latency", str(far), registry.host, "10"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proxy.stdout is not None
    if proxy.stdout.readline().strip() != "ready":
        raise MeasureError("the latency proxy did not start")
    ctx.state["img_ref_far"] = f"127.0.0.1:{far}/{IMAGE}"

    # The rebuild project: its own state root with busybox, built once.
    bootstrap_busybox(ImageStore(build_root / "images"))
    proj = base / "proj"
    proj.mkdir()
    (proj / "app.txt").write_text("app\n")
    (proj / "Dockerfile").write_text(
        "FROM busybox\nWORKDIR /app\nCOPY app.txt .\nRUN echo built > /app/built\n"
        'CMD ["cat", "/app/built"]\n')
    (proj / "compose.yaml").write_text("services:\n  app:\n    build: .\n")
    ctx.state["build_env"] = dict(ctx.env, PYCOMPOSE_ROOT=str(build_root),
                                  PYCOMPOSE_INSTANCE=instance)
    ctx.state["build_proj"] = proj
    if os.geteuid() == 0:
        exe = program("pycompose")
        if exe is not None:
            subprocess.run([exe, "build", "-q"], cwd=proj, env=ctx.state["build_env"],
                           check=False, capture_output=True, timeout=600)

    # The engine pulls run in: on its own state root, up before any sample.
    pull_env = dict(ctx.env, PYCOMPOSE_ROOT=str(pull_root), PYCOMPOSE_INSTANCE=pull_instance)
    ctx.state["pull_env"] = pull_env
    if program("pycompose") is not None and os.geteuid() == 0:
        from pycompose.client import start_engine
        from pycompose.paths import host_paths

        started["engine"] = ctx.state["pull_engine_pid"] = start_engine(host_paths(pull_env))


def _fresh(ctx: Context, name: str) -> Path:
    path = Path(ctx.state["img_base"]) / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def _engine_hwm_reset(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS (VmHWM)


def _engine_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pull_pycompose(ctx: Context, ref_key: str = "img_ref") -> tuple[float, float]:
    """(seconds, MiB): the CLI's time; the CLI's peak plus the engine's peak meanwhile."""
    pid = ctx.state.get("pull_engine_pid")
    if not pid or pid < 0:
        raise MeasureError("the engine for the pull did not start (needs root)")
    env = ctx.state["pull_env"]
    root = Path(env["PYCOMPOSE_ROOT"])
    # An empty store (and no partial downloads) for every sample; the engine opens the
    # store per pull.
    for part in ("images", "downloads"):
        shutil.rmtree(root / part, ignore_errors=True)
    exe = program("pycompose")
    assert exe is not None
    _engine_hwm_reset(pid)
    seconds, cli_peak = _run_child(
        [exe, "--progress", "quiet", "image", "pull", "-q", ctx.state[ref_key]],
        env, Path(ctx.state["img_base"]))
    return seconds, cli_peak + _engine_hwm_mib(pid)


def _pull_skopeo(ctx: Context, ref_key: str = "img_ref") -> tuple[float, float]:
    out = _fresh(ctx, "skopeo-oci")
    exe = program("skopeo")
    assert exe is not None
    return _run_child([exe, "copy", "--quiet", "--src-tls-verify=false",
                       f"docker://{ctx.state[ref_key]}", f"oci:{out}:latest"],
                      ctx.env, Path(ctx.state["img_base"]))


def _verify_pull(ctx: Context, tool: str) -> str | None:
    try:
        if tool == "pycompose":
            _pull_pycompose(ctx)
            from pycompose.runtime.images import ImageStore

            image = ImageStore(Path(ctx.state["img_base"]) / "pull-root" / "images").get(
                ctx.state["img_ref"])
            if len(image.layers) != 4:
                return f"pulled {len(image.layers)} layers, expected 4"
        else:
            _pull_skopeo(ctx)
            if not (Path(ctx.state["img_base"]) / "skopeo-oci" / "index.json").is_file():
                return "no OCI layout written"
    except MeasureError as exc:
        return str(exc)
    return None


def _rebuild(ctx: Context) -> float:
    exe = program("pycompose")
    assert exe is not None
    seconds, _ = _run_child([exe, "build", "-q"], ctx.state["build_env"],
                            ctx.state["build_proj"])
    return seconds


def _verify_rebuild(ctx: Context, tool: str) -> str | None:
    exe = program("pycompose")
    assert exe is not None
    proc = subprocess.run([exe, "build"], cwd=ctx.state["build_proj"],
                          env=ctx.state["build_env"], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        return proc.stderr.strip()[-500:]
    if proc.stdout.count("CACHED") < 3:
        return "a step was not cached on a rebuild with nothing changed"
    return None


FIGURES = [
    Figure("pull_s", "s",
           f"pull a 4-layer image ({3 * LAYER_MIB} MiB) from a local registry",
           {"pycompose": lambda c: _pull_pycompose(c)[0],
            "skopeo": lambda c: _pull_skopeo(c)[0]},
           baseline="skopeo", target=Target("pycompose", ratio=1.0), verify=_verify_pull),
    Figure("pull_peak_rss_mib", "MiB", "peak resident memory of that pull",
           {"pycompose": lambda c: _pull_pycompose(c)[1],
            "skopeo": lambda c: _pull_skopeo(c)[1]},
           baseline="skopeo"),
    Figure("pull_rtt20_s", "s", "the same pull from a registry 20 ms (round trip) away",
           {"pycompose": lambda c: _pull_pycompose(c, "img_ref_far")[0],
            "skopeo": lambda c: _pull_skopeo(c, "img_ref_far")[0]},
           baseline="skopeo"),
    Figure("rebuild_nochange_s", "s", "pycompose build with every step cached",
           {"pycompose-build": _rebuild}, target=Target("pycompose-build", value=1.0),
           verify=_verify_rebuild),
]

GROUP = Group("images", TOOLS, FIGURES, setup=setup)
