"""The image store: imports, archives, names, removal, prune, atomicity, concurrency."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pycompose.runtime.errors import ImageConflictError, ImageError, ImageNotFoundError
from pycompose.runtime.images import ImageStore
from pycompose.runtime.images.config import empty_config
from pycompose.runtime.images.digest import hex_of
from tests.helpers.images import make_rootfs_tar
from tests.helpers.oci import (
    busybox_layer,
    compress,
    directory,
    file,
    image,
    make_layer,
    tar_bytes,
    write_docker_save,
    write_oci_archive,
    write_oci_layout,
)

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.fixture(scope="module")
def rootfs_tar(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs_tar(busybox_rootfs, tmp_path_factory.mktemp("tar") / "rootfs.tar")


def small_layer(name: str, compression: str = "none") -> object:
    return make_layer(tar_bytes([directory("etc"), file(f"etc/{name}", name.encode())]),
                      compression)


def snapshot(root: Path) -> list[str]:
    """Every path in the store except the lock file (which exists once anything ran)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != "lock")


# --- import ----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_import_rootfs(store: ImageStore, rootfs_tar: Path, tmp_path: Path,
                       compression: str) -> None:
    src = tmp_path / f"rootfs.{compression}"
    src.write_bytes(compress(rootfs_tar.read_bytes(), compression))
    img = store.import_rootfs(src, "bb:v1", changes=['CMD ["/bin/sh"]', "ENV A=1",
                                                     "WORKDIR /root", "EXPOSE 80"])
    assert img.names == ("docker.io/library/bb:v1",)
    assert img.repo_tags == ("bb:v1",)
    assert img.config.config.cmd == ("/bin/sh",)
    assert img.config.config.env == ("A=1",)
    assert img.config.config.working_dir == "/root"
    assert img.config.config.exposed_ports == ("80/tcp",)
    assert len(img.layer_dirs) == 1
    (layer,) = img.layer_dirs
    assert (layer / "bin/busybox").is_file()
    assert os.readlink(layer / "bin/sh") == "/bin/busybox"
    assert img.size > 500_000
    assert img.created is not None
    assert img.config.history[-1].comment == f"Imported from {src.name}"
    # the id is the sha256 of the stored config, as in Docker
    blob = store.root / "blobs/sha256" / img.id.split(":")[1]
    assert "sha256:" + __import__("hashlib").sha256(blob.read_bytes()).hexdigest() == img.id
    assert os.listdir(store.root / "tmp") == []


def test_import_same_rootfs_twice_shares_the_layer(store: ImageStore, rootfs_tar: Path) -> None:
    a = store.import_rootfs(rootfs_tar, "a")
    b = store.import_rootfs(rootfs_tar, "b", changes=['CMD ["true"]'])
    assert a.id != b.id
    assert a.layer_dirs == b.layer_dirs
    assert len(os.listdir(store.root / "layers")) == 1


def test_import_bad_change_does_nothing(store: ImageStore, rootfs_tar: Path) -> None:
    with pytest.raises(ImageError, match="unsupported instruction 'RUN'"):
        store.import_rootfs(rootfs_tar, "x", changes=["RUN rm -rf /"])
    assert snapshot(store.root) == []


def test_import_truncated_tar_leaves_nothing(store: ImageStore, rootfs_tar: Path,
                                             tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(gzip.compress(rootfs_tar.read_bytes())[:300_000])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        store.import_rootfs(bad, "x")
    assert store.list() == []
    assert os.listdir(store.root / "tmp") == []
    assert os.listdir(store.root / "layers") == []


# --- load ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["docker-save", "oci-layout", "oci-archive"])
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_load_formats(store: ImageStore, busybox_rootfs: Path, tmp_path: Path,
                      fmt: str, compression: str) -> None:
    base = busybox_layer(busybox_rootfs, compression)
    top = make_layer(tar_bytes([file("hello.txt", b"hi\n")]), compression)
    img1 = image([base], tags=["bb:1"], cmd=["sh"], Labels={"a": "b"})
    img2 = image([base, top], tags=["example.com/team/app:2"], cmd=None,
                 Entrypoint=["/bin/sh", "-c"], StopSignal="SIGINT")
    if fmt == "docker-save":
        archive = write_docker_save(tmp_path / "save.tar", [img1, img2])
    elif fmt == "oci-layout":
        archive = write_oci_layout(tmp_path / "layout", [img1, img2])
    else:
        archive = write_oci_archive(tmp_path / "oci.tar", [img1, img2])
    loaded = store.load(archive)
    assert [i.id for i in loaded] == [img1.id, img2.id]
    one = store.get("bb:1")
    two = store.get("example.com/team/app:2")
    assert one.config.config.labels == {"a": "b"}
    assert two.config.config.entrypoint == ("/bin/sh", "-c")
    assert two.config.config.cmd is None
    assert two.config.config.stop_signal == "SIGINT"
    assert two.layer_dirs[0] == one.layer_dirs[0]  # the shared base is unpacked once
    assert (two.layer_dirs[1] / "hello.txt").read_bytes() == b"hi\n"
    assert len(os.listdir(store.root / "layers")) == 2
    assert two.repo_tags == ("example.com/team/app:2",)
    # loading again is a no-op that still verifies
    assert [i.id for i in store.load(archive)] == [img1.id, img2.id]
    assert len(os.listdir(store.root / "layers")) == 2


def test_load_oci_nested_index_picks_this_platform(store: ImageStore, tmp_path: Path) -> None:
    ours = image([small_layer("ours")], architecture=None)
    other = image([small_layer("other")], architecture="s390x" if os.uname().machine != "s390x"
                  else "arm64")
    layout = write_oci_layout(tmp_path / "multi", [other, ours], platform=True)
    # rewrite index.json: one nested index holding both platforms, named by ref.name
    index = json.loads((layout / "index.json").read_bytes())
    index["manifests"][0]["platform"]["architecture"] = json.loads(other.config)["architecture"]
    nested = json.dumps({"schemaVersion": 2,
                         "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": index["manifests"]}).encode()
    import hashlib
    digest = "sha256:" + hashlib.sha256(nested).hexdigest()
    (layout / "blobs/sha256" / digest.split(":")[1]).write_bytes(nested)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest,
        "size": len(nested), "annotations": {"org.opencontainers.image.ref.name": "multi:1"},
    }]}))
    (loaded,) = store.load(layout)
    assert loaded.id == ours.id
    assert loaded.repo_tags == ("multi:1",)


