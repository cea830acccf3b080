"""Random tars full of ``..``, absolute names, symlinks and hard links: unpacking either
succeeds or raises ``ImageError``, and nothing outside the layer directory changes."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.layers import unpack_layer
from tests.helpers.oci import directory, file, hardlink, symlink, tar_bytes

COMPONENTS = ["a", "b", "..", ".", "outside", "victim", "etc"]


def paths(outside: str) -> st.SearchStrategy[str]:
    relative = st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=5).map("/".join)
    return st.one_of(
        relative,
        relative.map(lambda p: "/" + p),
        st.sampled_from([outside, outside + "/victim", "../outside/victim", "/", "../../.."]),
    )


def entries(outside: str) -> st.SearchStrategy[list[tuple[str, str, str]]]:
    entry = st.tuples(
        st.sampled_from(["file", "dir", "symlink", "hardlink"]), paths(outside), paths(outside),
    )
    return st.lists(entry, min_size=1, max_size=12)


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    out = {}
    for path in [root, *root.rglob("*")]:
        st_ = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        out[str(path)] = (st_.st_mode, st_.st_nlink, data)
    return out


# The "outside" directory has a fixed absolute path per run so that entries can aim at it.
BASE = Path(tempfile.gettempdir()) / f"pc-imgfuzz-{os.getpid()}"
OUTSIDE = BASE / "outside"


@pytest.fixture(scope="module", autouse=True)
def base_dir() -> Iterator[Path]:
    BASE.mkdir()
    yield BASE
    shutil.rmtree(BASE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(str(OUTSIDE)))
def test_random_tars_never_write_outside(spec: list[tuple[str, str, str]]) -> None:
    OUTSIDE.mkdir(exist_ok=True)
    (OUTSIDE / "victim").write_text("original\n")
    with tempfile.TemporaryDirectory(dir=BASE) as work:
        layer = Path(work) / "layer"
        layer.mkdir()
        before = snapshot(BASE)
        items = []
        for kind, name, target in spec:
            if kind == "file":
                items.append(file(name, b"pwned"))
            elif kind == "dir":
                items.append(directory(name))
            elif kind == "symlink":
                items.append(symlink(name, target))
            else:
                items.append(hardlink(name, target))
        with contextlib.suppress(ImageError):
            unpack_layer(io.BytesIO(tar_bytes(items)), layer, source="fuzz")
        after = snapshot(BASE)
        # nothing appeared, vanished or changed outside the layer directory
        assert {k: v for k, v in after.items() if not k.startswith(str(layer))} == {
            k: v for k, v in before.items() if not k.startswith(str(layer))
        }
        for path in layer.rglob("*"):
            if path.is_symlink():
                continue
            assert os.path.realpath(path).startswith(os.path.realpath(layer))
