"""The queue example: one program, five roles (the first argument).

``setup``     the job that must finish before the rest starts: resets the queue
``consume``   a consumer: takes jobs off the Redis list, squares the number,
              adds the result up and counts what it did under its hostname
``produce``   the producer: once $CONSUMERS consumers wait for work, queues $JOBS
              more jobs (and what their results should add up to)
``app``       serves the results as JSON on port 8000 (published by compose)
``check``     exit 0 when the local ``app`` answers (its health check)

Everything lives in Redis under the ``queue:`` prefix.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis

JOBS_KEY = "queue:jobs"
KEYS = ("queue:jobs", "queue:expected", "queue:want_sum", "queue:done", "queue:sum",
        "queue:done_by")
CONSUMER = "consumer-"  # the Redis client name prefix of consumers
PORT = 8000


def connect() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://redis:6379/0"),
                                decode_responses=True)


def log(msg: str) -> None:
    print(f"{sys.argv[1] if len(sys.argv) > 1 else 'app'} {socket.gethostname()}: {msg}",
          flush=True)


def setup() -> int:
    connect().delete(*KEYS)
    log("queue reset")
    return 0


def consume() -> int:
    r = connect()
    me = socket.gethostname()
    r.client_setname(CONSUMER + me)
    log("waiting for jobs")
    while True:
        item = r.blpop([JOBS_KEY], timeout=0)
        if item is None:
            continue
        n = int(item[1])
        time.sleep(0.05)  # some work, so that both consumers get their share
        pipe = r.pipeline()
        pipe.incrby("queue:sum", n * n)
        pipe.hincrby("queue:done_by", me, 1)
        pipe.incr("queue:done")
        pipe.execute()
        log(f"job {n} -> {n * n}")


def waiting_consumers(r: redis.Redis) -> int:
    """Consumers blocked in BLPOP right now: the next jobs are shared among them."""
    return sum(1 for c in r.client_list()
               if c.get("name", "").startswith(CONSUMER) and c.get("cmd") == "blpop")


def produce() -> int:
    r = connect()
    jobs = int(os.environ.get("JOBS", "20"))
    want = int(os.environ.get("CONSUMERS", "1"))
    deadline = time.monotonic() + 30
    while waiting_consumers(r) < want and time.monotonic() < deadline:
        time.sleep(0.1)
    log(f"{waiting_consumers(r)} consumers ready, queueing {jobs} jobs")
    pipe = r.pipeline()
    pipe.incrby("queue:expected", jobs)
    pipe.incrby("queue:want_sum", sum(n * n for n in range(1, jobs + 1)))
    pipe.rpush(JOBS_KEY, *range(1, jobs + 1))
    pipe.execute()
    return 0


def results() -> dict[str, Any]:
    r = connect()
    expected = int(r.get("queue:expected") or 0)
    done = int(r.get("queue:done") or 0)
    return {"expected": expected, "done": done, "complete": expected > 0 and done >= expected,
            "sum_of_squares": int(r.get("queue:sum") or 0),
            "want_sum": int(r.get("queue:want_sum") or 0),
            "done_by": {k: int(v) for k, v in r.hgetall("queue:done_by").items()},
            "waiting": r.llen(JOBS_KEY)}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        try:
            body = (json.dumps(results(), indent=2) + "\n").encode()
            code = 200
        except redis.RedisError as exc:
            body, code = f"redis: {exc}\n".encode(), 503
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the API's name
        pass


def app() -> int:
    log(f"results on port {PORT}")
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
    return 0


def check() -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=2) as resp:
        return 0 if resp.status == 200 else 1


ROLES = {"setup": setup, "consume": consume, "produce": produce, "app": app, "check": check}

if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else "app"
    if role not in ROLES:
        print(f"usage: jobs.py {'|'.join(ROLES)}", file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(ROLES[role]())
