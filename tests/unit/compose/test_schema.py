"""The schema stage: unknown keys, types, casts; every error with file and path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycompose.compose.schema import check_document

from .loader_helpers import load, load_errors


def check(doc: object) -> tuple[object, list[str]]:
    out, errors = check_document(doc, file="c.yaml")
    return out, [str(e) for e in errors]


def test_unknown_top_level_key() -> None:
    _, errors = check({"services": {}, "bogus": 1})
    assert errors == ["c.yaml: bogus: unknown key (not allowed here)"]


def test_extension_keys_allowed_everywhere() -> None:
    doc = {"x-top": 1, "services": {"web": {"image": "a", "x-mine": {"any": [1]}}},
           "networks": {"n": {"x-n": 1}}}
    out, errors = check(doc)
    assert errors == []
    assert out == doc


def test_unknown_service_key_named_with_path() -> None:
    _, errors = check({"services": {"web": {"image": "a", "net": "host"}}})
    assert errors == ["c.yaml: services.web.net: unknown key (not allowed here)"]


def test_wrong_type() -> None:
    _, errors = check({"services": {"web": {"image": ["a"]}}})
    assert errors == ["c.yaml: services.web.image: must be a string, not a list"]


def test_list_index_in_path() -> None:
    _, errors = check({"services": {"web": {"image": "a", "ports": ["80", ["x"]]}}})
    assert errors == ["c.yaml: services.web.ports[1]: must be a string, a number or a mapping, "
                      "not a list"]


def test_all_errors_are_collected_and_sorted() -> None:
    _, errors = check({"services": {"b": {"image": 1.5, "foo": 1}, "a": {"tty": "maybe"}},
                       "zzz": 1})
    assert errors == [
        "c.yaml: services.a.tty: must be a boolean, not 'maybe'",
        "c.yaml: services.b.foo: unknown key (not allowed here)",
        "c.yaml: zzz: unknown key (not allowed here)",
    ]


@pytest.mark.parametrize(("key", "value", "cast"), [
    ("read_only", "true", True), ("read_only", "no", False), ("scale", "3", 3),
    ("cpus", "1.5", 1.5), ("image", 5, "5"), ("pids_limit", "100", 100),
])
def test_interpolated_strings_are_cast(key: str, value: object, cast: object) -> None:
    out, errors = check({"services": {"web": {"image": "a", key: value}}})
    assert errors == []
    assert out["services"]["web"][key] == cast  # type: ignore[index]


def test_environment_values_become_strings() -> None:
    out, errors = check({"services": {"web": {"image": "a",
                                              "environment": {"A": 1, "B": True, "C": None}}}})
    assert errors == []
    assert out["services"]["web"]["environment"] == {"A": "1", "B": "true", "C": None}  # type: ignore[index]


def test_depends_on_condition_values() -> None:
    _, errors = check({"services": {"web": {"image": "a",
                                            "depends_on": {"db": {"condition": "started"}}}}})
    assert errors == ['c.yaml: services.web.depends_on.db.condition: invalid value "started" '
                      '(expected one of "service_started", "service_healthy", '
                      '"service_completed_successfully")']


def test_duplicate_list_entries() -> None:
    _, errors = check({"services": {"web": {"image": "a", "depends_on": ["db", "db"]}}})
    assert errors == ["c.yaml: services.web.depends_on[1]: duplicate entry 'db'"]


def test_top_level_must_be_mapping() -> None:
    _, errors = check(["a"])
    assert errors == ["c.yaml: the top level must be a mapping, not a list"]


def test_invalid_service_name() -> None:
    _, errors = check({"services": {"bad name": {"image": "a"}}})
    assert errors == ['c.yaml: services.bad name: invalid service name "bad name" '
                      '(allowed: letters, digits, ".", "_", "-")']


def test_volume_long_syntax_requires_type() -> None:
    _, errors = check({"services": {"web": {"image": "a", "volumes": [{"target": "/x"}]}}})
    assert errors == ['c.yaml: services.web.volumes[0]: missing required key "type"']


def test_loader_reports_schema_errors_with_file(tmp_path: Path) -> None:
    errors = load_errors(tmp_path, """
        services:
          web:
            image: nginx
            ports: ["80:80", "80:abc"]
            restart: sometimes
    """)
    assert errors == [
        'compose.yaml: services.web.ports[1]: invalid port "80:abc"',
        'compose.yaml: services.web.restart: invalid restart policy "sometimes" (expected "no", '
        '"always", "on-failure[:N]" or "unless-stopped")',
    ]


def test_errors_of_several_files_are_all_listed(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("services:\n  web:\n    tty: maybe\n")
    errors = load_errors(tmp_path, "services:\n  web:\n    image: a\n    foo: 1\n")
    assert len(errors) == 1  # only compose.yaml is loaded by default
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: a\n    foo: 1\n")
    from pycompose.compose.errors import ComposeFileErrors
    from pycompose.compose.loader import load_project

    from .loader_helpers import options
    with pytest.raises(ComposeFileErrors) as info:
        load_project(options(tmp_path, "compose.yaml", "b.yaml"))
    assert [str(e) for e in info.value.errors] == [
        "b.yaml: services.web.tty: must be a boolean, not 'maybe'",
        "compose.yaml: services.web.foo: unknown key (not allowed here)",
    ]


def test_version_key_is_accepted_with_a_warning(tmp_path: Path) -> None:
    project = load(tmp_path, "version: '3.8'\nservices:\n  web:\n    image: a\n")
    assert any("version" in w and "obsolete" in w for w in project.warnings)
