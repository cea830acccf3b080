"""The resolved model round-trips through plain data exactly, every attribute:
``project_from_record(json(project_to_record(p))) == p``.

Over the conformance kit's valid cases and the example stacks (load -> record ->
JSON -> build -> equal), over generated models (every field of every dataclass,
driven by the type hints), and for the loader's own record (what ``up`` sends
the engine without building the model here).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycompose.compose import model
from pycompose.compose.build import project_from_record
from pycompose.compose.loader import LoadOptions, load_project, load_record
from pycompose.compose.model import FrozenDict, Project, Service, freeze
from pycompose.compose.serialize import project_to_record

from .loader_helpers import load, write

KIT = Path("/work/shared/conformance")
STACKS = Path(__file__).resolve().parents[3] / "examples" / "stacks"


def _cases() -> list[Any]:
    cases = []
    manifest_path = KIT / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        for case in manifest["cases"]:
            if case.get("valid"):
                env = {**manifest["runner_env"], **case.get("env", {})}
                cases.append(pytest.param(KIT / case["dir"], case["files"], env,
                                          case.get("active_profiles") or (), id=case["name"]))
    for stack in sorted(STACKS.glob("*/compose.yaml")):
        cases.append(pytest.param(stack.parent, ["compose.yaml"],
                                  {"HOME": "/home/user", "PATH": "/usr/bin:/bin"}, ("*",),
                                  id=f"stack-{stack.parent.name}"))
    return cases


def _through_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def assert_same_project(p: Project, q: Project) -> None:
    """Equal in every field, ``warnings`` (left out of ``==``) included."""
    for f in dataclasses.fields(Project):
        assert getattr(q, f.name) == getattr(p, f.name), f.name
    assert q == p


@pytest.mark.parametrize(("directory", "files", "env", "profiles"), _cases())
def test_loaded_project_round_trips(directory: Path, files: list[str], env: dict[str, str],
                                    profiles: tuple[str, ...]) -> None:
    options = LoadOptions(working_dir=str(directory), files=files, environ=env,
                          project_name="conf", profiles=profiles)
    project = load_project(options)
    assert_same_project(project, project_from_record(_through_json(project_to_record(project))))
    # What the CLI sends without building the model builds the same project.
    assert_same_project(project, project_from_record(_through_json(load_record(options))))


def test_deploy_resources_round_trip(tmp_path: Path) -> None:
    project = load(tmp_path, """
        services:
          web:
            image: a
            cpus: 0.5
            deploy:
              replicas: 2
              resources:
                limits: {cpus: "0.5", memory: 1g, pids: 10}
                reservations:
                  memory: 100m
                  devices: [{capabilities: [gpu], count: 1}]
              restart_policy: {condition: on-failure, delay: 5s}
              update_config: {parallelism: 2}
    """)
    deploy = project.services["web"].deploy
    assert deploy is not None
    assert deploy.limits is not None
    assert (deploy.limits.cpus, deploy.limits.memory, deploy.limits.pids) == (0.5, 1 << 30, 10)
    again = project_from_record(_through_json(project_to_record(project)))
    assert again.services["web"].deploy == deploy
    assert again.services["web"].limits == project.services["web"].limits


def test_disabled_service_env_file_round_trips(tmp_path: Path) -> None:
    """A disabled service keeps its (unread) ``env_file`` entries, ``required`` included."""
    write(tmp_path, "a.env", "A=1\n")
    project = load(tmp_path, """
        services:
          web: {image: a}
          debug:
            image: b
            profiles: [debug]
            env_file: [a.env, {path: missing.env, required: false}]
    """)
    entries = project.disabled_services["debug"].env_file
    assert [(e.path, e.required) for e in entries] == [
        (str(tmp_path / "a.env"), True), (str(tmp_path / "missing.env"), False)]
    assert_same_project(project, project_from_record(_through_json(project_to_record(project))))


# -- generated models ------------------------------------------------------------

_TEXT = st.text(alphabet="abcxyz-_0.$/ ", min_size=1, max_size=6)
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), _TEXT)
_JSON = st.recursive(_LEAF, lambda c: st.one_of(st.lists(c, max_size=2),
                                                st.dictionaries(_TEXT, c, max_size=2)),
                     max_leaves=4)
_X_KEY = _TEXT.map(lambda t: "x-" + t)
# Keys with no typed field, kept in ``extra`` (service, build, deploy, secret/config level).
_EXTRA_KEYS = {"Service": ["oom_score_adj", "runtime", "label_file"],
               "Build": ["additional_contexts", "ssh", "cache_from"],
               "Deploy": ["update_config", "placement", "endpoint_mode"],
               "FileObject": ["driver", "template_driver"]}


def _strategy(tp: Any) -> st.SearchStrategy[Any]:  # noqa: PLR0911 - one case per type form
    if tp is Any:
        return _JSON.map(freeze)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[_strategy(a) for a in typing.get_args(tp)])
    if tp is type(None):
        return st.none()
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp, vars(model))
        kwargs = {f.name: _strategy(hints[f.name]) for f in dataclasses.fields(tp)}
        if "extensions" in kwargs:
            kwargs["extensions"] = st.dictionaries(_X_KEY, _JSON, max_size=2).map(freeze)
        if "extra" in kwargs:
            keys = st.sampled_from(_EXTRA_KEYS[tp.__name__])
            if tp is not Service:
                keys = keys | _X_KEY
            kwargs["extra"] = st.dictionaries(keys, _JSON, max_size=2).map(freeze)
        return st.builds(tp, **kwargs)
    if origin is tuple:
        return st.lists(_strategy(typing.get_args(tp)[0]), max_size=2).map(tuple)
    if origin is FrozenDict:
        return st.dictionaries(_TEXT, _strategy(typing.get_args(tp)[1]),
                               max_size=2).map(FrozenDict)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: _TEXT, int: st.integers(0, 1 << 40), bool: st.booleans(),
        float: st.floats(0, 1e6, allow_nan=False)}
    return simple[tp]


def _named(services: FrozenDict[str, Service]) -> FrozenDict[str, Service]:
    return FrozenDict((n, dataclasses.replace(s, name=n)) for n, s in services.items())


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_strategy(Project))
def test_generated_project_round_trips(project: Project) -> None:
    project = dataclasses.replace(project, services=_named(project.services),
                                  disabled_services=_named(project.disabled_services))
    assert_same_project(project, project_from_record(_through_json(project_to_record(project))))
