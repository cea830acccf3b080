"""The engine's state in SQLite (WAL): projects, containers, networks, volumes.

One connection, used from worker threads one call at a time
(``trio.to_thread.run_sync`` under a ``CapacityLimiter(1)``), so the trio
thread never blocks on disk and SQLite never sees two writers of ours at once.
Every public method is one self-contained function over the connection; each
change runs in one transaction (``with conn:``), so a crash leaves either the
old state or the new one, never half of it.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` holds
one script per version, applied in order in the same transaction that bumps
the version. A database newer than this engine is refused.

Images are not here: they belong to the runtime's image store.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import trio

from pycompose.errors import EngineError

T = TypeVar("T")

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE projects (
        name         TEXT PRIMARY KEY,
        working_dir  TEXT NOT NULL,
        config_files TEXT NOT NULL,          -- JSON list
        model        TEXT NOT NULL,          -- JSON: the resolved project as sent by the CLI
        status       TEXT NOT NULL,          -- converging | running | failed | stopped
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL
    );
    CREATE TABLE containers (
        id             TEXT PRIMARY KEY,     -- 64 hex digits
        name           TEXT NOT NULL UNIQUE,
        project        TEXT NOT NULL,
        service        TEXT NOT NULL,
        number         INTEGER NOT NULL,
        oneoff         INTEGER NOT NULL DEFAULT 0,
        config_hash    TEXT NOT NULL,
        image          TEXT NOT NULL,
        config         TEXT NOT NULL,        -- JSON: the service config it was created from
        labels         TEXT NOT NULL,        -- JSON object
        state          TEXT NOT NULL,        -- created running paused restarting exited dead
        pid            INTEGER,
        pid_start_time INTEGER,              -- /proc/<pid>/stat field 22: guards pid reuse
        exit_code      INTEGER,
        oom_killed     INTEGER NOT NULL DEFAULT 0,
        error          TEXT NOT NULL DEFAULT '',
        health         TEXT NOT NULL DEFAULT '',  -- '' | starting | healthy | unhealthy
        health_log     TEXT NOT NULL DEFAULT '[]',
        restart_count  INTEGER NOT NULL DEFAULT 0,
        stopped_by_user INTEGER NOT NULL DEFAULT 0,
        created_at     REAL NOT NULL,
        started_at     REAL,
        finished_at    REAL
    );
    CREATE INDEX containers_project ON containers (project, service, number);
    CREATE TABLE networks (
        name       TEXT PRIMARY KEY,         -- host-side name, <project>_<key> unless set
        project    TEXT NOT NULL,
        key        TEXT NOT NULL,
        driver     TEXT NOT NULL DEFAULT 'bridge',
        external   INTEGER NOT NULL DEFAULT 0,
        internal   INTEGER NOT NULL DEFAULT 0,
        config     TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE TABLE volumes (
        name       TEXT PRIMARY KEY,
        project    TEXT NOT NULL,             -- '' for volumes no project owns
        key        TEXT NOT NULL,             -- compose key, '' for anonymous volumes
        driver     TEXT NOT NULL DEFAULT 'local',
        external   INTEGER NOT NULL DEFAULT 0,
        anonymous  INTEGER NOT NULL DEFAULT 0,
        path       TEXT NOT NULL,
        labels     TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE TABLE container_volumes (          -- which volumes a container mounts (for down -v)
        container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
        volume       TEXT NOT NULL,
        target       TEXT NOT NULL,
        PRIMARY KEY (container_id, target)
    );
    """,
    # 2: small engine-wide documents (IPAM state)
    """
    CREATE TABLE kv (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(EngineError):
    """The state database could not be opened, migrated, read or written."""


# --------------------------------------------------------------------------- records


@dataclass
class ProjectRecord:
    name: str
    working_dir: str
    config_files: list[str]
    model: dict[str, Any]
    status: str
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class ContainerRecord:
    id: str
    name: str
    project: str
    service: str
    number: int
    config_hash: str
    image: str
    config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    state: str = "created"
    oneoff: bool = False
    pid: int | None = None
    pid_start_time: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    health: str = ""
    health_log: list[dict[str, Any]] = field(default_factory=list)
    restart_count: int = 0
    stopped_by_user: bool = False
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NetworkRecord:
    name: str
    project: str
    key: str
    driver: str = "bridge"
    external: bool = False
    internal: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass
class VolumeRecord:
    name: str
    project: str
    key: str
    path: str
    driver: str = "local"
    external: bool = False
    anonymous: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0


_JSON_COLUMNS = {"config_files", "model", "config", "labels", "health_log"}
_BOOL_COLUMNS = {"oneoff", "oom_killed", "stopped_by_user", "external", "internal", "anonymous"}

R = TypeVar("R", ProjectRecord, ContainerRecord, NetworkRecord, VolumeRecord)


def _to_row(record: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name in _JSON_COLUMNS:
            value = json.dumps(value, sort_keys=True)
        elif f.name in _BOOL_COLUMNS:
            value = int(bool(value))
        row[f.name] = value
    return row


def _from_row(cls: type[R], row: sqlite3.Row) -> R:
    values: dict[str, Any] = {}
    for key in row.keys():  # noqa: SIM118 - sqlite3.Row is not a mapping
        value = row[key]
        if key in _JSON_COLUMNS:
            value = json.loads(value)
        elif key in _BOOL_COLUMNS:
            value = bool(value)
        values[key] = value
    return cls(**values)


def _insert(conn: sqlite3.Connection, table: str, record: Any, *, replace: bool = False) -> None:
    row = _to_row(record)
    cols = ", ".join(row)
    marks = ", ".join(f":{c}" for c in row)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    conn.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", row)


# --------------------------------------------------------------------------- sync layer


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating) the database at ``path`` in WAL mode and migrate it to the current schema."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        migrate(conn)
    except sqlite3.Error as exc:
        raise StoreError(f"state database {path}: {exc}") from None
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; each step is one transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"state database has schema version {version}, newer than this engine's "
            f"{SCHEMA_VERSION}: upgrade pycompose"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # One script, one transaction: the version moves only with the schema it names.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\n"
                f"PRAGMA user_version = {target};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


class _Tx:
    """``with _Tx(conn):`` — BEGIN IMMEDIATE … COMMIT, ROLLBACK on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


