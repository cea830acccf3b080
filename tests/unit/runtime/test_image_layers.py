"""Layer unpacking against hostile and odd tars, whiteouts, and directory → tar."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.layers import UnpackResult, unpack_layer, write_layer_tar
from tests.helpers.oci import (
    device,
    directory,
    fifo,
    file,
    hardlink,
    opaque,
    symlink,
    tar_bytes,
    whiteout,
)

IS_ROOT = os.geteuid() == 0


def unpack(tmp_path: Path, entries: list, name: str = "layer") -> tuple[Path, UnpackResult]:  # type: ignore[type-arg]
    dest = tmp_path / name
    dest.mkdir()
    result = unpack_layer(io.BytesIO(tar_bytes(entries)), dest, source="test.tar")
    return dest, result


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the layer that must stay untouched."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "victim").write_text("original\n")
    return path


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_plain_files_dirs_links_and_modes(tmp_path: Path) -> None:
    dest, result = unpack(tmp_path, [
        directory("etc"),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mode=0o644),
        file("bin/tool", b"#!/bin/sh\n", mode=0o4755),  # parent made implicitly
        symlink("bin/sh", "/bin/busybox"),
        hardlink("bin/tool2", "bin/tool"),
        directory("ro", mode=0o555),
        file("ro/inside", b"x"),
        fifo("run/fifo"),
    ])
    assert (dest / "etc/passwd").read_bytes() == b"root:x:0:0::/root:/bin/sh\n"
    assert stat.S_IMODE((dest / "bin/tool").stat().st_mode) == 0o4755  # setuid kept
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert (dest / "bin/tool2").stat().st_ino == (dest / "bin/tool").stat().st_ino
    assert stat.S_IMODE((dest / "ro").stat().st_mode) == 0o555  # applied after its children
    assert (dest / "ro/inside").read_bytes() == b"x"
    assert stat.S_ISFIFO((dest / "run/fifo").lstat().st_mode)
    assert (dest / "etc/passwd").stat().st_mtime == 1_700_000_000
    assert result.size == len(b"root:x:0:0::/root:/bin/sh\n") + len(b"#!/bin/sh\n") + 1


@pytest.mark.root
def test_numeric_owners_and_setuid_survive_chown(tmp_path: Path) -> None:
    dest, _ = unpack(tmp_path, [
        file("app/su", b"x", mode=0o4750, uid=1000, gid=2000),
        directory("home/app", uid=1000, gid=1000, mode=0o700),
        symlink("app/link", "su"),
    ])
    st = (dest / "app/su").stat()
    assert (st.st_uid, st.st_gid) == (1000, 2000)
    assert stat.S_IMODE(st.st_mode) == 0o4750
    assert (dest / "home/app").stat().st_uid == 1000


@pytest.mark.root
def test_owners_follow_the_tar_in_a_setgid_layer_root(tmp_path: Path) -> None:
    """An entry made by the unpack is not chowned when the tar's owner is ours; under a
    setgid root it would inherit the root's group, so there every entry is chowned."""
    dest = tmp_path / "layer"
    dest.mkdir()
    os.chown(dest, 0, 4321)
    os.chmod(dest, 0o2755)
    unpack_layer(io.BytesIO(tar_bytes([
        directory("d"), file("d/f", b"x"), symlink("d/l", "f"), fifo("d/p"),
        file("top", b"y"),
    ])), dest, source="test.tar")
    for name in ("d", "d/f", "d/l", "d/p", "top"):
        st = (dest / name).lstat()
        assert (st.st_uid, st.st_gid) == (0, 0), name


@pytest.mark.root
def test_an_entry_kept_from_earlier_in_the_tar_gets_the_later_owner(tmp_path: Path) -> None:
    dest, _ = unpack(tmp_path, [
        directory("d", uid=1000, gid=1000), file("d/f", b"1", uid=1000, gid=1000),
        directory("d"),  # the same directory again, now root's: kept, and chowned
        file("d/f", b"2"),  # replaced: made again, root's
    ])
    for name in ("d", "d/f"):
        st = (dest / name).lstat()
        assert (st.st_uid, st.st_gid) == (0, 0), name
    assert (dest / "d/f").read_bytes() == b"2"


def test_dotdot_escape_is_refused(tmp_path: Path, outside: Path) -> None:
    with pytest.raises(ImageError, match=r"\.\./outside/evil.*escapes the layer"):
        unpack(tmp_path, [file("../outside/evil", b"pwned")])
    assert tree(outside) == ["victim"]


def test_inner_dotdot_that_stays_inside_is_cleaned(tmp_path: Path) -> None:
    dest, _ = unpack(tmp_path, [file("a/b/../c", b"ok")])
    assert (dest / "a/c").read_bytes() == b"ok"