def test_load_rootfs_tar_says_use_import(store: ImageStore, rootfs_tar: Path) -> None:
    with pytest.raises(ImageError, match="use `image import`"):
        store.load(rootfs_tar)


def test_load_not_a_tar(store: ImageStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello" * 1000)
    with pytest.raises(ImageError, match="not a tar archive"):
        store.load(junk)
    with pytest.raises(ImageError, match="no such file"):
        store.load(tmp_path / "missing.tar")


@pytest.mark.parametrize("fmt", ["docker-save", "oci-archive"])
def test_truncated_archive_is_rejected_and_store_unchanged(
    store: ImageStore, busybox_rootfs: Path, tmp_path: Path, fmt: str
) -> None:
    existing = store.load(write_docker_save(tmp_path / "small.tar",
                                            [image([small_layer("a")], tags=["keep"])]))
    before = snapshot(store.root)
    img = image([busybox_layer(busybox_rootfs), small_layer("top", "gzip")], tags=["bb2"])
    writer = write_docker_save if fmt == "docker-save" else write_oci_archive
    archive = writer(tmp_path / "full.tar", [img])
    data = archive.read_bytes()
    with tarfile.open(archive) as tar:
        offsets = [(m.offset_data, m.size) for m in tar.getmembers() if m.size > 1]
    # cut inside the data of every member in turn: configs, manifests and layers
    cuts = {offset + size // 2 for offset, size in offsets}
    for cut in sorted(cuts):
        archive.write_bytes(data[:cut])
        with pytest.raises(ImageError):
            store.load(archive)
        assert snapshot(store.root) == before
        assert os.listdir(store.root / "tmp") == []
    assert [i.id for i in store.list()] == [existing[0].id]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
@pytest.mark.parametrize("fmt", ["docker-save", "oci-layout"])
def test_flipped_byte_in_layer_is_rejected(
    store: ImageStore, busybox_rootfs: Path, tmp_path: Path, fmt: str, compression: str
) -> None:
    base = busybox_layer(busybox_rootfs, compression)
    img = image([base], tags=["bb"])
    if fmt == "docker-save":
        archive = write_docker_save(tmp_path / "save.tar", [img])
        data = bytearray(archive.read_bytes())
        pos = data.find(base.data[:4096]) + 4000  # inside the layer's content
        data[pos] ^= 0x01
        archive.write_bytes(bytes(data))
    else:
        archive = write_oci_layout(tmp_path / "layout", [img])
        blob = archive / "blobs/sha256" / base.digest.split(":")[1]
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0x01
        blob.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="mismatch|corrupt"):
        store.load(archive)
    assert store.list() == []
    assert os.listdir(store.root / "layers") == []
    assert os.listdir(store.root / "tmp") == []


def test_config_digest_mismatch(store: ImageStore, tmp_path: Path) -> None:
    layout = write_oci_layout(tmp_path / "l", [image([small_layer("a")], tags=["x"])])
    index = json.loads((layout / "index.json").read_bytes())
    manifest_path = layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_bytes())
    config_path = layout / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]
    config_path.write_bytes(config_path.read_bytes().replace(b'"sh"', b'"SH"'))
    with pytest.raises(ImageError, match="digest or size mismatch"):
        store.load(layout)


def test_missing_layer_blob(store: ImageStore, tmp_path: Path) -> None:
    layer = small_layer("a")
    layout = write_oci_layout(tmp_path / "l", [image([layer], tags=["x"])])
    (layout / "blobs/sha256" / layer.digest.split(":")[1]).unlink()
    with pytest.raises(ImageError, match="layer blob .* is missing"):
        store.load(layout)


