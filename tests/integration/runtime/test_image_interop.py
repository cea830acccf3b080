"""Archives written by a real tool (Debian's ``skopeo``) load into the store.

skopeo converts an OCI layout made by the test helpers into a ``docker save``
archive (its docker-archive transport), an OCI archive, and an OCI layout with
zstd layers; the store must load all of them as the same image.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pycompose.runtime.images import ImageStore
from tests.helpers.oci import busybox_two_layers, write_oci_layout

pytestmark = [
    pytest.mark.root,  # the image has whiteouts (mknod)
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs Debian's skopeo"),
]


def skopeo_copy(src: str, dst: str, *extra: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--insecure-policy", *extra, src, dst],
                   check=True, capture_output=True)


@pytest.mark.parametrize(("dest", "extra", "name"), [
    ("docker-archive:{dir}/docker.tar:example.com/bb:v9", (), "example.com/bb:v9"),
    ("oci-archive:{dir}/oci.tar:bb:v1", (), "bb:v1"),
    ("oci:{dir}/zstd-layout:other/bb:zstd", ("--dest-compress-format", "zstd"), "other/bb:zstd"),
])
def test_skopeo_archives_load(tmp_path: Path, busybox_rootfs: Path, dest: str,
                              extra: tuple[str, ...], name: str) -> None:
    source = busybox_two_layers(busybox_rootfs, tags=["bb2:latest"], compression="gzip")
    layout = write_oci_layout(tmp_path / "layout", [source])
    target = dest.format(dir=tmp_path)
    skopeo_copy(f"oci:{layout}:bb2:latest", target, *extra)
    if "zstd" in extra:  # the layers really are zstd now
        blobs = (tmp_path / "zstd-layout/blobs/sha256").iterdir()
        assert any(b.read_bytes()[:4] == b"\x28\xb5\x2f\xfd" for b in blobs)
    store = ImageStore(tmp_path / "store")
    (img,) = store.load(Path(target.split(":")[1]))
    assert img.id == source.id  # the config travels byte for byte
    assert img.repo_tags == (name,)
    assert img.config.diff_ids == tuple(layer.diff_id for layer in source.layers)
    bottom, top = img.layer_dirs
    assert (bottom / "bin/busybox").is_file()
    assert (top / "hello.txt").read_text() == "hello from the top layer\n"


@pytest.mark.parametrize("transport", ["docker-archive:{path}", "oci-archive:{path}:v9"])
def test_skopeo_reads_saved_archives(tmp_path: Path, busybox_rootfs: Path,
                                     transport: str) -> None:
    source = busybox_two_layers(busybox_rootfs, tags=["bb2:v9"], compression="zstd")
    store = ImageStore(tmp_path / "store")
    store.load(write_oci_layout(tmp_path / "layout", [source]))
    saved = tmp_path / "saved.tar"
    store.save(["bb2:v9"], saved)
    # a real tool reads our archive and writes it back out as a plain OCI layout
    skopeo_copy(transport.format(path=saved), f"oci:{tmp_path}/back:again")
    other = ImageStore(tmp_path / "other")
    (img,) = other.load(tmp_path / "back")
    if transport.startswith("oci-archive"):
        assert img.id == source.id  # the config went through byte for byte
    # (from docker-archive skopeo re-serialises the config for the OCI media type)
    assert img.config.diff_ids == tuple(layer.diff_id for layer in source.layers)
    assert img.config.config.cmd == ("sh",)
    assert (img.layer_dirs[1] / "hello.txt").read_text() == "hello from the top layer\n"
