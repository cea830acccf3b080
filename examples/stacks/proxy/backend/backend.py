"""The proxy example's backend: says which replica (container hostname) answered.

``backend.py``        serve HTTP on port 8000
``backend.py check``  exit 0 when the local server answers (the health check)
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8000
HOSTNAME = socket.gethostname()
served = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            body = json.dumps({"replica": HOSTNAME, "path": self.path,
                               "served": next(served)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2) as resp:
            return 0 if resp.status == 200 else 1
    print(f"backend {HOSTNAME}: listening on port {PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
