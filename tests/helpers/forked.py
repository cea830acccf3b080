"""Run a function in a forked child and get its JSON-able result back over a pipe.

For tests of things that change the calling process for good (capabilities,
seccomp filters, mount namespaces): the child applies them, reports, and exits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

Result = dict[str, object]


def in_child(fn: Callable[[], Result]) -> Result:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(r)
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child ended with status {status:#x}"
    out: Result = json.loads(data)
    assert "error" not in out, out["error"]
    return out
