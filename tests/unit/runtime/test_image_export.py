"""Layers rebuilt byte for byte from their directories; ``save`` archives that load back."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from pycompose.runtime.errors import ImageError, ImageNotFoundError
from pycompose.runtime.images import ImageStore
from tests.helpers.images import make_rootfs_tar
from tests.helpers.oci import (
    busybox_layer,
    directory,
    file,
    hardlink,
    image,
    make_layer,
    symlink,
    tar_bytes,
    write_docker_save,
    write_oci_layout,
)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def exported(store: ImageStore, diff_id: str) -> bytes:
    out = io.BytesIO()
    size = store.export_layer(diff_id, out)
    assert size == len(out.getvalue())
    return out.getvalue()


def tree(root: Path) -> dict[str, tuple[int, bytes | str]]:
    out: dict[str, tuple[int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            content: bytes | str = os.readlink(path)
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = b""
        out[str(path.relative_to(root))] = (st.st_mode, content)
    return out


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_layers_rebuild_exactly(store: ImageStore, busybox_rootfs: Path, tmp_path: Path,
                                compression: str) -> None:
    big = os.urandom(3 << 20)  # larger than the recorder's flush threshold
    odd = make_layer(tar_bytes([
        directory("data"),
        file("data/big.bin", big, mode=0o600),
        *[file(f"data/small-{i}", bytes([i % 256]) * i) for i in range(300)],
        hardlink("data/again", "data/big.bin"),
        symlink("data/link", "big.bin"),
        file("data/empty"),
        symlink("via", "data"),
        file("via/through-symlink", b"resolved inside"),  # stored under data/
    ]), compression)
    base = busybox_layer(busybox_rootfs, compression)
    store.load(write_docker_save(tmp_path / "s.tar", [image([base, odd], tags=["x"])]))
    for layer, original in ((base, busybox_layer(busybox_rootfs)), (odd, None)):
        data = exported(store, layer.diff_id)
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer.diff_id
        if original is not None:
            assert data == original.data  # the uncompressed tar of the archive
    meta = json.loads((store.root / "layers" / odd.diff_id[7:] / "layer.json").read_bytes())
    assert meta["tar_record"] is True
    record = store.root / "layers" / odd.diff_id[7:] / "tar-split.zst"
    assert record.stat().st_size < 64 * 1024  # headers only, not the 3 MiB of content


def test_imported_and_committed_layers_rebuild(store: ImageStore, busybox_rootfs: Path,
                                               tmp_path: Path) -> None:
    img = store.import_rootfs(make_rootfs_tar(busybox_rootfs, tmp_path / "r.tar"), "r")
    assert hashlib.sha256(exported(store, img.config.diff_ids[0])).hexdigest() == (
        img.config.diff_ids[0][7:])
    upper = tmp_path / "upper"
    (upper / "srv").mkdir(parents=True)
    (upper / "srv/app").write_text("app\n")
    child = store.commit(upper, parent=img, ref="c")
    data = exported(store, child.config.diff_ids[1])
    assert "sha256:" + hashlib.sha256(data).hexdigest() == child.config.diff_ids[1]


def test_layer_that_overwrites_itself_is_not_exportable(store: ImageStore,
                                                       tmp_path: Path) -> None:
    twice = make_layer(tar_bytes([file("f", b"first"), file("f", b"second")]))
    (img,) = store.load(write_docker_save(tmp_path / "s.tar", [image([twice], tags=["t"])]))
    assert (img.layer_dirs[0] / "f").read_bytes() == b"second"
    with pytest.raises(ImageError, match="cannot be exported: its tar overwrote files"):
        exported(store, twice.diff_id)
    with pytest.raises(ImageError, match="cannot be exported"):
        store.save(["t"], tmp_path / "out.tar")
    assert not (tmp_path / "out.tar").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tar")] == []


def test_changed_layer_dir_is_detected(store: ImageStore, tmp_path: Path) -> None:
    layer = make_layer(tar_bytes([file("f", b"content")]))
    (img,) = store.load(write_docker_save(tmp_path / "s.tar", [image([layer], tags=["t"])]))
    (img.layer_dirs[0] / "f").write_bytes(b"CONTENT")
    with pytest.raises(ImageError, match="does not match its diff-id"):
        exported(store, layer.diff_id)
    with pytest.raises(ImageNotFoundError):
        exported(store, "sha256:" + "0" * 64)


def test_save_then_load_keeps_ids_names_and_content(store: ImageStore, busybox_rootfs: Path,
                                                     tmp_path: Path) -> None:
    base = busybox_layer(busybox_rootfs, "gzip")
    top = make_layer(tar_bytes([file("hello", b"hi")]), "zstd")
    one, two = store.load(write_oci_layout(tmp_path / "l", [
        image([base], tags=["example.com/one:1"]),
        image([base, top], tags=["two"]),
    ]))
    store.tag("two", "two:alias")
    saved = store.save(["example.com/one:1", "two", "two:alias", one.short_id],
                       tmp_path / "saved.tar")
    assert [i.id for i in saved] == [one.id, two.id]
    with tarfile.open(tmp_path / "saved.tar") as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    assert manifest[0]["RepoTags"] == ["example.com/one:1"]
    assert manifest[1]["RepoTags"] == ["two:latest", "two:alias"]

    other = ImageStore(tmp_path / "other")
    loaded = other.load(tmp_path / "saved.tar")
    assert [i.id for i in loaded] == [one.id, two.id]
    assert sorted(other.get(two.id).repo_tags) == ["two:alias", "two:latest"]
    for a, b in zip(other.get(two.id).layer_dirs, two.layer_dirs, strict=True):
        assert tree(a) == tree(b)
    # the layers inside are the exact uncompressed tars
    with tarfile.open(tmp_path / "saved.tar") as tar:
        blob = tar.extractfile(f"blobs/sha256/{top.diff_id[7:]}").read()  # type: ignore[union-attr]
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == top.diff_id


def test_save_by_id_is_untagged_and_to_a_stream(store: ImageStore, tmp_path: Path) -> None:
    layer = make_layer(tar_bytes([file("f", b"x")]))
    (img,) = store.load(write_docker_save(tmp_path / "s.tar", [image([layer], tags=["t"])]))
    out = io.BytesIO()
    store.save([img.short_id], out)
    (tmp_path / "stream.tar").write_bytes(out.getvalue())
    other = ImageStore(tmp_path / "other")
    (loaded,) = other.load(tmp_path / "stream.tar")
    assert loaded.id == img.id
    assert loaded.names == ()
    with pytest.raises(ImageNotFoundError):
        store.save(["missing"], tmp_path / "x.tar")