# --------------------------------------------------------------------------- async store


class Store:
    """Async access to the state database; see the module docstring for the threading rule."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path) -> Store:
        conn = await trio.to_thread.run_sync(open_database, path)
        return cls(conn, path)

    async def aclose(self) -> None:
        await self.run(lambda conn: conn.close())

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a worker thread, one call at a time (SQLite errors: StoreError)."""
        def call() -> T:
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise StoreError(f"state database {self.path}: {exc}") from None

        return await trio.to_thread.run_sync(call, limiter=self._limiter)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` inside one transaction: all of its writes, or none."""
        def tx(conn: sqlite3.Connection) -> T:
            with _Tx(conn):
                return fn(conn)

        return await self.run(tx)

    # ---- projects

    async def put_project(self, record: ProjectRecord) -> None:
        now = time.time()

        def put(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT created_at FROM projects WHERE name = ?", (record.name,)
            ).fetchone()
            record.created_at = row[0] if row else now
            record.updated_at = now
            _insert(conn, "projects", record, replace=True)

        await self.transaction(put)

    async def set_project_status(self, name: str, status: str) -> None:
        await self.transaction(lambda conn: conn.execute(
            "UPDATE projects SET status = ?, updated_at = ? WHERE name = ?",
            (status, time.time(), name)))

    async def get_project(self, name: str) -> ProjectRecord | None:
        row = await self.run(lambda conn: conn.execute(
            "SELECT * FROM projects WHERE name = ?", (name,)).fetchone())
        return _from_row(ProjectRecord, row) if row else None

    async def list_projects(self) -> list[ProjectRecord]:
        rows = await self.run(lambda conn: conn.execute(
            "SELECT * FROM projects ORDER BY name").fetchall())
        return [_from_row(ProjectRecord, r) for r in rows]

    async def delete_project(self, name: str) -> None:
        await self.transaction(lambda conn: conn.execute(
            "DELETE FROM projects WHERE name = ?", (name,)))

    # ---- containers

    async def add_container(self, record: ContainerRecord,
                            volumes: Mapping[str, str] | None = None) -> None:
        """Insert a container and the volumes it mounts (target -> volume name) atomically."""
        if not record.created_at:
            record.created_at = time.time()

        def add(conn: sqlite3.Connection) -> None:
            _insert(conn, "containers", record)
            for target, volume in (volumes or {}).items():
                conn.execute(
                    "INSERT INTO container_volumes (container_id, volume, target) VALUES (?, ?, ?)",
                    (record.id, volume, target))

        await self.transaction(add)

    async def update_container(self, container_id: str, **changes: Any) -> None:
        """Set columns of one container in one transaction (``state="exited", exit_code=0``)."""
        if not changes:
            return
        valid = {f.name for f in fields(ContainerRecord)}
        unknown = set(changes) - valid
        if unknown:
            raise ValueError(f"unknown container fields: {sorted(unknown)}")
        row = {k: (json.dumps(v, sort_keys=True) if k in _JSON_COLUMNS
                   else int(bool(v)) if k in _BOOL_COLUMNS else v) for k, v in changes.items()}
        sets = ", ".join(f"{k} = :{k}" for k in row)
        row["_id"] = container_id

        def update(conn: sqlite3.Connection) -> None:
            cur = conn.execute(f"UPDATE containers SET {sets} WHERE id = :_id", row)
            if cur.rowcount != 1:
                raise StoreError(f"no such container: {container_id}")

        await self.transaction(update)

    async def get_container(self, ref: str) -> ContainerRecord | None:
        """By full id, name, or a unique id prefix (as Docker resolves references)."""
        def get(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            row = conn.execute("SELECT * FROM containers WHERE id = ? OR name = ?",
                               (ref, ref)).fetchone()
            if row is not None:
                return [row]
            return conn.execute("SELECT * FROM containers WHERE id LIKE ? LIMIT 2",
                                (ref.replace("%", "") + "%",)).fetchall()

        rows = await self.run(get)
        if len(rows) != 1:
            return None
        return _from_row(ContainerRecord, rows[0])

    async def list_containers(self, project: str | None = None, *,
                              service: str | None = None,
                              oneoff: bool | None = None) -> list[ContainerRecord]:
        where: list[str] = []
        params: list[object] = []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        if service is not None:
            where.append("service = ?")
            params.append(service)
        if oneoff is not None:
            where.append("oneoff = ?")
            params.append(int(oneoff))
        sql = "SELECT * FROM containers"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY project, service, oneoff, number"
        rows = await self.run(lambda conn: conn.execute(sql, params).fetchall())
        return [_from_row(ContainerRecord, r) for r in rows]

    async def remove_container(self, container_id: str) -> list[str]:
        """Delete a container record; returns the anonymous volumes it used (for ``rm -v``)."""
        def remove(conn: sqlite3.Connection) -> list[str]:
            anon = [r[0] for r in conn.execute(
                "SELECT cv.volume FROM container_volumes cv JOIN volumes v ON v.name = cv.volume "
                "WHERE cv.container_id = ? AND v.anonymous = 1", (container_id,))]
            conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))
            return anon

        return await self.transaction(remove)

    async def container_volumes(self, container_id: str) -> dict[str, str]:
        rows = await self.run(lambda conn: conn.execute(
            "SELECT target, volume FROM container_volumes WHERE container_id = ?",
            (container_id,)).fetchall())
        return {r[0]: r[1] for r in rows}

    async def volume_users(self, volume: str) -> list[str]:
        """Names of the containers that mount ``volume``."""
        rows = await self.run(lambda conn: conn.execute(
            "SELECT c.name FROM container_volumes cv JOIN containers c ON c.id = cv.container_id "
            "WHERE cv.volume = ? ORDER BY c.name", (volume,)).fetchall())
        return [r[0] for r in rows]

    # ---- small documents (kv)

    async def put_doc(self, key: str, value: Any) -> None:
        text = json.dumps(value, sort_keys=True)
        await self.transaction(lambda conn: conn.execute(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, text)))

    async def delete_doc(self, key: str) -> None:
        await self.transaction(lambda conn: conn.execute("DELETE FROM kv WHERE key = ?",
                                                         (key,)))

    async def docs_with_prefix(self, prefix: str) -> dict[str, Any]:
        rows = await self.run(lambda conn: conn.execute(
            "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ?",
            (len(prefix), prefix)).fetchall())
        return {r[0]: json.loads(r[1]) for r in rows}

    # ---- networks and volumes

    async def put_network(self, record: NetworkRecord) -> None:
        record.created_at = record.created_at or time.time()
        await self.transaction(lambda conn: _insert(conn, "networks", record, replace=True))

    async def list_networks(self, project: str | None = None) -> list[NetworkRecord]:
        sql, params = "SELECT * FROM networks", []
        if project is not None:
            sql, params = sql + " WHERE project = ?", [project]
        rows = await self.run(lambda conn: conn.execute(sql + " ORDER BY name", params).fetchall())
        return [_from_row(NetworkRecord, r) for r in rows]

    async def remove_network(self, name: str) -> None:
        await self.transaction(lambda conn: conn.execute(
            "DELETE FROM networks WHERE name = ?", (name,)))

    async def put_volume(self, record: VolumeRecord) -> None:
        record.created_at = record.created_at or time.time()
        await self.transaction(lambda conn: _insert(conn, "volumes", record, replace=True))

    async def get_volume(self, name: str) -> VolumeRecord | None:
        row = await self.run(lambda conn: conn.execute(
            "SELECT * FROM volumes WHERE name = ?", (name,)).fetchone())
        return _from_row(VolumeRecord, row) if row else None

    async def list_volumes(self, project: str | None = None) -> list[VolumeRecord]:
        sql, params = "SELECT * FROM volumes", []
        if project is not None:
            sql, params = sql + " WHERE project = ?", [project]
        rows = await self.run(lambda conn: conn.execute(sql + " ORDER BY name", params).fetchall())
        return [_from_row(VolumeRecord, r) for r in rows]

    async def remove_volume(self, name: str) -> None:
        await self.transaction(lambda conn: conn.execute(
            "DELETE FROM volumes WHERE name = ?", (name,)))
