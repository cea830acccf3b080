"""Real builds on the runtime from a busybox image: RUN, COPY with globs and .dockerignore,
a deletion in a later layer, multi-stage, the cache, and clear failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from pycompose.runtime.build import Builder, BuildOptions, BuildStepError, DockerfileError
from pycompose.runtime.client import Runtime
from pycompose.runtime.images import ImageStore
from pycompose.runtime.spec import EventKind
from tests.helpers.builds import run_in

pytestmark = pytest.mark.root

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE AS base
ARG GREETING=hello
ENV APP=/app \\
    MODE=test
WORKDIR $APP
COPY *.txt ./
COPY --chmod=0750 --chown=app:app tool.sh /usr/local/bin/tool
RUN echo "$GREETING from RUN in $MODE" > greeting && rm /etc/group && mkdir -p data
CMD ["cat", "greeting"]

FROM busybox
COPY --from=base /app/greeting /out/greeting
COPY a.txt /etc
WORKDIR /srv/empty
LABEL org.example.x="y z"
EXPOSE 8080
USER 1000
HEALTHCHECK --interval=5s --retries=2 CMD test -f /out/greeting
STOPSIGNAL SIGINT
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "a.txt").write_text("A\n")
    (ctx / "b.txt").write_text("B\n")
    (ctx / "secret.txt").write_text("do not copy\n")
    (ctx / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (ctx / ".dockerignore").write_text("secret.txt\n")
    return ctx


async def test_build_run_copy_multistage_and_cache(rt: Runtime, store: ImageStore,
                                                   state_root: Path, context: Path,
                                                   instance: str) -> None:
    # busybox has no user "app": give the base one in a first image.
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    (context / "Dockerfile.users").write_text(
        "FROM busybox\nRUN echo app:x:1000:1000::/home/app:/bin/sh >> /etc/passwd"
        " && echo app:x:1000: >> /etc/group\n")
    await builder.build(BuildOptions(context=context, dockerfile=Path("Dockerfile.users"),
                                     tags=("busybox:users",)))
    with trio.fail_after(120):
        image = await builder.build(BuildOptions(
            context=context, tags=("app:1", "app:alias"), target="base",
            build_args={"GREETING": "hi", "BASE": "busybox:users"}))
    out = "\n".join(lines)
    assert "#" in out
    assert "RUN echo" in out
    assert "DONE" in out
    cc = image.config.config
    assert cc.cmd == ("cat", "greeting")
    assert cc.working_dir == "/app"
    assert "MODE=test" in cc.env
    seen = await run_in(rt, image, "sh", "-c",
                        "cat /app/greeting; ls /app; ls -ln /usr/local/bin/tool; "
                        "test -e /etc/group && echo group-present || echo group-gone")
    assert "hi from RUN in test" in seen
    assert "a.txt" in seen
    assert "b.txt" in seen
    assert "secret.txt" not in seen  # .dockerignore
    assert "-rwxr-x---" in seen
    assert " 1000 " in seen  # --chown=app:app resolved in the image's /etc/passwd
    assert "group-gone" in seen  # deleted in a later layer: a whiteout
    assert store.get("app:alias").id == image.id

    # Rebuild with nothing changed: every step cached, same image.
    lines.clear()
    again = await builder.build(BuildOptions(
        context=context, tags=("app:1",), target="base",
        build_args={"GREETING": "hi", "BASE": "busybox:users"}))
    assert again.id == image.id
    steps = [line for line in lines if line.endswith("CACHED")]
    assert len(steps) == 6, lines
    # A changed source file: COPY and what follows run again.
    (context / "b.txt").write_text("B2\n")
    lines.clear()
    changed = await builder.build(BuildOptions(
        context=context, tags=("app:1",), target="base",
        build_args={"GREETING": "hi", "BASE": "busybox:users"}))
    assert changed.id != image.id
    assert sum(line.endswith("CACHED") for line in lines) == 2  # ENV, WORKDIR; COPY ran

    # The whole file: multi-stage.
    final = await builder.build(BuildOptions(context=context, tags=("app:final",),
                                             build_args={"BASE": "busybox:users"}))
    fc = final.config.config
    assert fc.labels["org.example.x"] == "y z"
    assert fc.exposed_ports == ("8080/tcp",)
    assert fc.user == "1000"
    assert fc.stop_signal == "SIGINT"
    assert fc.healthcheck is not None
    assert fc.healthcheck.test == ("CMD-SHELL", "test -f /out/greeting")
    assert fc.healthcheck.interval == 5_000_000_000
    assert "hello from RUN" in await run_in(rt, final, "cat", "/out/greeting")
    assert "A" in await run_in(rt, final, "cat", "/etc/a.txt")  # into the existing dir
    assert len(final.layers) == len(store.get("busybox").layers) + 3
    assert fc.working_dir == "/srv/empty"
    assert "made" in await run_in(rt, final, "sh", "-c", "test -d /srv/empty && echo made")


async def test_failures_name_the_line(rt: Runtime, store: ImageStore, state_root: Path,
                                      tmp_path: Path, instance: str) -> None:
    builder = Builder(store, state_root, instance=instance)
    with pytest.raises(BuildStepError, match=r"Dockerfile \(inline\):3: RUN .*exit code 3"):
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox\nRUN true\nRUN echo failing; exit 3\n")))
    with pytest.raises(DockerfileError, match=r":2: RUN --mount=type=ssh,id=default: the "
                                              r"build was not given an SSH agent"):
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox\nRUN --mount=type=ssh,required=true true\n")))
    with pytest.raises(DockerfileError, match=r":2: COPY: .missing.txt. not found"):
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox\nCOPY missing.txt /\n")))
    before = {p.name for p in (store.root / "layers").iterdir()}
    assert before  # busybox
    assert not [p for p in os.listdir(state_root) if p.startswith("build-copy-")]


async def test_onbuild_triggers_run_in_the_child_build_only(
        rt: Runtime, store: ImageStore, state_root: Path, tmp_path: Path,
        instance: str) -> None:
    lines: list[str] = []
    builder = Builder(store, state_root, instance=instance, log=lines.append)
    base_ctx = tmp_path / "base"
    base_ctx.mkdir()
    parent = await builder.build(BuildOptions(context=base_ctx, tags=("onbase:1",),
                                              dockerfile_inline=(
        "FROM busybox\n"
        "ONBUILD COPY app.txt /app/\n"
        "onbuild RUN echo built-by-trigger > /app/trigger\n"
        'ONBUILD LABEL from.trigger="yes"\n')))
    assert parent.config.config.on_build == (
        "COPY app.txt /app/", "RUN echo built-by-trigger > /app/trigger",
        'LABEL from.trigger="yes"')
    # the triggers did not run in the image that declares them
    assert not any("built-by-trigger" in line and "#" in line and " 0." in line
                   for line in lines)
    child_ctx = tmp_path / "child"
    child_ctx.mkdir()
    (child_ctx / "app.txt").write_text("from the child's context\n")
    lines.clear()
    child = await builder.build(BuildOptions(context=child_ctx, tags=("onchild:1",),
                                             dockerfile_inline="FROM onbase:1\nRUN true\n"))
    assert any("ONBUILD COPY app.txt /app/" in line for line in lines)
    assert child.config.config.on_build == ()  # not inherited further
    assert child.config.config.labels["from.trigger"] == "yes"
    out = await run_in(rt, child, "cat", "/app/app.txt", "/app/trigger")
    assert out == "from the child's context\nbuilt-by-trigger\n"

    for bad, message in (("ONBUILD ONBUILD RUN true", "ONBUILD ONBUILD is not allowed"),
                         ("ONBUILD FROM busybox", "ONBUILD FROM is not allowed"),
                         ("ONBUILD", "ONBUILD needs an instruction")):
        with pytest.raises(DockerfileError, match=rf"\(inline\):2: {message}"):
            await builder.build(BuildOptions(context=base_ctx,
                                             dockerfile_inline=f"FROM busybox\n{bad}\n"))
    # a trigger that fails names where it came from
    await builder.build(BuildOptions(context=base_ctx, tags=("onbad:1",),
                                     dockerfile_inline="FROM busybox\nONBUILD COPY nope /\n"))
    with pytest.raises(DockerfileError, match=r"ONBUILD trigger 1 of onbad:1.*nope"):
        await builder.build(BuildOptions(context=child_ctx, dockerfile_inline="FROM onbad:1\n"))


async def test_copy_from_an_image(rt: Runtime, store: ImageStore, state_root: Path,
                                  tmp_path: Path, instance: str) -> None:
    builder = Builder(store, state_root, instance=instance)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "tool.txt").write_text("a tool\n")
    await builder.build(BuildOptions(context=ctx, tags=("tools:1",), dockerfile_inline=(
        "FROM scratch\nCOPY tool.txt /opt/tool.txt\n")))
    image = await builder.build(BuildOptions(context=ctx, dockerfile_inline=(
        "FROM busybox AS first\n"
        "FROM busybox\n"
        "COPY --from=tools:1 /opt/tool.txt /usr/share/tool.txt\n"
        "COPY --from=busybox /bin/busybox /opt/copied/busybox\n")))
    assert await run_in(rt, image, "cat", "/usr/share/tool.txt") == "a tool\n"
    assert await run_in(rt, image, "/opt/copied/busybox", "echo", "ok") == "ok\n"
    with pytest.raises(DockerfileError, match=r":2: COPY --from=later: stage 'later' is not "
                                              r"an earlier stage"):
        await builder.build(BuildOptions(context=ctx, dockerfile_inline=(
            "FROM busybox AS first\nCOPY --from=later /x /x\nFROM busybox AS later\n"
            "FROM first\n")))
    # the single-layer images copied from are untouched (their layer was bind-mounted
    # read-only for the copy, and unmounted before the work dir was removed)
    for ref, path in (("tools:1", "opt/tool.txt"), ("busybox", "bin/busybox")):
        assert (store.get(ref).layer_dirs[-1] / path).is_file()
    assert not [p for p in os.listdir(state_root) if p.startswith("build-copy-")]


async def test_a_build_cancelled_during_run_removes_its_container(
        rt: Runtime, store: ImageStore, state_root: Path, tmp_path: Path,
        instance: str) -> None:
    """Ctrl-C during a RUN: the build ends promptly and its container is gone (the
    fixture then checks that no mount, process or work directory is left)."""
    builder = Builder(store, state_root, instance=instance)
    options = BuildOptions(context=tmp_path, dockerfile_inline="FROM busybox\nRUN sleep 600\n")
    with trio.fail_after(60):
        async with rt.events() as events, trio.open_nursery() as nursery:
            nursery.start_soon(builder.build, options)
            async for event in events:  # the build's RUN has started: cancel the build
                if event.kind is EventKind.STARTED:
                    nursery.cancel_scope.cancel()
                    break
    assert await rt.list() == []
