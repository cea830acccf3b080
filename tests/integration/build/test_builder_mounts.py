"""RUN --mount in real builds: cache mounts that persist (and their sharing modes), bind
mounts of the context, a stage and an image (read-only, or writable with the writes
discarded), tmpfs, and that none of them leaves anything in the layer."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from pathlib import Path

import pytest
import trio

from pycompose.runtime.build import Builder, BuildOptions, BuildStepError, DockerfileError
from pycompose.runtime.client import Runtime
from pycompose.runtime.images import ImageStore
from tests.helpers.builds import run_in

pytestmark = pytest.mark.root


def output(lines: list[str]) -> str:
    """What RUN steps printed (``#N 0.123 text``), without the step headers."""
    return "\n".join(line.split(" ", 2)[2] for line in lines
                     if re.match(r"^#\d+ \d+\.\d{3} ", line))


def cache_dir(state_root: Path, cache_id: str, instance: int = 0) -> Path:
    name = hashlib.sha256(cache_id.encode()).hexdigest()[:32]
    return state_root / "build-mounts" / "cache" / (name if not instance else
                                                    f"{name}-{instance}")


async def test_cache_and_tmpfs_mounts(rt: Runtime, store: ImageStore, state_root: Path,
                                      tmp_path: Path, instance: str) -> None:
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    dockerfile = (
        "FROM busybox\n"
        "ARG CACHE=c1\n"
        "RUN --mount=type=cache,target=/etc/cache-x,id=$CACHE \\\n"
        "    --mount=type=tmpfs,target=/var/deep/scratch,size=1m \\\n"
        "    --mount=type=cache,target=owned,id=c2,mode=0700,uid=1000,gid=1001 \\\n"
        "    --mount=type=cache,target=/ro,id=c1,ro \\\n"
        "    echo run >> /etc/cache-x/log && echo \"log: $(cat /etc/cache-x/log | wc -l)\" && \\\n"
        "    echo tmp > /var/deep/scratch/f && grep ' /var/deep/scratch ' /proc/mounts && \\\n"
        "    df -k /var/deep/scratch | tail -1 && stat -c 'owned %a %u %g' /owned && \\\n"
        "    (touch /ro/x 2>/dev/null && echo ro-writable || echo ro-refused)\n")
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    out = output(lines)
    assert "log: 1" in out
    assert "tmpfs" in out
    assert " 1024 " in out  # size=1m
    assert "owned 700 1000 1001" in out  # mode, uid, gid of a new cache; target below /
    assert "ro-refused" in out
    assert (cache_dir(state_root, "c1") / "log").read_text() == "run\n"
    # Only the mounts were written to: no layer at all (no mount points, no copied-up
    # /etc or /var/deep).
    assert image.config.diff_ids == store.get("busybox").config.diff_ids
    assert "absent" in await run_in(rt, image, "sh", "-c",
                                    "test -e /etc/cache-x || test -e /var/deep || "
                                    "test -e /owned || test -e /ro || echo absent")

    # The same step again: a cache hit (the key holds the options, not the cache content).
    lines.clear()
    again = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    assert again.id == image.id
    assert any(line.endswith("CACHED") for line in lines)
    assert output(lines) == ""
    # Without the cache the step runs again and finds what the first run left.
    lines.clear()
    await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile,
                                     no_cache=True))
    assert "log: 2" in output(lines)
    # Other mount options are another step: it runs (a new cache id, a new directory).
    lines.clear()
    await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile,
                                     build_args={"CACHE": "c3"}))
    assert "log: 1" in output(lines)
    assert (cache_dir(state_root, "c3") / "log").read_text() == "run\n"
    assert (cache_dir(state_root, "c1") / "log").read_text() == "run\nrun\n"


async def test_a_new_cache_starts_from_a_stage(rt: Runtime, store: ImageStore,
                                               state_root: Path, tmp_path: Path,
                                               instance: str) -> None:
    """``type=cache,from=stage,source=dir``: a new cache is a copy of the stage's dir
    (owners and modes kept); an existing cache keeps what it has, as BuildKit."""
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)

    def dockerfile(seed: str) -> str:
        return (f"FROM busybox AS seed\nRUN mkdir -p /deps/sub && echo {seed} > /deps/sub/f "
                "&& chown 1000:1000 /deps/sub/f && chmod 640 /deps/sub/f\n"
                "FROM busybox\n"
                "RUN --mount=type=cache,target=/c,id=seeded,from=seed,source=/deps \\\n"
                "    echo \"seen $(cat /c/sub/f) $(stat -c '%u %a' /c/sub/f)\" && "
                "echo more > /c/added\n")

    await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile("one")))
    assert "seen one 1000 640" in output(lines)
    assert (cache_dir(state_root, "seeded") / "added").read_text() == "more\n"
    # Another seed: the step runs again (its from changed), the cache is kept as it is.
    lines.clear()
    await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile("two")))
    assert "seen one 1000 640" in output(lines)
    with pytest.raises(DockerfileError, match=r":2: RUN --mount type=cache,from=busybox,"
                                              r"source=/nope: not a directory in busybox"):
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox\nRUN --mount=type=cache,target=/c,id=other,from=busybox,"
            "source=/nope true\n")))
    assert not cache_dir(state_root, "other").exists()
    assert [p.name for p in cache_dir(state_root, "x").parent.iterdir()
            if p.name.startswith(".")] == []  # no half-made cache or view left


