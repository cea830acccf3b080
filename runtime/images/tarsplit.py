"""Reproducing a layer's exact tar bytes from its unpacked directory.

An image's id covers its config, and the config lists each layer's diff-id:
the sha256 of the layer's *uncompressed tar*. To export an image (``image
save``, a registry push) without changing its id, the store must produce those
exact bytes again, yet keeping every layer twice (tar and directory) would
double the disk used. So, as Docker does with tar-split, unpacking records the
tar *without* the file contents: every header, PAX record and padding byte
verbatim, and for each regular file only "here come N bytes of file P". The
contents come back from the unpacked files, which never change (a layer is
immutable; overlayfs never writes to a lower dir).

The record is a zstd stream of entries::

    b"R" <u64 length> <bytes>               raw tar bytes
    b"F" <u64 size> <u32 n> <n path bytes>  size bytes read from the file at path
    b"E"                                    end

A layer whose tar names a file twice, or replaces or whiteouts a file it
wrote before, cannot be reproduced that way; the unpacker notices and marks
it, and exporting it fails with a clear error. Reproduced bytes are always
checked against the diff-id.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from pycompose.runtime.errors import ImageError

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_CHUNK = 1 << 20
# tarfile reads ahead by at most one record (10 KiB); keep far more than that unwritten.
_KEEP = 1 << 16
_FLUSH_AT = 1 << 20


class TarRecorder:
    """Sits between the (decompressed) tar stream and ``tarfile``: passes bytes through and
    writes the record to ``out``, leaving out the file contents it is told about."""

    def __init__(self, raw: BinaryIO, out: BinaryIO) -> None:
        self._raw = raw
        self._writer = zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False)
        self._pos = 0  # bytes read so far
        self._pending = bytearray()  # raw bytes [_pending_start, _pos) not yet written
        self._pending_start = 0
        self._skip_until = 0  # file contents up to here are not recorded

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        start, self._pos = self._pos, self._pos + len(data)
        if self._pos <= self._skip_until:
            return data
        if start < self._skip_until:
            self._pending += data[self._skip_until - start:]
        else:
            self._pending += data
        if len(self._pending) > _FLUSH_AT:
            # Keep the read-ahead window: the next file's contents may start in it.
            cut = len(self._pending) - _KEEP
            self._raw_record(self._pending[:cut])
            del self._pending[:cut]
            self._pending_start += cut
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def _raw_record(self, data: bytes | bytearray) -> None:
        if data:
            self._writer.write(b"R" + _U64.pack(len(data)))
            self._writer.write(data)

    def payload(self, start: int, size: int, path: str) -> None:
        """The ``size`` bytes at stream offset ``start`` are the content of the file ``path``
        (relative to the layer root, symlink-free). Call before reading them."""
        if start < self._pending_start or start < self._skip_until or start > self._pos:
            raise ImageError(f"tar record: file data for {path} out of order")
        cut = start - self._pending_start
        self._raw_record(self._pending[:cut])
        encoded = os.fsencode(path)
        self._writer.write(b"F" + _U64.pack(size) + _U32.pack(len(encoded)) + encoded)
        end = start + size
        already = self._pending_start + len(self._pending)  # == self._pos
        if already >= end:
            self._pending = self._pending[end - self._pending_start:]
            self._pending_start = end
        else:
            self._pending = bytearray()
            self._pending_start = end
            self._skip_until = end

    def close(self) -> None:
        """Write what is left (call after draining the stream) and flush the record."""
        self._raw_record(self._pending)
        self._pending = bytearray()
        self._writer.write(b"E")
        self._writer.flush(zstandard.FLUSH_FRAME)  # ends the frame; ``out`` stays open


def _read_exact(f: BinaryIO, size: int, what: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise ImageError(f"{what}: tar record is truncated")
    return data


def _open_in_layer(root: Path, path: str) -> int:
    """Open ``root/path`` read-only, refusing symlinks at every step."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags | os.O_DIRECTORY)
    parts = [p for p in path.split("/") if p]
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = os.open(part, flags | (0 if last else os.O_DIRECTORY), dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def reproduce(record: Path, layer_dir: Path) -> Iterator[bytes]:
    """Yield the layer's tar bytes, rebuilt from ``record`` and the files in ``layer_dir``."""
    what = str(record)
    try:
        with record.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as f:
            while True:
                kind = f.read(1)
                if kind == b"E":
                    return
                if kind == b"R":
                    (length,) = _U64.unpack(_read_exact(f, 8, what))
                    while length:
                        chunk = _read_exact(f, min(length, _CHUNK), what)
                        length -= len(chunk)
                        yield chunk
                elif kind == b"F":
                    (size,) = _U64.unpack(_read_exact(f, 8, what))
                    (n,) = _U32.unpack(_read_exact(f, 4, what))
                    path = os.fsdecode(_read_exact(f, n, what))
                    fd = _open_in_layer(layer_dir, path)
                    with os.fdopen(fd, "rb") as src:
                        while size:
                            chunk = src.read(min(size, _CHUNK))
                            if not chunk:
                                raise ImageError(f"{layer_dir}/{path}: shorter than recorded")
                            size -= len(chunk)
                            yield chunk
                else:
                    raise ImageError(f"{what}: corrupt tar record")
    except zstandard.ZstdError as exc:
        raise ImageError(f"{what}: corrupt tar record: {exc}") from None
    except OSError as exc:
        raise ImageError(f"{what}: cannot rebuild the layer tar: {exc}") from None


def write_reproduced(record: Path, layer_dir: Path, out: BinaryIO, diff_id: str) -> int:
    """Write the rebuilt tar to ``out``; raise ``ImageError`` unless its sha256 is ``diff_id``.

    Returns the number of bytes written.
    """
    digest = hashlib.sha256()
    total = 0
    for chunk in reproduce(record, layer_dir):
        digest.update(chunk)
        total += len(chunk)
        out.write(chunk)
    if "sha256:" + digest.hexdigest() != diff_id:
        raise ImageError(
            f"layer {diff_id}: the rebuilt tar does not match its diff-id "
            f"(got sha256:{digest.hexdigest()}); the layer directory was changed"
        )
    return total
