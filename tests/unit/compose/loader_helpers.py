"""Helpers for the loader tests: write inline YAML into tmp_path and load it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pycompose.compose.errors import ComposeError, ComposeFileError, ComposeFileErrors
from pycompose.compose.loader import LoadOptions, load_project
from pycompose.compose.model import Project
from pycompose.compose.serialize import dump_yaml, project_to_dict, to_output


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def options(directory: Path, *files: str, **kwargs: Any) -> LoadOptions:
    kwargs.setdefault("environ", {"HOME": "/home/user"})
    return LoadOptions(working_dir=str(directory), files=list(files) or ["compose.yaml"],
                       **kwargs)


def load(directory: Path, text: str | None = None, *files: str, **kwargs: Any) -> Project:
    """Write ``text`` as compose.yaml (when given) and load it."""
    if text is not None:
        write(directory, "compose.yaml", text)
    return load_project(options(directory, *files, **kwargs))


def load_errors(directory: Path, text: str, **kwargs: Any) -> list[str]:
    """The error lines the loader reports for ``text`` (it must fail)."""
    with pytest.raises(ComposeError) as info:
        load(directory, text, **kwargs)
    exc = info.value
    if isinstance(exc, ComposeFileErrors):
        return [str(e) for e in exc.errors]
    assert isinstance(exc, ComposeFileError), exc
    return [str(exc)]


def roundtrip(directory: Path, project: Project) -> Project:
    """Dump ``project`` as config YAML, load it again (same directory)."""
    text = dump_yaml(to_output(project_to_dict(project)))
    (directory / "roundtrip.yaml").write_text(text)
    return load_project(LoadOptions(working_dir=str(directory), files=["roundtrip.yaml"],
                                    project_directory=project.working_dir,
                                    profiles=list(project.profiles),
                                    environ={"HOME": "/home/user"}))
