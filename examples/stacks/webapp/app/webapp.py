"""The webapp example: a page with rows from PostgreSQL and a Redis visit counter.

``webapp.py serve``    serve HTTP on $LISTEN_PORT (default 8000)
``webapp.py migrate``  create the ``notes`` table and its first rows (idempotent)
``webapp.py check``    exit 0 when the local server answers (the health check)

Only the standard library plus Debian's python3-psycopg2 and python3-redis.
"""

from __future__ import annotations

import html
import json
import os
import socket
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg2
import redis

PORT = int(os.environ.get("LISTEN_PORT", "8000"))
COUNTER = "webapp:visits"

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id      serial PRIMARY KEY,
    title   text NOT NULL UNIQUE,
    created timestamptz NOT NULL DEFAULT now()
)
"""
SEED = (
    "PostgreSQL keeps these rows in the db-data volume",
    "Redis counts the visits",
    "pycompose runs all three containers",
)


def db() -> Any:
    return psycopg2.connect(
        host=os.environ.get("DATABASE_HOST", "db"), dbname=os.environ["POSTGRES_DB"],
        user=os.environ["POSTGRES_USER"], password=os.environ["POSTGRES_PASSWORD"],
        connect_timeout=5)


def cache() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://cache:6379/0"),
                                socket_timeout=5)


def stats() -> dict[str, Any]:
    visits = cache().incr(COUNTER)
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, title, created FROM notes ORDER BY id")
        notes = [{"id": i, "title": t, "created": c.isoformat()} for i, t, c in cur.fetchall()]
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    conn.close()
    return {"visits": visits, "notes": notes, "postgres": version,
            "served_by": socket.gethostname()}


def page(data: dict[str, Any]) -> str:
    rows = "\n".join(f"    <li>#{n['id']} {html.escape(n['title'])}</li>" for n in data["notes"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>pycompose webapp</title></head>
<body>
  <h1>Hello from pycompose</h1>
  <p>This page has been viewed <strong id="visits">{data['visits']}</strong> times
  (a counter in Redis).</p>
  <p>Notes from PostgreSQL {html.escape(data['postgres'])}:</p>
  <ul id="notes">
{rows}
  </ul>
  <p><small>served by container {html.escape(data['served_by'])};
  the same as JSON: <a href="/api/stats">/api/stats</a></small></p>
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/healthz":
            return self.reply(200, "text/plain", b"ok\n")
        if self.path not in ("/", "/api/stats"):
            return self.reply(404, "text/plain", b"not found\n")
        try:
            data = stats()
        except (psycopg2.Error, redis.RedisError) as exc:
            return self.reply(503, "text/plain", f"backend error: {exc}\n".encode())
        if self.path == "/api/stats":
            return self.reply(200, "application/json", json.dumps(data).encode())
        return self.reply(200, "text/html; charset=utf-8", page(data).encode())

    def reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def migrate() -> int:
    with db() as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
        for title in SEED:
            cur.execute("INSERT INTO notes (title) VALUES (%s) ON CONFLICT (title) DO NOTHING",
                        (title,))
        cur.execute("SELECT count(*) FROM notes")
        count = cur.fetchone()[0]
    conn.close()
    print(f"migrate: table notes ready, {count} rows", flush=True)
    return 0


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "serve"
    if cmd == "check":
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    if cmd == "migrate":
        return migrate()
    if cmd == "serve":
        print(f"webapp: listening on port {PORT}", flush=True)
        ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
        return 0
    print(f"usage: webapp.py serve|migrate|check (not {cmd!r})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