def test_absolute_names_stay_inside_the_layer(tmp_path: Path, outside: Path) -> None:
    dest, _ = unpack(tmp_path, [file(f"{outside}/victim", b"pwned")])
    assert (outside / "victim").read_text() == "original\n"
    assert (dest / str(outside).lstrip("/") / "victim").read_bytes() == b"pwned"


def test_write_through_absolute_symlink_lands_inside(tmp_path: Path, outside: Path) -> None:
    dest, _ = unpack(tmp_path, [
        symlink("evil", str(outside)),
        file("evil/victim", b"pwned"),
        file("evil/new", b"pwned"),
    ])
    assert (outside / "victim").read_text() == "original\n"
    assert tree(outside) == ["victim"]
    # resolved inside the layer root, as a chrooted unpack would
    inside = dest / str(outside).lstrip("/")
    assert (inside / "victim").read_bytes() == b"pwned"
    assert os.readlink(dest / "evil") == str(outside)


def test_write_through_relative_symlink_climbing_out(tmp_path: Path, outside: Path) -> None:
    dest, _ = unpack(tmp_path, [
        symlink("a/up", "../../../../../../../.."),
        file("a/up/outside/victim", b"pwned"),
        symlink("b", "a/up"),  # a chain of symlinks
        file("b/chained", b"pwned"),
    ])
    assert (outside / "victim").read_text() == "original\n"
    assert (dest / "outside/victim").read_bytes() == b"pwned"
    assert (dest / "chained").read_bytes() == b"pwned"
    assert not (tmp_path / "chained").exists()


def test_final_symlink_is_replaced_not_followed(tmp_path: Path, outside: Path) -> None:
    dest, _ = unpack(tmp_path, [
        symlink("victim", str(outside / "victim")),
        file("victim", b"pwned"),
    ])
    assert (outside / "victim").read_text() == "original\n"
    assert not (dest / "victim").is_symlink()
    assert (dest / "victim").read_bytes() == b"pwned"


def test_directory_entry_over_symlink_replaces_it(tmp_path: Path, outside: Path) -> None:
    dest, _ = unpack(tmp_path, [
        symlink("d", str(outside)),
        directory("d", mode=0o700),
        file("d/x", b"1"),
    ])
    assert (dest / "d").is_dir()
    assert not (dest / "d").is_symlink()
    assert tree(outside) == ["victim"]


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="too many levels of symbolic links"):
        unpack(tmp_path, [symlink("a", "b"), symlink("b", "a"), file("a/x", b"")])


def test_hardlink_outside_the_layer_is_refused(tmp_path: Path, outside: Path) -> None:
    with pytest.raises(ImageError, match="not a file of this layer"):
        unpack(tmp_path, [hardlink("stolen", str(outside / "victim"))])
    with pytest.raises(ImageError, match="escapes the layer"):
        unpack(tmp_path, [hardlink("stolen", "../outside/victim")], name="layer2")
    assert (outside / "victim").stat().st_nlink == 1


def test_hardlink_through_symlink_to_outside_is_refused(tmp_path: Path, outside: Path) -> None:
    with pytest.raises(ImageError, match="not a file of this layer"):
        unpack(tmp_path, [symlink("out", str(outside)), hardlink("stolen", "out/victim")])
    assert (outside / "victim").stat().st_nlink == 1


def test_hardlink_to_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a regular file"):
        unpack(tmp_path, [directory("d"), hardlink("l", "d")])


def test_device_nodes_are_skipped(tmp_path: Path) -> None:
    dest, result = unpack(tmp_path, [
        device("dev/null", "c", 1, 3),
        device("dev/sda", "b", 8, 0),
        file("ok", b"1"),
    ])
    assert not (dest / "dev/null").exists()
    assert not (dest / "dev/sda").exists()
    assert any("dev/null: device node" in s for s in result.skipped)
    assert (dest / "ok").exists()


def test_entry_under_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="is not a directory"):
        unpack(tmp_path, [file("f", b"x"), file("f/g", b"y")])


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    dest, _ = unpack(tmp_path, [
        directory("x"), file("x/inner", b"1"),
        file("x", b"now a file"),
        file("y", b"a file"), directory("y"), file("y/z", b"2"),
    ])
    assert (dest / "x").read_bytes() == b"now a file"
    assert (dest / "y/z").read_bytes() == b"2"


def test_truncated_tar_is_an_image_error(tmp_path: Path) -> None:
    data = tar_bytes([file("big", b"x" * 100_000)])
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(ImageError, match="corrupt or truncated"):
        unpack_layer(io.BytesIO(data[:50_000]), dest, source="t.tar")