def test_wrong_diff_id_is_rejected(store: ImageStore, tmp_path: Path) -> None:
    real = small_layer("real")
    fake = small_layer("fake")
    # the archive's config promises fake's content, the blob holds real's
    from tests.helpers.oci import ArchiveImage, make_config
    img = ArchiveImage(config=make_config([fake]), layers=(real,), tags=("x",))
    with pytest.raises(ImageError, match="diff_id"):
        store.load(write_docker_save(tmp_path / "s.tar", [img]))
    assert store.list() == []


def test_hostile_layer_in_archive_leaves_nothing(store: ImageStore, tmp_path: Path) -> None:
    evil = make_layer(tar_bytes([file("../../escape", b"x")]))
    with pytest.raises(ImageError, match="escapes the layer"):
        store.load(write_docker_save(tmp_path / "s.tar", [image([evil], tags=["evil"])]))
    assert store.list() == []
    assert os.listdir(store.root / "layers") == []
    assert not (tmp_path / "escape").exists()


# --- names, get, tag -------------------------------------------------------------------


def test_get_by_name_id_and_prefix(store: ImageStore, tmp_path: Path) -> None:
    (img,) = store.load(write_docker_save(tmp_path / "s.tar",
                                          [image([small_layer("a")], tags=["busybox"])]))
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest",
                "library/busybox", img.id, img.id.split(":")[1], img.short_id,
                img.id[:14]):
        assert store.get(ref).id == img.id, ref
    with pytest.raises(ImageNotFoundError, match="No such image: nothere"):
        store.get("nothere")
    with pytest.raises(ImageNotFoundError):
        store.get("busybox:other")


def test_ambiguous_prefix(store: ImageStore) -> None:
    seen: dict[str, str] = {}
    n = 0
    while True:  # at most 17 images until two ids share their first hex digit
        config = empty_config().derive(diff_ids=[], created_by=f"step {n}", created="x")
        img = store.create_image(config)
        first = img.id[7]
        if first in seen:
            break
        seen[first] = img.id
        n += 1
    with pytest.raises(ImageConflictError, match="ambiguous"):
        store.get(first)


def test_tag_moves_name(store: ImageStore, tmp_path: Path) -> None:
    a, b = store.load(write_docker_save(tmp_path / "s.tar", [
        image([small_layer("a")], tags=["app:1"]),
        image([small_layer("b")], tags=["app:2"]),
    ]))
    store.tag("app:1", "app:latest")
    assert store.get("app").id == a.id
    store.tag(b.short_id, "app")
    assert store.get("app").id == b.id
    assert store.get(a.id).repo_tags == ("app:1",)
    with pytest.raises(ImageError, match="invalid reference"):
        store.tag("app:1", "Bad Name")


def test_load_moves_existing_name(store: ImageStore, tmp_path: Path) -> None:
    (old,) = store.load(write_docker_save(tmp_path / "a.tar",
                                          [image([small_layer("a")], tags=["app"])]))
    (new,) = store.load(write_docker_save(tmp_path / "b.tar",
                                          [image([small_layer("b")], tags=["app"])]))
    assert store.get("app").id == new.id
    assert store.get(old.id).names == ()  # dangling, as Docker leaves it


# --- remove and prune ------------------------------------------------------------------


def test_remove_untags_then_deletes_with_unshared_layers(store: ImageStore,
                                                        busybox_rootfs: Path,
                                                        tmp_path: Path) -> None:
    base = busybox_layer(busybox_rootfs)
    top = make_layer(tar_bytes([file("x", b"x")]))
    one, two = store.load(write_docker_save(tmp_path / "s.tar", [
        image([base], tags=["one", "one:alias"]),
        image([base, top], tags=["two"]),
    ]))
    assert store.remove("one:alias") == ["Untagged: one:alias"]
    assert store.get(one.id).repo_tags == ("one:latest",)
    assert store.remove("two") == ["Untagged: two:latest", f"Deleted: {two.id}"]
    # the top layer went, the shared base stays for "one"
    assert not two.layer_dirs[1].exists()
    assert one.layer_dirs[0].is_dir()
    assert store.remove(one.short_id) == ["Untagged: one:latest", f"Deleted: {one.id}"]
    assert os.listdir(store.root / "layers") == []
    assert os.listdir(store.root / "blobs/sha256") == []
    assert os.listdir(store.root / "images") == []
    assert os.listdir(store.root / "tmp") == []
    with pytest.raises(ImageNotFoundError):
        store.remove("one")


def test_remove_by_id_with_several_names_needs_force(store: ImageStore, tmp_path: Path) -> None:
    (img,) = store.load(write_docker_save(tmp_path / "s.tar",
                                          [image([small_layer("a")], tags=["a", "b"])]))
    with pytest.raises(ImageConflictError, match="referenced in multiple repositories"):
        store.remove(img.short_id)
    assert store.remove(img.short_id, force=True) == [
        "Untagged: a:latest", "Untagged: b:latest", f"Deleted: {img.id}"]


