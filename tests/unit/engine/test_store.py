"""The SQLite state store: schema versioning, records, and all-or-nothing transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pycompose.engine.store import (
    SCHEMA_VERSION,
    ContainerRecord,
    ProjectRecord,
    Store,
    StoreError,
    VolumeRecord,
    open_database,
)


def container(n: int = 1, **kw: object) -> ContainerRecord:
    values: dict[str, object] = dict(
        id=f"{n:064x}", name=f"proj-web-{n}", project="proj", service="web", number=n,
        config_hash="h1", image="busybox", config={"command": ["sleep", "1"]},
        labels={"com.docker.compose.project": "proj"})
    values.update(kw)
    return ContainerRecord(**values)  # type: ignore[arg-type]


async def test_fresh_database_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "state.db")
    try:
        mode = await store.run(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0])
        version = await store.run(lambda c: c.execute("PRAGMA user_version").fetchone()[0])
    finally:
        await store.aclose()
    assert mode == "wal"
    assert version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this engine"):
        open_database(path)


async def test_records_roundtrip_and_reference_resolution(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "state.db")
    try:
        await store.put_project(ProjectRecord(name="proj", working_dir="/w",
                                              config_files=["/w/compose.yaml"],
                                              model={"services": {}}, status="running"))
        await store.add_container(container(1), volumes={"/data": "anon1"})
        await store.add_container(container(2, id="ab" + "0" * 62))
        await store.add_container(container(3))
        await store.put_volume(VolumeRecord(name="anon1", project="proj", key="",
                                            path="/v", anonymous=True))
        await store.update_container(container(1).id, state="running", pid=42,
                                     health_log=[{"ExitCode": 0}], oom_killed=True)
        by_name = await store.get_container("proj-web-1")
        by_prefix = await store.get_container("ab00")
        ambiguous = await store.get_container("0")
        project = await store.get_project("proj")
        removed_anon = await store.remove_container(container(1).id)
        left = await store.list_containers("proj")
        cv = await store.container_volumes(container(1).id)
    finally:
        await store.aclose()
    assert by_name is not None
    assert by_name.state == "running"
    assert by_name.pid == 42
    assert by_name.health_log == [{"ExitCode": 0}]
    assert by_name.oom_killed is True
    assert by_prefix is not None
    assert by_prefix.number == 2
    assert ambiguous is None  # a prefix matching two containers names neither
    assert project is not None
    assert project.config_files == ["/w/compose.yaml"]
    assert removed_anon == ["anon1"]
    assert [c.number for c in left] == [2, 3]
    assert cv == {}  # cascaded with the container


async def test_failed_transaction_leaves_previous_state(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "state.db")
    try:
        await store.add_container(container(1))
        # A second container whose volume row collides: the whole insert must roll back.

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE containers SET state = 'running' WHERE number = 1")
            conn.execute("INSERT INTO containers (id) VALUES (NULL)")  # NOT NULL violation

        with pytest.raises(StoreError):
            await store.transaction(half_then_fail)
        with pytest.raises(StoreError):  # duplicate name: nothing of it is stored
            await store.add_container(container(3, name="proj-web-1"), volumes={"/d": "v"})
        rows = await store.list_containers()
        cv = await store.run(lambda c: c.execute("SELECT count(*) FROM container_volumes")
                             .fetchone()[0])
    finally:
        await store.aclose()
    assert [(c.number, c.state) for c in rows] == [(1, "created")]
    assert cv == 0


def test_crash_mid_transaction_keeps_last_commit(tmp_path: Path) -> None:
    """A process killed inside a transaction: the next open sees the last committed state."""
    import os
    import signal

    path = tmp_path / "state.db"
    conn = open_database(path)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO volumes (name, project, key, path, created_at) "
                 "VALUES ('committed', 'p', 'k', '/x', 0)")
    conn.execute("COMMIT")
    conn.close()
    pid = os.fork()
    if pid == 0:  # the child writes half a change and dies without committing
        try:
            c = open_database(path)
            c.execute("BEGIN IMMEDIATE")
            c.execute("DELETE FROM volumes")
            c.execute("INSERT INTO volumes (name, project, key, path, created_at) "
                      "VALUES ('half', 'p', 'k', '/y', 0)")
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    conn = open_database(path)
    names = [r[0] for r in conn.execute("SELECT name FROM volumes")]
    conn.close()
    assert names == ["committed"]


async def test_update_rejects_unknown_fields_and_missing_rows(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "state.db")
    try:
        with pytest.raises(ValueError, match="unknown container fields"):
            await store.update_container("x", colour="red")
        with pytest.raises(StoreError, match="no such container"):
            await store.update_container("x", state="running")
    finally:
        await store.aclose()


def test_an_older_database_is_migrated_in_place(tmp_path: Path) -> None:
    from pycompose.engine.store import MIGRATIONS

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute("INSERT INTO volumes (name, project, key, path, created_at) "
                 "VALUES ('kept', 'p', 'k', '/x', 0)")
    conn.commit()
    conn.close()
    conn = open_database(path)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    kept = [r[0] for r in conn.execute("SELECT name FROM volumes")]
    conn.close()
    assert version == SCHEMA_VERSION
    assert "kv" in tables
    assert kept == ["kept"]