async def test_locked_and_private_sharing(rt: Runtime, store: ImageStore, state_root: Path,
                                          tmp_path: Path, instance: str) -> None:
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    base = cache_dir(state_root, "shared-id")
    base.parent.mkdir(parents=True)
    # Another holder of the cache: a locked mount waits for it, a private one takes a
    # second instance.
    fd = os.open(f"{base}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox\n"
            "RUN --mount=type=cache,target=/c,id=shared-id,sharing=private echo p > /c/f\n")))
        assert (cache_dir(state_root, "shared-id", 1) / "f").read_text() == "p\n"
        assert not (base / "f").exists()

        waiting = trio.Event()

        def log(line: str) -> None:
            lines.append(line)
            if "waiting for the cache mount 'shared-id'" in line:
                waiting.set()

        locked = Builder(store, state_root, instance=instance, log=log)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: locked.build(BuildOptions(
                context=tmp_path, dockerfile_inline=(
                    "FROM busybox\nRUN --mount=type=cache,target=/c,id=shared-id,"
                    "sharing=locked echo l > /c/f\n"))))
            with trio.fail_after(60):
                await waiting.wait()
            assert not (base / "f").exists()  # still waiting
            fcntl.flock(fd, fcntl.LOCK_UN)
        assert (base / "f").read_text() == "l\n"
    finally:
        os.close(fd)


async def test_bind_mounts(rt: Runtime, store: ImageStore, state_root: Path, tmp_path: Path,
                           instance: str) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "data" / "a.txt").write_text("A\n")
    (ctx / "data" / "secret").write_text("hidden\n")
    (ctx / "top.txt").write_text("top\n")
    (ctx / ".dockerignore").write_text("data/secret\n")
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    dockerfile = (
        "FROM busybox AS stage\n"
        "RUN mkdir /made && echo from-stage > /made/s.txt\n"
        "FROM busybox\n"
        "RUN --mount=target=/ctx cat /ctx/data/a.txt /ctx/top.txt > /out-ctx && \\\n"
        "    (touch /ctx/new 2>/dev/null && echo ctx-writable || echo ctx-ro) >> /out-ctx\n"
        "RUN --mount=type=bind,source=data,target=/d,rw \\\n"
        "    echo changed > /d/a.txt && cat /d/a.txt > /out-rw && ls /d > /out-ls\n"
        "RUN --mount=type=bind,from=stage,source=/made,target=/m \\\n"
        "    --mount=type=bind,from=stage,source=/made/s.txt,target=/srv/one.txt,rw \\\n"
        "    cat /m/s.txt > /out-stage && echo overwritten > /srv/one.txt && \\\n"
        "    (touch /m/x 2>/dev/null && echo stage-writable || echo stage-ro) >> /out-stage\n"
        "RUN --mount=type=bind,from=stage,source=/made,target=/m2 cat /m2/s.txt >> /out-stage\n"
        "RUN --mount=type=bind,from=busybox,source=/bin/busybox,target=/opt/bin/busybox \\\n"
        "    /opt/bin/busybox echo image-ok > /out-image\n")
    image = await builder.build(BuildOptions(context=ctx, dockerfile_inline=dockerfile))
    seen = await run_in(rt, image, "sh", "-c",
                        "cat /out-ctx /out-rw /out-ls /out-stage /out-image; ls /; "
                        "test -e /srv || test -e /opt || echo no-mountpoints")
    assert "A\ntop\nctx-ro\n" in seen
    assert "changed\n" in seen  # the rw bind was writable ...
    assert "a.txt\n" in seen
    assert "secret" not in seen  # .dockerignore holds for bind mounts too
    assert "from-stage\nstage-ro\nfrom-stage\n" in seen  # the rw bind wrote nothing back
    assert "image-ok\n" in seen
    for target in ("ctx", "d", "m", "m2"):
        assert f"\n{target}\n" not in seen  # no mount point left in the image
    assert seen.endswith("no-mountpoints\n")
    # ... and its writes were discarded: the context is unchanged.
    assert (ctx / "data" / "a.txt").read_text() == "A\n"
    assert not (ctx / "new").exists()

    # Nothing changed: every step cached. A changed bound file: the steps binding it run.
    lines.clear()
    again = await builder.build(BuildOptions(context=ctx, dockerfile_inline=dockerfile))
    assert again.id == image.id
    assert sum(line.endswith("CACHED") for line in lines) == 6
    (ctx / "data" / "a.txt").write_text("A2\n")
    lines.clear()
    await builder.build(BuildOptions(context=ctx, dockerfile_inline=dockerfile))
    ran = [line for line in lines if " DONE " in line]
    assert len(ran) == 5, lines  # both context binds, then the steps after them
    (ctx / "data" / "secret").write_text("ignored anyway\n")
    lines.clear()
    await builder.build(BuildOptions(context=ctx, dockerfile_inline=dockerfile))
    assert sum(line.endswith("CACHED") for line in lines) == 6


