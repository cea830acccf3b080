"""``pycompose image ...`` against a temporary state root."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from pycompose.cli.commands.image import human_since, human_size
from pycompose.cli.main import main
from tests.helpers.images import make_rootfs_tar
from tests.helpers.oci import busybox_layer, image, write_oci_archive


@pytest.fixture
def rootfs_tar(busybox_rootfs: Path, tmp_path: Path) -> Path:
    return make_rootfs_tar(busybox_rootfs, tmp_path / "rootfs.tar")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["image", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_ls_inspect_tag_rm(state_root: Path, rootfs_tar: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "import", "-c", 'CMD ["sh"]', "-m", "hello", str(rootfs_tar),
                       "bb:1")
    assert code == 0
    image_id = out.strip()
    assert image_id.startswith("sha256:")
    assert (state_root / "images/blobs/sha256" / image_id[7:]).is_file()

    assert run(capsys, "tag", "bb:1", "localhost:5000/bb")[0] == 0
    code, out, _ = run(capsys, "ls")
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert sorted(line.split()[:3] for line in lines[1:]) == [
        ["bb", "1", image_id[7:19]], ["localhost:5000/bb", "latest", image_id[7:19]]]

    code, out, _ = run(capsys, "ls", "--format", "json", "bb")
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["Repository"] == "bb"
    assert record["Tag"] == "1"
    assert record["Size"].endswith("MB")
    assert run(capsys, "ls", "-q")[1] == image_id[7:19] + "\n"
    assert run(capsys, "ls", "-q", "--no-trunc", "bb:2")[1] == ""

    code, out, _ = run(capsys, "inspect", "bb:1")
    (doc,) = json.loads(out)
    assert doc["Id"] == image_id
    assert doc["Config"]["Cmd"] == ["sh"]
    assert doc["Comment"] == "hello"
    assert sorted(doc["RepoTags"]) == ["bb:1", "localhost:5000/bb:latest"]
    assert len(doc["RootFS"]["Layers"]) == 1

    code, out, err = run(capsys, "rm", "bb:1", "nothere")
    assert code == 1
    assert out == "Untagged: bb:1\n"
    assert "No such image: nothere" in err
    code, out, _ = run(capsys, "rm", "localhost:5000/bb")
    assert out == f"Untagged: localhost:5000/bb:latest\nDeleted: {image_id}\n"
    assert run(capsys, "ls", "-q")[1] == ""


def test_load_and_prune(state_root: Path, busybox_rootfs: Path, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    # no whiteouts in this image, so that the test also runs without root
    archive = write_oci_archive(tmp_path / "bb2.tar",
                                [image([busybox_layer(busybox_rootfs)], tags=["bb2"])])
    code, out, _ = run(capsys, "load", "-i", str(archive))
    assert (code, out) == (0, "Loaded image: bb2:latest\n")

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = run(capsys, "prune", "-a")
    assert "Are you sure" in out
    assert run(capsys, "ls", "-q")[1] != ""  # declined: nothing removed

    code, out, _ = run(capsys, "prune", "-a", "-f")
    assert "untagged: bb2:latest" in out
    assert "Total reclaimed space: 1.98MB" in out
    assert run(capsys, "ls", "-q")[1] == ""
    assert list((state_root / "images/layers").iterdir()) == []


def test_prune_removes_layers_failed_pulls_kept(state_root: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A pull the registry broke off keeps its verified layers in downloads/ for a retry;
    `image prune` removes them (and what dead pulls left) and counts their size."""
    downloads = state_root / "downloads"
    kept = downloads / ("ab" * 32 + ".layer")
    (kept / "diff").mkdir(parents=True)
    (kept / "diff" / "f").write_bytes(b"x" * 5000)
    (kept / "layer.json").write_text('{"diff_id": "sha256:' + "ab" * 32 + '", "size": 5000}')
    (downloads / "cd.partial").write_bytes(b"half")  # its pull died: no lock held
    (downloads / "digests.json").write_text("{}")    # what pulls recorded: stays
    code, out, _ = run(capsys, "prune", "-f")
    assert code == 0
    assert out == "Total reclaimed space: 5kB\n"
    assert sorted(p.name for p in downloads.iterdir()) == ["digests.json"]


