"""``python -m pycompose.runtime.supervisor --root R [--instance I] [--daemon]``.

With ``--daemon`` the process forks: the child becomes a session leader with
stdin on /dev/null and its log in ``<root>/supervisor.log``; the parent exits
0 once the child listens (or an error message and 1). One supervisor per root
(an exclusive ``flock`` on ``<root>/supervisor.lock``); a second one exits 0
at once, since the first already serves.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pycompose-supervisor")
    parser.add_argument("--root", required=True)
    parser.add_argument("--instance", default="")
    parser.add_argument("--daemon", action="store_true")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    ready_w = -1
    if args.daemon:
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid:
            os.close(ready_w)
            msg = b""
            while chunk := os.read(ready_r, 4096):
                msg += chunk
            if msg == b"ok":
                return 0
            sys.stderr.write(msg.decode(errors="replace") or "supervisor exited at start\n")
            return 1
        os.close(ready_r)
        os.setsid()
        null = os.open("/dev/null", os.O_RDWR)
        logfd = os.open(os.path.join(root, "supervisor.log"),
                        os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(null, 0)
        os.dup2(logfd, 1)
        os.dup2(logfd, 2)
        os.close(null)
        os.close(logfd)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    lock = os.open(os.path.join(root, "supervisor.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if ready_w >= 0:
            os.write(ready_w, b"ok")
        return 0
    try:
        # The fd keeper is forked before the heavy imports, to stay small.
        from pycompose.runtime.supervisor import fdkeeper

        fdkeeper.start(root)
        keeper_sock = fdkeeper.connect(root)
        if keeper_sock is None:
            raise RuntimeError("the fd keeper does not answer")

        from pycompose.runtime.supervisor.server import Supervisor

        sup = Supervisor(root, args.instance, fdkeeper.Keeper(keeper_sock))
        sup.install_signals()
        sup.adopt()
        sup.listen()
    except BaseException as exc:
        if ready_w >= 0:
            os.write(ready_w, f"supervisor for {root}: {exc}\n".encode())
        raise
    if ready_w >= 0:
        os.write(ready_w, b"ok")
        os.close(ready_w)
    logging.info("supervisor %d serving %s", os.getpid(), root)
    # Objects alive now live as long as the process: keep the collector off
    # them, so forked children do not copy their pages by touching them.
    gc.freeze()
    sup.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
