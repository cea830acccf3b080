"""Service volumes: bind vs named vs anonymous, options, long syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.model import BindOptions, ServiceVolume, TmpfsOptions, VolumeOptions

from .loader_helpers import load, load_errors, roundtrip

HEADER = "volumes:\n  data: {}\nservices:\n  web:\n    image: a\n    volumes:\n"


def volumes(tmp_path: Path, *items: str) -> tuple[ServiceVolume, ...]:
    text = HEADER + "".join(f"      - {item}\n" for item in items)
    return load(tmp_path, text).services["web"].volumes


def test_anonymous(tmp_path: Path) -> None:
    assert volumes(tmp_path, "/cache") == (ServiceVolume(type="volume", target="/cache"),)


def test_named_read_only(tmp_path: Path) -> None:
    assert volumes(tmp_path, "data:/var/lib/data:ro") == (
        ServiceVolume(type="volume", source="data", target="/var/lib/data", read_only=True),)


def test_relative_bind_is_resolved(tmp_path: Path) -> None:
    (vol,) = volumes(tmp_path, "./src:/app")
    assert vol == ServiceVolume(type="bind", source=str(tmp_path / "src"), target="/app",
                                bind=BindOptions(create_host_path=True))


def test_home_bind_uses_home_from_environment(tmp_path: Path) -> None:
    (vol,) = volumes(tmp_path, "~/cfg:/cfg:z")
    assert vol.source == "/home/user/cfg"
    assert vol.bind == BindOptions(create_host_path=True, selinux="z")


def test_absolute_bind_with_propagation(tmp_path: Path) -> None:
    (vol,) = volumes(tmp_path, "/srv:/srv:ro,rshared")
    assert vol.read_only
    assert vol.bind is not None
    assert vol.bind.propagation == "rshared"


def test_nocopy(tmp_path: Path) -> None:
    (vol,) = volumes(tmp_path, "data:/d:nocopy")
    assert vol.volume == VolumeOptions(nocopy=True)


def test_long_syntax(tmp_path: Path) -> None:
    (bind, named, tmpfs) = volumes(
        tmp_path,
        "{type: bind, source: ./x, target: /x, bind: {create_host_path: true}}",
        "{type: volume, source: data, target: /d, volume: {nocopy: true, subpath: sub}}",
        "{type: tmpfs, target: /t, tmpfs: {size: 64m, mode: 0o1777}}",
    )
    assert bind.source == str(tmp_path / "x")
    assert bind.bind == BindOptions(create_host_path=True)
    assert named.volume == VolumeOptions(nocopy=True, subpath="sub")
    assert tmpfs.tmpfs == TmpfsOptions(size=64 << 20, mode=0o1777)


@pytest.mark.parametrize(("item", "message"), [
    ('"a:b:c:d"', 'invalid volume "a:b:c:d": too many colons'),
    ('"data:/d:bogus"', 'invalid volume "data:/d:bogus": unknown option "bogus"'),
    ('"data:relative"', 'invalid volume target "relative" (must be absolute)'),
    ("{type: bind, target: /x}", 'a bind mount needs a "source"'),
])
def test_bad_volumes(tmp_path: Path, item: str, message: str) -> None:
    errors = load_errors(tmp_path, HEADER + f"      - /ok\n      - {item}\n")
    assert errors == [f"compose.yaml: services.web.volumes[1]: {message}"]


def test_undeclared_named_volume(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, "services:\n  web:\n    image: a\n    volumes: [db:/x]\n")
    assert errors == ['compose.yaml: services.web.volumes[0]: refers to undefined volume "db"']


def test_roundtrip(tmp_path: Path) -> None:
    project = load(tmp_path, HEADER + "      - data:/d:ro\n      - ./s:/s:z\n      - /anon\n"
                   "      - {type: tmpfs, target: /t, tmpfs: {size: 1m}}\n")
    assert roundtrip(tmp_path, project).services == project.services


def test_top_level_volume_names(tmp_path: Path) -> None:
    project = load(tmp_path, """
        name: proj
        services: {web: {image: a}}
        volumes:
          plain: {}
          named: {name: custom}
          ext: {external: true}
          legacy: {external: {name: old}}
    """)
    names = {k: (v.name, v.external) for k, v in project.volumes.items()}
    assert names == {"plain": ("proj_plain", False), "named": ("custom", False),
                     "ext": ("ext", True), "legacy": ("old", True)}
