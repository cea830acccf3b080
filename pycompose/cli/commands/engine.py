"""``pycompose engine``: run the engine daemon in the foreground (one per state root).

Other commands start it on demand; run it yourself to watch its log, or from
a service manager. ``--ready-fd N`` (used by that autostart) writes
``ready`` to fd N once the socket accepts connections.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ready-fd", type=int, metavar="FD",
                        help="write 'ready' to this file descriptor once listening")
    parser.add_argument("--log-level", default=os.environ.get("PYCOMPOSE_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="engine log level")


def run(args: argparse.Namespace) -> int:
    import logging

    import trio

    from pycompose.engine import daemon
    from pycompose.errors import NotRootError
    from pycompose.paths import host_paths

    paths = host_paths()
    if os.geteuid() != 0:
        raise NotRootError("the engine runs containers (namespaces, cgroups, mounts) "
                           "and must run as root; try sudo")
    from pycompose.engine.logfile import handler_for, writes_to

    log_path = daemon.log_file(paths)
    # Started on demand, stderr is <root>/engine.log: rotate it by size.
    handlers = [handler_for(log_path, os.environ)] if writes_to(2, log_path) else None
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    os.chdir("/")  # never pin the directory the engine happened to be started from
    trio.run(lambda: daemon.run(paths, ready_fd=args.ready_fd))
    return 0
