"""COPY/ADD here-documents in real builds: names, modes, expansion, the cache."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pycompose.runtime.build import Builder, BuildOptions, DockerfileError
from pycompose.runtime.images import ImageStore
from tests.helpers.builds import leftovers

pytestmark = pytest.mark.root


async def test_copy_and_add_heredocs(store: ImageStore, state_root: Path,
                                     tmp_path: Path) -> None:
    (tmp_path / "ctx.txt").write_text("from the context\n")
    lines: list[str] = []
    builder = Builder(store, state_root, log=lines.append)
    dockerfile = (
        "FROM busybox\n"
        "ARG WHO=world\n"
        "COPY <<EOF /etc/greeting\n"
        "hello $WHO\n"
        "EOF\n"
        "COPY --chmod=0755 <<-\"RUNME\" <<robots.txt ctx.txt /srv/\n"
        "\t#!/bin/sh\n"
        "\techo $WHO\n"
        "\tRUNME\n"
        "User-agent: *\n"
        "robots.txt\n"
        "ADD <<archive.tar /add/\n"
        "not a tarball\n"
        "archive.tar\n")
    image = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    first, second, third = image.layer_dirs[-3:]
    greeting = first / "etc" / "greeting"
    assert greeting.read_text() == "hello world\n"  # unquoted: expanded
    assert stat.S_IMODE(os.stat(greeting).st_mode) == 0o644
    runme = second / "srv" / "RUNME"
    assert runme.read_text() == "#!/bin/sh\necho $WHO\n"  # <<-: tabs gone; quoted: as is
    assert stat.S_IMODE(os.stat(runme).st_mode) == 0o755
    assert (second / "srv" / "robots.txt").read_text() == "User-agent: *\n"
    assert (second / "srv" / "ctx.txt").read_text() == "from the context\n"
    assert (third / "add" / "archive.tar").read_text() == "not a tarball\n"  # no extraction

    lines.clear()
    again = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile))
    assert again.id == image.id
    lines.clear()
    other = await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=dockerfile,
                                             build_args={"WHO": "you"}))
    assert (other.layer_dirs[-3] / "etc" / "greeting").read_text() == "hello you\n"
    assert leftovers(state_root) == []
    with pytest.raises(DockerfileError, match=r":2: .*here-document 'EOF' is not terminated"):
        await builder.build(BuildOptions(context=tmp_path, dockerfile_inline=(
            "FROM busybox\nCOPY <<EOF /x\nno end\n")))