def test_errors_are_one_line(state_root: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar" * 100)
    code, _, err = run(capsys, "load", "-i", str(junk))
    assert code == 1
    assert err.startswith("error: ")
    assert "not a tar archive" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "import", str(junk), "Bad:Name")
    assert code == 1
    assert "invalid reference format" in err


def test_human_formats() -> None:
    from datetime import UTC, datetime, timedelta

    assert human_size(0) == "0B"
    assert human_size(1982531) == "1.98MB"
    assert human_size(1234) == "1.23kB"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert human_since(now - timedelta(hours=3), now) == "3 hours ago"
    assert human_since(now - timedelta(days=400), now) == "13 months ago"
    assert human_since(now - timedelta(days=800), now) == "2 years ago"


def test_import_from_stdin_history_and_filters(state_root: Path, rootfs_tar: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(
        gzip.compress(rootfs_tar.read_bytes()))))
    code, out, _ = run(capsys, "import", "-", "piped:1")
    assert code == 0
    image_id = out.strip()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(rootfs_tar.read_bytes())))
    code, out, _ = run(capsys, "import", "-c", "CMD sh", "-")  # unnamed: dangling
    assert code == 0
    dangling_id = out.strip()

    code, out, _ = run(capsys, "history", "piped:1", "--format", "json")
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["Comment"] == "Imported from -"
    assert record["Size"].endswith("MB")
    assert record["DiffID"].startswith("sha256:")
    code, out, _ = run(capsys, "history", "piped:1")
    assert out.splitlines()[0].split() == ["CREATED", "CREATED", "BY", "SIZE", "COMMENT"]

    assert run(capsys, "ls", "-q", "--filter", "dangling=true")[1] == dangling_id[7:19] + "\n"
    assert run(capsys, "ls", "-q", "--filter", "dangling=false")[1] == image_id[7:19] + "\n"
    assert run(capsys, "ls", "-q", "--filter", "reference=pip*")[1] == image_id[7:19] + "\n"
    assert run(capsys, "ls", "-q", "--filter", "reference=other")[1] == ""
    code, _, err = run(capsys, "ls", "--filter", "label=x")
    assert code == 1
    assert "use dangling=true|false or reference=PATTERN" in err


def test_save_to_file(state_root: Path, rootfs_tar: Path, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    from pycompose.runtime.images import ImageStore

    code, out, _ = run(capsys, "import", str(rootfs_tar), "bb:1")
    image_id = out.strip()
    assert run(capsys, "save", "-o", str(tmp_path / "bb.tar"), "bb:1")[0] == 0
    (loaded,) = ImageStore(tmp_path / "other").load(tmp_path / "bb.tar")
    assert loaded.id == image_id
    assert loaded.repo_tags == ("bb:1",)


def test_save_to_stdout(state_root: Path, rootfs_tar: Path, tmp_path: Path,
                        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from pycompose.runtime.images import ImageStore

    image = ImageStore(state_root / "images").import_rootfs(rootfs_tar, "bb:1")
    assert main(["image", "save", "bb:1"]) == 0  # stdout is not a terminal under pytest
    (tmp_path / "out.tar").write_bytes(capsysbinary.readouterr().out)
    (loaded,) = ImageStore(tmp_path / "other").load(tmp_path / "out.tar")
    assert loaded.id == image.id


def test_prune_waits_for_a_running_build(state_root: Path, busybox_rootfs: Path,
                                         tmp_path: Path) -> None:
    """A build holds the build-cache lock shared; image prune takes it exclusive, so the
    layers a build has made (not yet in an image) are not pruned under it."""
    import subprocess
    import sys

    from pycompose.runtime.build.cache import build_lock

    archive = write_oci_archive(tmp_path / "bb3.tar",
                                [image([busybox_layer(busybox_rootfs)], tags=["bb3"])])
    assert main(["image", "load", "-q", "-i", str(archive)]) == 0
    with build_lock(state_root, exclusive=False):
        pruning = subprocess.Popen([sys.executable, "-m", "pycompose", "image", "prune",
                                    "-a", "-f"], stdout=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            pruning.wait(0.5)  # waiting for the build
        assert list((state_root / "images/layers").iterdir())
    out, _ = pruning.communicate(timeout=10)
    assert pruning.returncode == 0
    assert "untagged: bb3:latest" in out
    assert list((state_root / "images/layers").iterdir()) == []