def test_garbage_is_an_image_error(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(ImageError, match="t.tar"):
        unpack_layer(io.BytesIO(b"\x07" * 2048), dest, source="t.tar")


def test_user_xattrs_kept_trusted_skipped(tmp_path: Path) -> None:
    entries = [file("f", b"x", xattrs={"user.note": b"hi", "trusted.overlay.redirect": b"/x"})]
    try:
        dest, result = unpack(tmp_path, entries)
    except ImageError as exc:  # pragma: no cover - filesystem without user xattrs
        pytest.skip(str(exc))
    if "f: xattr user.note" not in " ".join(result.skipped):
        assert os.getxattr(dest / "f", "user.note") == b"hi"
    if IS_ROOT:
        with pytest.raises(OSError, match="No data"):
            os.getxattr(dest / "f", "trusted.overlay.redirect")
    assert any("trusted.overlay.redirect" in s for s in result.skipped)


@pytest.mark.root
def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    dest, result = unpack(tmp_path, [
        directory("etc"),
        whiteout("etc/motd"),
        directory("data"),
        opaque("data"),
        file("data/new", b"n"),
        whiteout("gone-dir"),
        file(".wh..wh.plnk/123", b""),  # aufs bookkeeping, ignored
    ])
    st = (dest / "etc/motd").lstat()
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == os.makedev(0, 0)
    assert stat.S_ISCHR((dest / "gone-dir").lstat().st_mode)
    assert os.getxattr(dest / "data", "trusted.overlay.opaque") == b"y"
    assert (dest / "data/new").read_bytes() == b"n"
    assert not (dest / "etc/.wh.motd").exists()
    assert not (dest / "data/.wh..wh..opq").exists()


@pytest.mark.root
def test_whiteout_name_cannot_escape(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="invalid whiteout"):
        unpack(tmp_path, [file("a/.wh...", b"")])


@pytest.mark.root
def test_dir_to_tar_roundtrip_with_whiteouts_and_hardlinks(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc/motd", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (upper / "data").mkdir()
    os.setxattr(upper / "data", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "data", "trusted.overlay.origin", b"junk")  # overlay bookkeeping
    (upper / "data/new").write_bytes(b"new")
    os.link(upper / "data/new", upper / "data/new-link")
    os.symlink("/nowhere", upper / "dangling")
    os.chmod(upper / "data/new", 0o4711)

    buf = io.BytesIO()
    write_layer_tar(upper, buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {
        "data", "data/.wh..wh..opq", "data/new", "data/new-link", "dangling", "etc", "etc/.wh.motd",
    }
    assert members["etc/.wh.motd"].isreg()
    assert members["data/new-link"].islnk()
    assert members["data/new-link"].linkname == "data/new"
    assert members["dangling"].issym()
    assert members["dangling"].linkname == "/nowhere"
    assert not any("overlay" in k for k in members["data"].pax_headers)

    dest = tmp_path / "again"
    dest.mkdir()
    unpack_layer(io.BytesIO(buf.getvalue()), dest, source="roundtrip")
    assert stat.S_ISCHR((dest / "etc/motd").lstat().st_mode)
    assert os.getxattr(dest / "data", "trusted.overlay.opaque") == b"y"
    assert (dest / "data/new-link").stat().st_ino == (dest / "data/new").stat().st_ino
    assert stat.S_IMODE((dest / "data/new").stat().st_mode) == 0o4711


@pytest.mark.root
def test_dir_with_redirect_xattr_is_refused(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(ImageError, match="redirect_dir=off"):
        write_layer_tar(upper, io.BytesIO())


def test_written_layers_have_whole_second_mtimes_and_no_pax_records(tmp_path: Path) -> None:
    """As Docker's: a sub-second mtime is truncated, so a plain entry needs no PAX header
    (one 512-byte header per entry, not two)."""
    upper = tmp_path / "upper"
    (upper / "dir").mkdir(parents=True)
    (upper / "dir" / "file").write_text("x")
    os.symlink("file", upper / "dir" / "link")
    for path in (upper / "dir" / "file", upper / "dir"):
        os.utime(path, ns=(1_700_000_000_123_456_789,) * 2)
    buf = io.BytesIO()
    write_layer_tar(upper, buf)
    raw = buf.getvalue()
    headers = [raw[i:i + 512] for i in range(0, len(raw), 512)]
    assert not [h for h in headers if h[156:157] in (b"x", b"g")]  # no PAX headers
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"dir", "dir/file", "dir/link"}
    assert members["dir/file"].mtime == 1_700_000_000
    assert members["dir"].mtime == 1_700_000_000
