"""secrets and configs: content sources, targets, modes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pycompose.compose.model import FileObject, FileReference, FrozenDict, Project, Service
from pycompose.engine.files import FileObjectError, files_dir, prepare, remove


def test_secrets_and_configs(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_text("s3cret")
    svc = Service(name="app", image="x",
                  secrets=(FileReference(source="pw"),
                           FileReference(source="token", target="custom/tok", mode=0o400)),
                  configs=(FileReference(source="conf"),
                           FileReference(source="inline", target="/etc/app.ini")))
    project = Project(
        name="demo", working_dir=str(tmp_path), services=FrozenDict({"app": svc}),
        secrets=FrozenDict({"pw": FileObject(name="demo_pw", file="pw.txt"),
                            "token": FileObject(name="demo_token", environment="TOKEN")}),
        configs=FrozenDict({"conf": FileObject(name="demo_conf", content="a=1\n"),
                            "inline": FileObject(name="demo_inline", content="[x]\n")}),
        environment=FrozenDict({"TOKEN": "t0k"}))
    mounts = {m.target: m for m in prepare(tmp_path / "root", "c" * 64, project, svc)}
    assert set(mounts) == {"/run/secrets/pw", "/run/secrets/custom/tok", "/conf",
                           "/etc/app.ini"}
    assert all(m.read_only for m in mounts.values())
    assert Path(mounts["/run/secrets/pw"].source).read_text() == "s3cret"
    tok = Path(mounts["/run/secrets/custom/tok"].source)
    assert tok.read_text() == "t0k"
    assert stat.S_IMODE(tok.stat().st_mode) == 0o400
    assert stat.S_IMODE(Path(mounts["/conf"].source).stat().st_mode) == 0o444
    remove(tmp_path / "root", "c" * 64)
    assert not files_dir(tmp_path / "root", "c" * 64).exists()


def test_missing_sources_are_clear_errors(tmp_path: Path) -> None:
    svc = Service(name="app", image="x", secrets=(FileReference(source="pw"),))
    project = Project(name="demo", working_dir=str(tmp_path), services=FrozenDict({"app": svc}),
                      secrets=FrozenDict({"pw": FileObject(name="demo_pw", file="nope.txt")}))
    with pytest.raises(FileObjectError, match=r"secrets\.pw: cannot read .*nope\.txt"):
        prepare(tmp_path / "root", "c" * 64, project, svc)