def test_remove_in_use(store: ImageStore, tmp_path: Path) -> None:
    (img,) = store.load(write_docker_save(tmp_path / "s.tar",
                                          [image([small_layer("a")], tags=["a"])]))
    used = {img.id}
    with pytest.raises(ImageConflictError, match="being used by a container"):
        store.remove("a", in_use=used.__contains__)
    assert store.get("a").id == img.id
    # forced: the name goes, the data stays for the running container
    assert store.remove("a", force=True, in_use=used.__contains__) == ["Untagged: a:latest"]
    assert store.get(img.id).layer_dirs[0].is_dir()
    # prune leaves it while used, removes it after
    assert store.prune(in_use=used.__contains__).deleted == ()
    result = store.prune(in_use=lambda _id: False)
    assert result.deleted == (img.id,)
    assert result.reclaimed == 1  # the one-byte file of small_layer("a")
    assert os.listdir(store.root / "layers") == []


def test_prune_dangling_and_all(store: ImageStore, tmp_path: Path) -> None:
    keep, dangling = store.load(write_docker_save(tmp_path / "s.tar", [
        image([small_layer("a")], tags=["keep"]),
        image([small_layer("b")]),
    ]))
    assert dangling.names == ()
    result = store.prune()
    assert result.deleted == (dangling.id,)
    assert [i.id for i in store.list()] == [keep.id]
    result = store.prune(all=True, in_use=lambda i: i == keep.id)
    assert result.deleted == ()
    result = store.prune(all=True)
    assert result.deleted == (keep.id,)
    assert result.untagged == ("keep:latest",)
    assert snapshot(store.root) == ["blobs", "blobs/sha256", "images", "layers",
                                    "repositories.json", "tmp"]


def test_stale_staging_is_swept_but_live_staging_kept(store: ImageStore, tmp_path: Path) -> None:
    store.load(write_docker_save(tmp_path / "s.tar", [image([small_layer("a")], tags=["a"])]))
    stale = store.root / "tmp" / "deadbeef"
    (stale / "0/diff").mkdir(parents=True)
    (store.root / "tmp" / "deadbeef.lock").touch()  # its owner died: nobody holds the flock
    orphan = store.root / "tmp" / "orphan"  # made without a lock file: stale as well
    orphan.mkdir()
    with store._staging() as live:  # a concurrent import in progress
        store.clean_staging()
        assert live.is_dir()
        assert not stale.exists()
        assert not orphan.exists()
        assert not (store.root / "tmp" / "deadbeef.lock").exists()
    assert os.listdir(store.root / "tmp") == []


def _inode_flags(path: Path) -> int | None:
    import fcntl
    import struct

    from pycompose.runtime import syscalls

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        raw = fcntl.ioctl(fd, syscalls.FS_IOC_GETFLAGS, b"\0" * 4)
    except OSError:
        return None  # a filesystem without inode flags
    finally:
        os.close(fd)
    return int(struct.unpack("i", raw)[0])