async def test_rw_bind_of_the_context_writes_nothing_back(
        rt: Runtime, store: ImageStore, state_root: Path, tmp_path: Path,
        instance: str) -> None:
    # No .dockerignore: the context itself is bound (read-only), or an overlay over it (rw).
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_text("f\n")
    (tmp_path / "file.txt").write_text("file\n")
    builder = Builder(store, state_root, instance=instance)
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
        "FROM busybox\n"
        "WORKDIR /work\n"
        "RUN --mount=type=bind,target=ctx,rw --mount=type=bind,source=file.txt,target=/f,rw \\\n"
        "    echo new > ctx/new && rm ctx/sub/f && echo changed > /f && \\\n"
        "    ls ctx ctx/sub > /out && cat /f >> /out\n")))
    seen = await run_in(rt, image, "sh", "-c", "cat /out; ls /work; test -e /f || echo no-f")
    assert "new\n" in seen
    assert "changed\nno-f\n" in seen
    assert seen.split("ctx/sub:")[1].startswith("\nchanged\n")  # sub/f deleted inside
    assert (tmp_path / "sub" / "f").read_text() == "f\n"
    assert (tmp_path / "file.txt").read_text() == "file\n"
    assert not (tmp_path / "new").exists()


async def test_mount_errors_name_the_line(rt: Runtime, store: ImageStore, state_root: Path,
                                          tmp_path: Path, instance: str) -> None:
    builder = Builder(store, state_root, instance=instance)
    (tmp_path / "f").write_text("x")
    cases = (
        ("RUN --mount=type=ssh,required true",
         r":3: RUN --mount=type=ssh,id=default: the build was not given an SSH agent"),
        ("RUN --mount=type=bind,source=nope,target=/n true",
         r":3: RUN --mount: 'nope' not found in the build context"),
        ("RUN --mount=type=bind,source=../x,target=/n true", r":3: .*outside the build"),
        ("RUN --mount=type=bind,from=later,target=/n true",
         r":3: RUN --mount from=later: stage 'later' is not an earlier stage"),
        ("RUN --mount=type=bind,from=first,source=/nope,target=/n true",
         r":3: RUN --mount source=/nope: not found in first"),
        ("RUN --mount=type=cache,target=/c,sharing=sometimes true",
         r":3: RUN --mount=.*sharing must be shared, private or locked"),
    )
    for line, message in cases:
        with pytest.raises(DockerfileError, match=message):
            await builder.build(BuildOptions(context=tmp_path, target="second",
                                             dockerfile_inline=(
                f"FROM busybox AS first\nFROM busybox AS second\n{line}\n"
                "FROM busybox AS later\n")))
    # A RUN that fails with views mounted (a writable overlay of a stage, a read-only
    # one of an image): unmounted and removed all the same (the fixture checks mounts).
    with pytest.raises(BuildStepError, match=r":3: RUN .*exit code 4"):
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox AS first\nFROM busybox\n"
            "RUN --mount=from=first,target=/m,rw --mount=from=busybox,target=/b \\\n"
            "    --mount=type=cache,target=/c,sharing=locked touch /m/x && exit 4\n")))
    assert not any((d / "x").exists() for d in store.get("busybox").layer_dirs)
    assert not [p for p in os.listdir(state_root) if p.startswith("build-mounts-")]


async def test_secret_mounts(rt: Runtime, store: ImageStore, state_root: Path,
                             tmp_path: Path, instance: str) -> None:
    """A build secret is a read-only file for the RUN only: not in the layer, not in the
    cache key (another value is a cache hit, as BuildKit); a missing one is an error only
    when required."""
    dockerfile = (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=token \\\n"
        "    --mount=type=secret,id=api,target=/etc/api.key,mode=0440,uid=1000 \\\n"
        "    --mount=type=secret,id=absent \\\n"
        "    sh -c 'cat /run/secrets/token > /copy; stat -c \"%a %u\" /etc/api.key > /meta;"
        " test ! -e /run/secrets/absent; echo x > /run/secrets/token || echo read-only'\n")
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    image = await builder.build(BuildOptions(
        context=tmp_path, dockerfile_inline=dockerfile,
        secrets={"token": b"s3cr3t", "api": b"key"}))
    assert "read-only" in output(lines)
    assert await run_in(rt, image, "cat", "/copy", "/meta") == "s3cr3t440 1000\n"
    top = image.layer_dirs[-1]
    assert not (top / "run" / "secrets").exists()  # the mount points are not in the layer
    assert not (top / "etc" / "api.key").exists()
    lines.clear()
    again = await builder.build(BuildOptions(
        context=tmp_path, dockerfile_inline=dockerfile,
        secrets={"token": b"changed", "api": b"other"}))
    assert again.id == image.id
    assert sum(line.endswith("CACHED") for line in lines) == 1
    with pytest.raises(DockerfileError, match=r":2: RUN --mount=type=secret,id=must: the "
                                              r"build was not given a secret 'must'"):
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox\nRUN --mount=type=secret,id=must,required=true true\n")))
