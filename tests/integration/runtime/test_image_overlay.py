"""Image layers stacked with a real overlayfs mount: whiteouts and opaque dirs hide
lower content, and a container-style upper dir committed as a layer keeps its deletions."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycompose.runtime.images import Image, ImageStore
from tests.helpers.oci import busybox_two_layers, write_docker_save

pytestmark = pytest.mark.root


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount (lazily, last first) when the test ends, passed or not."""
    mounted: list[Path] = []
    yield mounted
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)
    for target in mounted:
        with open("/proc/self/mountinfo") as f:
            assert f" {target} " not in f.read()


def mount_overlay(mounts: list[Path], target: Path, lower: tuple[Path, ...],
                  upper: Path | None = None) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    options = ["lowerdir=" + ":".join(str(p) for p in reversed(lower))]  # top layer first
    if upper is not None:
        work = upper.parent / (upper.name + "-work")
        work.mkdir(exist_ok=True)
        options += [f"upperdir={upper}", f"workdir={work}", "redirect_dir=off", "metacopy=off"]
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", ",".join(options), str(target)],
                   check=True)
    mounts.append(target)
    return target


def run_in(root: Path, script: str) -> str:
    """Run a shell script with the merged tree as root (the image's own busybox)."""
    out = subprocess.run(["chroot", str(root), "/bin/sh", "-c", script],
                         capture_output=True, text=True, check=True)
    return out.stdout


@pytest.fixture
def two_layer_image(tmp_path: Path, busybox_rootfs: Path) -> tuple[ImageStore, Image]:
    store = ImageStore(tmp_path / "store")
    archive = write_docker_save(tmp_path / "bb2.tar",
                                [busybox_two_layers(busybox_rootfs, compression="gzip")])
    (img,) = store.load(archive)
    return store, img


def test_deleted_file_is_invisible_in_the_stack(tmp_path: Path, mounts: list[Path],
                                                two_layer_image: tuple[ImageStore, Image]) -> None:
    _, img = two_layer_image
    bottom, top = img.layer_dirs
    assert (bottom / "etc/motd").is_file()  # the lower layer still has it
    merged = mount_overlay(mounts, tmp_path / "merged", img.layer_dirs)
    assert not (merged / "etc/motd").exists()  # whiteout in the top layer
    assert (merged / "etc/passwd").is_file()  # siblings in the same dir are still there
    assert sorted(os.listdir(merged / "data")) == ["new.txt"]  # opaque: old content hidden
    assert (merged / "hello.txt").read_text() == "hello from the top layer\n"
    # the image's own shell sees the same
    assert run_in(merged, "ls /data; cat /etc/motd 2>/dev/null || echo no-motd") == (
        "new.txt\nno-motd\n"
    )


def test_committed_upper_dir_keeps_deletions(tmp_path: Path, mounts: list[Path],
                                             two_layer_image: tuple[ImageStore, Image]) -> None:
    store, img = two_layer_image
    upper = tmp_path / "upper"
    upper.mkdir()
    merged = mount_overlay(mounts, tmp_path / "container", img.layer_dirs, upper)
    run_in(merged, "rm /hello.txt && rm -r /data && mkdir /data && echo fresh > /data/fresh "
                   "&& mkdir -p /app && echo app > /app/run && rm /bin/vi")
    subprocess.run(["umount", str(merged)], check=True)
    mounts.remove(merged)

    child = store.commit(upper, parent=img, ref="child:1", changes=['CMD ["/app/run"]'])
    assert child.layer_dirs[:2] == img.layer_dirs
    assert child.config.config.cmd == ("/app/run",)
    view = mount_overlay(mounts, tmp_path / "view", child.layer_dirs)
    assert not (view / "hello.txt").exists()
    assert not (view / "bin/vi").exists()
    assert (view / "bin/busybox").is_file()
    assert sorted(os.listdir(view / "data")) == ["fresh"]
    assert (view / "app/run").read_text() == "app\n"
    assert run_in(view, "cat /data/fresh") == "fresh\n"


def test_removing_the_image_removes_its_layer_dirs(tmp_path: Path,
                                                   two_layer_image: tuple[ImageStore, Image]
                                                   ) -> None:
    store, img = two_layer_image
    store.remove(img.id)
    assert not any(p.exists() for p in img.layer_dirs)
    assert os.listdir(store.root / "layers") == []
