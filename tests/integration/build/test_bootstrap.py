"""Base images without a registry: busybox end to end, debian's post-processing on a fake
root (debootstrap itself talks to a Debian mirror: run with PYCOMPOSE_TEST_DEBOOTSTRAP=1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycompose.runtime.bootstrap import (
    _clean_volatile,
    _configure_debian,
    _release_epoch,
    _slimify,
    bootstrap,
    clamp_mtimes,
    host_debian_mirror,
    parse_name,
)
from pycompose.runtime.errors import ImageError
from pycompose.runtime.images import ImageStore
from tests.helpers.images import busybox_available


def test_names() -> None:
    assert parse_name("busybox") == ("busybox", "", False)
    assert parse_name("debian:bookworm-slim") == ("debian", "bookworm", True)
    assert parse_name("docker.io/library/debian:12") == ("debian", "bookworm", False)
    with pytest.raises(ImageError, match="known names are"):
        parse_name("redis:7")


def test_busybox_is_reproducible(tmp_path: Path) -> None:
    if not busybox_available():
        pytest.skip("needs Debian's busybox-static")
    one = bootstrap(ImageStore(tmp_path / "a" / "images"), "busybox")
    two = bootstrap(ImageStore(tmp_path / "b" / "images"), "busybox")
    assert one.id == two.id
    assert one.repo_tags == ("busybox:latest",)
    root = one.layers[0].path
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    assert (root / "etc" / "passwd").read_text().startswith("root:x:0:0:")
    assert (root / "tmp").stat().st_mode & 0o1777 == 0o1777
    assert one.config.config.cmd == ("sh",)


def test_host_mirror(tmp_path: Path) -> None:
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.lan/debian/\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.lan/debian-security\nSuites: bookworm-security\n")
    assert host_debian_mirror(tmp_path) == ("http://mirror.lan/debian",
                                            "http://mirror.lan/debian-security")
    assert host_debian_mirror(tmp_path / "none")[0] == "http://deb.debian.org/debian"


def test_debian_post_processing(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    for d in ("etc/apt", "var/lib/apt/lists/partial", "var/log/apt", "usr/share/doc/bash",
              "usr/share/locale/de/LC_MESSAGES", "usr/share/man/man1", "tmp", "dev"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease").write_text(
        "Origin: Debian\nDate: Sat, 10 May 2025 09:00:00 UTC\n")
    (root / "var/log/dpkg.log").write_text("install ...\n")
    (root / "var/log/apt/history.log").write_text("x\n")
    (root / "etc/hostname").write_text("builder\n")
    (root / "etc/shadow").write_text("root:*:20123:0:99999:7:::\n")
    (root / "etc/apt/sources.list").write_text("deb http://m/debian bookworm main\n")
    (root / "usr/share/doc/bash/copyright").write_text("c")
    (root / "usr/share/doc/bash/README").write_text("r")
    (root / "usr/share/locale/de/LC_MESSAGES/bash.mo").write_text("m")
    (root / "usr/share/man/man1/bash.1.gz").write_text("m")
    (root / "dev/null").write_text("")
    epoch = _release_epoch(root, "bookworm")
    assert epoch == 1746867600
    _configure_debian(root, "bookworm", "http://m/debian", "http://m/debian-security", True)
    assert _slimify(root) == 3
    _clean_volatile(root, epoch)
    clamp_mtimes(root, epoch)
    assert not (root / "etc/apt/sources.list").exists()
    sources = (root / "etc/apt/sources.list.d/debian.sources").read_text()
    assert "Suites: bookworm bookworm-updates" in sources
    assert "Suites: bookworm-security" in sources
    assert (root / "usr/share/doc/bash/copyright").exists()
    assert not (root / "usr/share/doc/bash/README").exists()
    assert not (root / "usr/share/locale/de").exists()
    assert not list((root / "var/log").rglob("*.log"))
    assert (root / "var/lib/apt/lists/partial").is_dir()
    assert not list((root / "var/lib/apt/lists").glob("*Release"))
    assert not (root / "etc/hostname").exists()
    assert not list((root / "dev").iterdir())
    assert (root / "etc/shadow").read_text() == f"root:*:{epoch // 86400}:0:99999:7:::\n"
    assert max(p.lstat().st_mtime for p in root.rglob("*")) <= epoch


@pytest.mark.root
@pytest.mark.slow
def test_debootstrap_slim_is_reproducible(tmp_path: Path) -> None:
    if os.environ.get("PYCOMPOSE_TEST_DEBOOTSTRAP") != "1":
        pytest.skip("talks to a Debian mirror; set PYCOMPOSE_TEST_DEBOOTSTRAP=1 to run")
    one = bootstrap(ImageStore(tmp_path / "a" / "images"), "debian:bookworm-slim")
    two = bootstrap(ImageStore(tmp_path / "b" / "images"), "debian:bookworm-slim")
    assert one.config.diff_ids == two.config.diff_ids
    assert one.id == two.id
    assert not (one.layers[0].path / "usr/share/doc/bash/README").exists()