def test_staging_spreads_its_layers_over_block_groups(store: ImageStore, tmp_path: Path) -> None:
    """A staging directory is a "top of hierarchies" (chattr +T) where the filesystem
    has the flag, so each layer made in it takes a block group of its own; nothing else
    in the store gets the flag."""
    from pycompose.runtime import syscalls

    if _inode_flags(tmp_path) is None:
        pytest.skip(f"{tmp_path}: the filesystem has no inode flags (ext4 has)")
    with store._staging() as staging:
        flags = _inode_flags(staging)
        assert flags is not None
        assert flags & syscalls.FS_TOPDIR_FL
        (staging / "0").mkdir()
        assert not (_inode_flags(staging / "0") or 0) & syscalls.FS_TOPDIR_FL  # not inherited
    assert not (_inode_flags(store.root / "tmp") or 0) & syscalls.FS_TOPDIR_FL
    shm = Path("/dev/shm")
    if shm.is_dir():  # tmpfs: no such flag, and no error either
        fd = os.open(shm, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert syscalls.spread_subdirectories(fd) is False
        finally:
            os.close(fd)


def test_each_staging_names_its_layer_directories_afresh(store: ImageStore) -> None:
    """ext4 chooses a top directory's subdirectory's block group by a hash of its name:
    the first layer of every pull must not get the same name (and so the same group,
    full of the inodes the last removal freed)."""
    from pycompose.runtime.images.store import _layer_stage

    with store._staging() as one, store._staging() as two:
        first = {_layer_stage(one, 0).name, _layer_stage(two, 0).name}
        assert len(first) == 2
        assert _layer_stage(one, 0) != _layer_stage(one, 1)
        assert _layer_stage(one, 1) == _layer_stage(one, 1)  # the same layer, the same place


# --- write side ------------------------------------------------------------------------


def test_commit_a_directory_diff(store: ImageStore, rootfs_tar: Path, tmp_path: Path) -> None:
    base = store.import_rootfs(rootfs_tar, "base", changes=['CMD ["sh"]'])
    upper = tmp_path / "upper"
    (upper / "app").mkdir(parents=True)
    (upper / "app/main.sh").write_text("echo hi\n")
    child = store.commit(upper, parent=base, ref="child:1", changes=["ENV MODE=prod"],
                         comment="add app", created_by="pycompose commit")
    assert child.layer_dirs[0] == base.layer_dirs[0]
    assert (child.layer_dirs[1] / "app/main.sh").read_text() == "echo hi\n"
    assert child.config.config.cmd == ("sh",)
    assert child.config.config.env == ("MODE=prod",)
    assert [h.comment for h in child.config.history][-1] == "add app"
    assert child.config.diff_ids[0] == base.config.diff_ids[0]
    # a layer alone is unreferenced until an image uses it; prune collects it
    layer = store.add_layer_from_dir(upper)
    assert layer.diff_id == child.config.diff_ids[1]  # same content, same diff-id
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("f")
    lone = store.add_layer_from_dir(other)
    assert lone.path.is_dir()
    store.prune()
    assert not lone.path.exists()
    assert child.layer_dirs[1].is_dir()


def test_create_image_needs_its_layers(store: ImageStore) -> None:
    config = empty_config().derive(diff_ids=["sha256:" + "ab" * 32])
    with pytest.raises(ImageError, match="not in the store"):
        store.create_image(config, "x")


def test_reads_on_an_empty_root_do_not_create_it(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "nothing")
    assert store.list() == []
    with pytest.raises(ImageNotFoundError):
        store.get("busybox")
    with pytest.raises(ImageNotFoundError):
        store.remove("busybox")
    with pytest.raises(ImageNotFoundError):
        store.tag("busybox", "other")
    assert store.prune().deleted == ()
    store.clean_staging()
    store.release("c1")
    assert not (tmp_path / "nothing").exists()


# --- concurrency -----------------------------------------------------------------------

_LOADER = """
import sys
from pathlib import Path
from pycompose.runtime.images import ImageStore
imgs = ImageStore(Path(sys.argv[1])).load(Path(sys.argv[2]))
print(" ".join(i.id for i in imgs))
"""


def test_concurrent_loads_of_the_same_archive(store: ImageStore, busybox_rootfs: Path,
                                              tmp_path: Path) -> None:
    img = image([busybox_layer(busybox_rootfs, "gzip"), small_layer("top", "zstd")], tags=["bb"])
    archive = write_oci_archive(tmp_path / "a.tar", [img])
    procs = [
        subprocess.Popen([sys.executable, "-c", _LOADER, str(store.root), str(archive)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert {o.strip() for o, _ in outs} == {img.id}
    assert len(os.listdir(store.root / "layers")) == 2
    assert os.listdir(store.root / "tmp") == []
    assert store.get("bb").id == img.id


def test_layer_dirs_are_complete_before_named(store: ImageStore, rootfs_tar: Path) -> None:
    img = store.import_rootfs(rootfs_tar, "bb")
    meta = json.loads((img.layer_dirs[0].parent / "layer.json").read_bytes())
    assert meta["diff_id"] == img.config.diff_ids[0]
    assert meta["size"] == img.size


# --- crashes -----------------------------------------------------------------------------

_CRASHER = """
import os, signal, sys
from pathlib import Path
from pycompose.runtime.images import store as s

def stop_here():
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)  # the parent SIGKILLs us here

point = sys.argv[3]
if point == "unpacked":
    original = s.unpack_layer
    def unpack_layer(*args, **kwargs):
        result = original(*args, **kwargs)
        stop_here()
        return result
    s.unpack_layer = unpack_layer
else:  # layers moved into place, image record not written yet
    original = s.ImageStore._commit_image
    def _commit_image(self, *args, **kwargs):
        stop_here()
        return original(self, *args, **kwargs)
    s.ImageStore._commit_image = _commit_image
s.ImageStore(Path(sys.argv[1])).load(Path(sys.argv[2]))
"""


@pytest.mark.parametrize("point", ["unpacked", "committing"])
def test_killed_import_leaves_no_visible_half_state(store: ImageStore, tmp_path: Path,
                                                    point: str) -> None:
    keep = store.load(write_docker_save(tmp_path / "keep.tar",
                                        [image([small_layer("keep")], tags=["keep"])]))
    new = image([small_layer("a"), small_layer("b")], tags=["new"])
    archive = write_docker_save(tmp_path / "new.tar", [new])
    with subprocess.Popen([sys.executable, "-c", _CRASHER, str(store.root), str(archive),
                           point], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
        finally:
            child.kill()
    # what readers see: the old state only
    assert [i.id for i in store.list()] == [keep[0].id]
    with pytest.raises(ImageNotFoundError):
        store.get("new")
    assert os.listdir(store.root / "tmp")  # the dead import's staging is still there
    # killed after its layers were moved into place: they exist, unreferenced
    assert len(os.listdir(store.root / "layers")) == (3 if point == "committing" else 1)
    # the next import works, reusing whatever was complete, and sweeps the leftovers
    (loaded,) = store.load(archive)
    assert loaded.id == new.id
    assert store.get("new").id == new.id
    assert os.listdir(store.root / "tmp") == []
    assert len(os.listdir(store.root / "layers")) == 3
    assert store.prune().deleted == ()


def test_add_images_checks_layers_against_config(store: ImageStore) -> None:
    from pycompose.runtime.images import ImageSource

    config = empty_config().derive(diff_ids=["sha256:" + "ab" * 32])
    source = ImageSource(config_bytes=config.to_json(), config=config, layers=(), names=())
    with pytest.raises(ImageError, match="do not match the config's diff_ids"):
        store.add_images([source])
    assert store.list() == []


def test_load_gzipped_docker_save(store: ImageStore, tmp_path: Path) -> None:
    img = image([small_layer("a")], tags=["zipped"])
    plain = write_docker_save(tmp_path / "s.tar", [img])
    zipped = tmp_path / "s.tar.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    (loaded,) = store.load(zipped)  # `docker save | gzip` as docker load accepts it
    assert loaded.id == img.id
    assert loaded.repo_tags == ("zipped:latest",)


@pytest.mark.parametrize("fmt", ["docker-save", "oci-layout"])
def test_corrupt_layer_rejected_even_when_already_stored(store: ImageStore, tmp_path: Path,
                                                         fmt: str) -> None:
    layer = make_layer(tar_bytes([file("f", b"x" * 5000)]), "gzip")
    first = image([layer], tags=["a"])
    second = image([layer], tags=["b"], cmd=["other"])  # a new image sharing the layer
    store.load(write_docker_save(tmp_path / "first.tar", [first]))
    if fmt == "docker-save":
        archive = write_docker_save(tmp_path / "second.tar", [second])
        data = bytearray(archive.read_bytes())
        data[data.find(layer.data) + len(layer.data) // 2] ^= 0x40
        archive.write_bytes(bytes(data))
    else:
        archive = write_oci_layout(tmp_path / "second", [second])
        blob = archive / "blobs/sha256" / layer.digest.split(":")[1]
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0x40
        blob.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="mismatch|corrupt"):
        store.load(archive)
    assert [i.repo_tags for i in store.list()] == [("a:latest",)]


def test_holds_protect_images_in_use(store: ImageStore, tmp_path: Path) -> None:
    (img,) = store.load(write_docker_save(tmp_path / "s.tar",
                                          [image([small_layer("a")], tags=["web"])]))
    cid = "c" * 64
    assert store.hold("web", cid).id == img.id
    store.hold(img.id, "other-container")
    assert store.holders(img.id) == [cid, "other-container"]
    with pytest.raises(ImageConflictError, match=f"being used by container {cid[:12]}"):
        store.remove("web")
    assert store.prune(all=True).deleted == ()
    # forced: untagged, data kept for the containers
    assert store.remove("web", force=True) == ["Untagged: web:latest"]
    assert store.get(img.id).layer_dirs[0].is_dir()
    store.release(cid, img.id)
    assert store.prune().deleted == ()  # still held by the other one
    assert store.release_all_but({"unrelated"}) == ["other-container"]
    assert store.holders(img.id) == []
    assert store.prune().deleted == (img.id,)
    assert sorted(os.listdir(store.root / "refs")) == []


def test_hold_needs_the_image_and_a_sane_holder(store: ImageStore, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        store.hold("ghost", "c1")
    store.load(write_docker_save(tmp_path / "s.tar", [image([small_layer("a")], tags=["a"])]))
    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ImageError, match="invalid holder"):
            store.hold("a", bad)
    store.hold("a", "c1")
    store.release("c1")  # from every image
    assert store.holders(store.get("a").id) == []


# --- staging: layers unpacked side by side (what a registry pull does) --------------------


def _gz_layer(files: dict[str, bytes]) -> tuple[bytes, str, str]:
    """(gzip blob, its digest, the diff-id of its tar)."""
    import hashlib
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    blob = gzip.compress(raw, mtime=0)
    return (blob, "sha256:" + hashlib.sha256(blob).hexdigest(),
            "sha256:" + hashlib.sha256(raw).hexdigest())


def _source(blob: bytes, digest: str, diff_id: str, name: str):  # type: ignore[no-untyped-def]
    import io

    from pycompose.runtime.images import LayerSource

    return LayerSource(diff_id=diff_id, digest=digest, size=len(blob), name=name,
                       open=lambda: io.BytesIO(blob))


async def test_staging_unpacks_in_threads_and_commits_atomically(store: ImageStore,
                                                                  tmp_path: Path) -> None:
    import trio

    from pycompose.runtime.errors import ImageDigestError

    layers = [_gz_layer({f"l{n}/data.bin": os.urandom(300_000 + n)}) for n in range(4)]
    bad_blob, bad_digest, bad_diff = _gz_layer({"bad.txt": b"x" * 1000})
    corrupt = bytearray(bad_blob)
    corrupt[len(corrupt) // 2] ^= 0xFF
    config = empty_config().derive(diff_ids=[d for _, _, d in layers]).to_json()
    with store.staging() as staging:
        with pytest.raises(ImageDigestError, match="digest mismatch"):
            staging.unpack(_source(bytes(corrupt), bad_digest, bad_diff, "corrupt"))
        # A failed layer leaves its directory behind: later layers must not collide with it.
        done: list[bool] = []

        async def unpack(i: int, blob: bytes, digest: str, diff_id: str) -> None:
            done.append(await trio.to_thread.run_sync(
                staging.unpack, _source(blob, digest, diff_id, f"layer {i}")))

        async with trio.open_nursery() as nursery:
            for i, (b, g, d) in enumerate(layers):
                nursery.start_soon(unpack, i, b, g, d)
        assert done == [True] * 4
        assert not (store.root / "layers").exists() or not any((store.root / "layers").iterdir())
        assert store.list() == []  # nothing visible before commit
        image = staging.commit(config, ["app:staged"])
    assert store.get("app:staged").id == image.id
    for n, layer in enumerate(image.layers):
        assert (layer.path / f"l{n}/data.bin").stat().st_size == 300_000 + n
    assert not [p for p in (store.root / "tmp").iterdir()]


def test_staging_keeps_and_adopts_unpacked_layers(store: ImageStore, tmp_path: Path) -> None:
    blob, digest, diff_id = _gz_layer({"kept.txt": b"kept\n"})
    kept = tmp_path / "kept.layer"
    with store.staging() as staging:
        assert staging.unpack(_source(blob, digest, diff_id, "layer"))
        assert staging.keep(diff_id, kept)  # a pull broken off: the layer waits outside
    assert store.list() == []
    assert (kept / "diff" / "kept.txt").read_text() == "kept\n"
    config = empty_config().derive(diff_ids=[diff_id]).to_json()
    with store.staging() as staging:
        assert not staging.adopt("sha256:" + "0" * 64, kept)  # not that layer: dropped
    assert not kept.exists()
    with store.staging() as staging:
        assert staging.unpack(_source(blob, digest, diff_id, "layer"))
        assert staging.keep(diff_id, kept)
    with store.staging() as staging:
        assert staging.adopt(diff_id, kept)
        image = staging.commit(config, ["app:kept"])
    assert (image.layers[0].path / "kept.txt").read_text() == "kept\n"
    assert not kept.exists()


def test_staged_layers_are_flushed_before_the_store_names_them(
        store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Layers are not flushed one by one while others unpack; the commit flushes the
    filesystem once before it renames them into the store, and a kept layer is flushed
    before it is moved out."""
    from pycompose.runtime.images import store as store_module

    steps: list[str] = []
    real_syncfs = store_module._syncfs
    real_commit_layers = ImageStore._commit_layers

    def syncfs(path: Path) -> None:
        steps.append("flush")
        real_syncfs(path)

    def commit_layers(self: ImageStore, *args: object, **kwargs: object) -> None:
        steps.append("layers named")
        real_commit_layers(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "_syncfs", syncfs)
    monkeypatch.setattr(ImageStore, "_commit_layers", commit_layers)
    layers = [_gz_layer({f"f{n}.bin": os.urandom(300_000)}) for n in range(2)]
    config = empty_config().derive(diff_ids=[d for _, _, d in layers]).to_json()
    with store.staging() as staging:
        for n, (blob, digest, diff_id) in enumerate(layers):
            assert staging.unpack(_source(blob, digest, diff_id, f"layer {n}"))
        assert steps == []
        staging.commit(config, ["app:flushed"])
    assert steps[:2] == ["flush", "layers named"]

    steps.clear()
    blob, digest, diff_id = _gz_layer({"kept.txt": b"kept\n"})
    with store.staging() as staging:
        assert staging.unpack(_source(blob, digest, diff_id, "kept"))
        assert staging.keep(diff_id, tmp_path / "kept.layer")
    assert steps == ["flush"]


def test_staging_uncompressed_blob_is_its_own_diff_id(store: ImageStore) -> None:
    """An uncompressed layer is hashed once: its digest is its diff-id; a config whose
    diff-id differs is still refused, and so is a blob that differs from its digest."""
    from pycompose.runtime.errors import ImageDigestError

    gz, _, diff_id = _gz_layer({"plain.txt": b"plain\n" * 100})
    raw = gzip.decompress(gz)
    other = "sha256:" + "0" * 64
    with store.staging() as staging:
        with pytest.raises(ImageDigestError, match="uncompressed content vs diff_id"):
            staging.unpack(_source(raw, diff_id, other, "wrong diff-id"))
        with pytest.raises(ImageDigestError, match="digest mismatch"):
            staging.unpack(_source(raw + b"\0" * 512, diff_id, diff_id, "padded"))
        assert staging.unpack(_source(raw, diff_id, diff_id, "plain"))
        image = staging.commit(empty_config().derive(diff_ids=[diff_id]).to_json(), ["p:1"])
    assert (image.layers[0].path / "plain.txt").read_bytes() == b"plain\n" * 100


def test_staging_unpacks_a_blob_before_its_diff_id_is_known(store: ImageStore) -> None:
    """``unpack_blob`` (a pull that has no config yet) computes the diff-id, records which
    blob gave it, refuses a blob that differs from its digest, and drops a layer that is
    staged or stored already."""
    import io

    from pycompose.runtime.errors import ImageDigestError

    blob, digest, diff_id = _gz_layer({"early.txt": b"early\n" * 50})
    raw = gzip.decompress(blob)
    corrupt = bytearray(blob)
    corrupt[len(corrupt) // 2] ^= 0xFF
    assert store.blob_diff_id(digest) is None
    with store.staging() as staging:
        with pytest.raises(ImageDigestError, match="digest mismatch"):
            staging.unpack_blob("corrupt", lambda: io.BytesIO(bytes(corrupt)), digest=digest,
                                size=len(blob))
        assert store.blob_diff_id(digest) is None  # nothing recorded of a rejected blob
        assert staging.unpack_blob("gz", lambda: io.BytesIO(blob), digest=digest,
                                   size=len(blob)) == diff_id
        # The same layer as an uncompressed blob: read, verified, recorded, dropped.
        assert staging.unpack_blob("raw", lambda: io.BytesIO(raw), digest=diff_id,
                                   size=len(raw)) == diff_id
        assert len([p for p in staging._directory.iterdir() if p.is_dir()]) == 2  # the
        # corrupt one's directory (removed with the staging) and the first layer's
        image = staging.commit(empty_config().derive(diff_ids=[diff_id]).to_json(), ["e:1"])
    assert (image.layers[0].path / "early.txt").read_bytes() == b"early\n" * 50
    assert store.blob_diff_id(digest) == diff_id
    assert store.blob_diff_id(diff_id) == diff_id
    with store.staging() as staging:  # in the store: staged anyway, for the commit
        assert staging.unpack_blob("again", lambda: io.BytesIO(blob), digest=digest,
                                   size=len(blob)) == diff_id
        store.remove("e:1")  # the store's copy goes while the pull runs
        assert not store.has_layer(diff_id)
        image = staging.commit(empty_config().derive(diff_ids=[diff_id]).to_json(), ["e:2"])
    assert (image.layers[0].path / "early.txt").read_bytes() == b"early\n" * 50
    # A record that is not a digest (a torn write) reads as none.
    (store.root / "digests" / digest.partition(":")[2]).write_text("sha256:12")
    assert store.blob_diff_id(digest) is None
    assert store.blob_diff_id("sha512:" + "0" * 128) is None


def test_prune_forgets_the_blobs_of_removed_layers(store: ImageStore) -> None:
    import io

    kept_blob, kept_digest, kept_diff = _gz_layer({"kept.txt": b"kept\n"})
    gone_blob, gone_digest, gone_diff = _gz_layer({"gone.txt": b"gone\n"})
    with store.staging() as staging:
        for blob, digest in ((kept_blob, kept_digest), (gone_blob, gone_digest)):
            staging.unpack_blob("l", lambda b=blob: io.BytesIO(b), digest=digest,
                                size=len(blob))
        staging.commit(empty_config().derive(diff_ids=[kept_diff]).to_json(), ["k:1"])
    assert store.blob_diff_id(gone_digest) == gone_diff  # recorded, layer never committed
    store.prune()
    assert store.blob_diff_id(kept_digest) == kept_diff
    assert store.blob_diff_id(gone_digest) is None
    assert not (store.root / "digests" / gone_digest.partition(":")[2]).exists()


def test_adopt_that_loses_the_kept_layer_to_another_pull(store: ImageStore, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Another pull takes (or throws away) the kept layer between the check and the rename:
    not adopted, and the layer can still be unpacked in this staging."""
    import shutil

    from pycompose.runtime.images import store as store_module

    blob, digest, diff_id = _gz_layer({"kept.txt": b"kept\n"})
    kept = tmp_path / "kept.layer"
    with store.staging() as staging:
        assert staging.unpack(_source(blob, digest, diff_id, "layer"))
        assert staging.keep(diff_id, kept)
    real_rename = os.rename

    def rename_after_the_other(src: object, dst: object) -> None:
        if src == kept:
            shutil.rmtree(kept)  # the other pull got there first
        real_rename(src, dst)  # type: ignore[arg-type]

    with store.staging() as staging:
        monkeypatch.setattr(store_module.os, "rename", rename_after_the_other)
        assert not staging.adopt(diff_id, kept)
        monkeypatch.setattr(store_module.os, "rename", real_rename)
        assert staging.unpack(_source(blob, digest, diff_id, "layer"))
        image = staging.commit(empty_config().derive(diff_ids=[diff_id]).to_json(), ["a:1"])
    assert (image.layers[0].path / "kept.txt").read_text() == "kept\n"


def test_remove_takes_only_its_own_layers(store: ImageStore, busybox_rootfs: Path,
                                         tmp_path: Path) -> None:
    """``rm`` deletes the image's now-unused layers, not other unused ones (a running
    build's, the build cache's): those are prune's to remove."""
    base = busybox_layer(busybox_rootfs)
    top = make_layer(tar_bytes([file("x", b"x")]))
    (img,) = store.load(write_docker_save(tmp_path / "s.tar", [image([base, top],
                                                                      tags=["img"])]))
    work = tmp_path / "built"
    (work / "step").mkdir(parents=True)
    (work / "step" / "out.txt").write_text("a build step's output\n")
    loose = store.add_layer_from_dir(work)  # in no image (yet)
    assert store.remove("img") == ["Untagged: img:latest", f"Deleted: {img.id}"]
    assert not img.layer_dirs[0].exists()
    assert not img.layer_dirs[1].exists()
    assert os.listdir(store.root / "blobs/sha256") == []
    assert [hex_of(loose.diff_id)] == os.listdir(store.root / "layers")
    assert store.prune().reclaimed > 0  # prune takes it
    assert os.listdir(store.root / "layers") == []
