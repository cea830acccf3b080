"""``pycompose builder prune`` after real builds: a multi-stage build's intermediate layers
go, the image's layers stay, and the project still builds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycompose.runtime.build.cache import cache_dir
from pycompose.runtime.images import ImageStore
from pycompose.runtime.images.digest import hex_of
from tests.helpers.builds import cli

pytestmark = pytest.mark.root


def _layers(root: Path) -> set[str]:
    return set(os.listdir(root / "images" / "layers"))


def _entries(root: Path) -> int:
    return sum(name.endswith(".json") for name in os.listdir(cache_dir(root)))


def _image_layers(root: Path) -> set[str]:
    return {hex_of(d) for image in ImageStore(root / "images").list()
            for d in image.config.diff_ids}


def test_prune_after_a_multi_stage_build(root: Path, instance: str, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "Dockerfile").write_text(
        "FROM busybox AS gen\nRUN echo generated > /out.txt\n"
        "FROM busybox\nCOPY --from=gen /out.txt /srv/out.txt\nRUN echo v1 > /srv/version\n"
        "CMD [\"cat\", \"/srv/out.txt\"]\n")
    (proj / "compose.yaml").write_text("services:\n  app:\n    build: .\n")

    built = cli("build", root=root, instance=instance, cwd=proj)
    assert built.returncode == 0, built.stderr
    stage_only = _layers(root) - _image_layers(root)
    assert len(stage_only) == 1  # the gen stage's RUN layer: only the cache keeps it
    entries = _entries(root)
    assert entries == 4  # RUN (gen), COPY, RUN, CMD

    du = cli("builder", "du", root=root, instance=instance, cwd=proj)
    assert du.returncode == 0, du.stderr
    assert "true" in du.stdout  # the gen stage's entry is dangling

    pruned = cli("builder", "prune", "-f", root=root, instance=instance, cwd=proj)
    assert pruned.returncode == 0, pruned.stderr
    assert "Deleted build cache objects:" in pruned.stdout
    assert pruned.stdout.splitlines()[-1].startswith("Total reclaimed space: ")
    assert _layers(root) == _image_layers(root)
    assert _entries(root) == entries - 1  # the final stage's entries stay

    again = cli("build", root=root, instance=instance, cwd=proj)
    assert again.returncode == 0, again.stderr
    assert "#2 [gen 2/2] RUN echo generated" in again.stdout
    assert "#2 CACHED" not in again.stdout  # its entry is gone: it ran again
    assert again.stdout.count("CACHED") == 3  # the final stage's COPY, RUN and CMD hit

    everything = cli("builder", "prune", "--all", "--force", root=root, instance=instance,
                     cwd=proj)
    assert everything.returncode == 0, everything.stderr
    assert os.listdir(cache_dir(root)) == [".lock"]
    assert _layers(root) == _image_layers(root)
    image = ImageStore(root / "images").get("proj-app")
    assert (image.layers[-2].path / "srv" / "out.txt").read_text() == "generated\n"
