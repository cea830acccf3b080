"""A minimal binding to libnftables (the library behind Debian's ``nft``).

Why not the ``nft`` binary: the same script costs ~2 ms through ``nft -f -``
(a process per change) and ~0.07 ms in-process; and the engine should not
spawn helpers for a map element. Why not python3-nftables: it is the same
ctypes wrapper, packaged only for Debian's system Python, not for our
virtualenv. Each :func:`run` is one ``nft -f``-style script, applied by the
kernel as one atomic transaction (all or nothing).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import threading
from typing import cast

from .errors import FirewallError

NFT_CTX_OUTPUT_JSON = 1 << 4

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _load() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name, use_errno=True)
            except OSError as e:
                raise FirewallError(
                    f"cannot load libnftables ({name}): {e}; install Debian's nftables"
                ) from None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
        return _lib


def run(script: str, *, json_output: bool = False) -> str:
    """Apply ``script`` atomically; return its output. Raises FirewallError with nft's message."""
    lib = _load()
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise FirewallError("nft_ctx_new failed")
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if json_output:
            lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON)
        rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
    finally:
        lib.nft_ctx_free(ctx)
    if rc != 0:
        raise FirewallError(f"nftables rejected the change: {err.strip() or 'error ' + str(rc)}")
    return out


def list_json(what: str) -> list[dict[str, object]] | None:
    """``nft -j list <what>`` as the list of objects, or None if it does not exist."""
    try:
        out = run(f"list {what}", json_output=True)
    except FirewallError as e:
        if "No such file or directory" in str(e):
            return None
        raise
    data = json.loads(out) if out.strip() else {"nftables": []}
    return cast(list[dict[str, object]], data.get("nftables", []))
