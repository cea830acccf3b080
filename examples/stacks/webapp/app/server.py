"""A tiny HTTP app for the webapp example stack (standard library only).

``server.py``            serve on $LISTEN_PORT (default 8000)
``server.py --check``    exit 0 when the local server answers (the healthcheck)
``server.py --migrate``  the one-off migration job (prints what it would do)
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("LISTEN_PORT", "8000"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = json.dumps({
            "status": "ok",
            "database": os.environ.get("DATABASE_HOST", ""),
            "redis": os.environ.get("REDIS_URL", ""),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    if "--migrate" in argv:
        print(f"migrating database {os.environ.get('POSTGRES_DB')} "
              f"on {os.environ.get('DATABASE_HOST')}: nothing to do")
        return 0
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
