"""Transparent decompression of layer and archive streams, chosen by magic bytes.

Media types lie often enough (Docker's ``layer.tar`` is plain; some tools label
gzip layers as plain) that the first bytes decide. zstd comes from the
``zstandard`` package rather than the ``zstd`` binary, so decoding never forks
(the engine is a multi-threaded trio process that must not fork).
"""

from __future__ import annotations

import bz2
import enum
import lzma
import zlib
from typing import BinaryIO, cast

import zstandard

# Errors a decoder raises on corrupt or truncated input; callers turn them into ImageError.
DECODE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zstandard.ZstdError,
)


_INPUT_CHUNK = 1 << 18
_OUTPUT_CHUNK = 1 << 18


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", Compression.GZIP),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
    (b"BZh", Compression.BZIP2),
    (b"\xfd7zXZ\x00", Compression.XZ),
)


def detect(head: bytes) -> Compression:
    """The compression of a stream starting with ``head`` (at least 6 bytes when available)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return Compression.NONE


class _Prefixed:
    """A stream returning ``head`` (already read for sniffing), then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._raw.read(size - len(data))
            return data
        return self._raw.read(size)

    def readable(self) -> bool:
        return True


def _read_exactly(raw: BinaryIO, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = raw.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class _ZstdReader:
    """Streaming zstd decoder over any number of frames that notices a truncated last frame.

    (``zstandard``'s own ``stream_reader`` returns a short result without error
    when the input stops in the middle of a frame.)
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._buf = b""
        self._pos = 0
        self._in_frame = False

    def _fill(self) -> bool:
        chunk = self._raw.read(1 << 16)
        if not chunk:
            if self._in_frame:
                raise EOFError("zstd stream ends in the middle of a frame")
            return False
        out = [self._buf[self._pos:]]
        while chunk:
            self._in_frame = True
            out.append(self._obj.decompress(chunk))
            if not self._obj.eof:
                break
            self._in_frame = False
            chunk = self._obj.unused_data
            self._obj = self._dctx.decompressobj()
        self._buf, self._pos = b"".join(out), 0
        return True

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buf) - self._pos < size) and self._fill():
            pass
        end = len(self._buf) if size < 0 else self._pos + size
        data = self._buf[self._pos:end]
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True


_FEXTRA, _FNAME, _FCOMMENT, _FHCRC = 4, 8, 16, 2


class _GzipReader:
    """Streaming gzip decoder straight on ``zlib``, for any number of members and
    trailing zero padding.

    Inflates in steps of at most ``_OUTPUT_CHUNK`` bytes and serves reads from that:
    large reads get one step's output without any copy, small ones (tar headers)
    a slice of it, so a layer of many small files costs no more per byte than one
    big file (``gzip.GzipFile`` takes about twice the CPU on layer blobs).

    With ``check_crc`` zlib parses each member's header and checks its CRC-32 and
    length. Without (the caller verifies a sha256 of the compressed stream, which
    makes the CRC redundant) the header is parsed here and each member is inflated
    raw; only its length is checked, which saves the CRC's pass over every byte.
    """

    def __init__(self, raw: BinaryIO, *, check_crc: bool = True) -> None:
        self._raw = raw
        self._check_crc = check_crc
        self._obj = self._decompressor()
        self._input = b""        # compressed bytes not yet given to zlib
        self._output = b""       # inflated bytes not yet read
        self._pos = 0
        self._eof = False
        self._in_member = False  # a member has started and not yet ended
        self._member_size = 0    # bytes inflated from the current member (raw mode)

    def _decompressor(self) -> zlib._Decompress:
        return zlib.decompressobj(zlib.MAX_WBITS | 16 if self._check_crc else -zlib.MAX_WBITS)

    def _next_input(self) -> bytes:
        chunk = self._raw.read(_INPUT_CHUNK)
        if not chunk:
            if self._in_member:
                raise EOFError("gzip stream ends in the middle of a member")
            self._eof = True
        return chunk

    def _more(self, data: bytes, need: int) -> bytes:
        """``data`` extended from the stream to at least ``need`` bytes (EOFError if it ends)."""
        while len(data) < need:
            chunk = self._raw.read(_INPUT_CHUNK)
            if not chunk:
                raise EOFError("gzip stream ends in the middle of a member")
            data += chunk
        return data

    def _skip_header(self, data: bytes) -> bytes:
        """What follows the member header at the start of ``data`` (raw mode)."""
        data = self._more(data, 10)
        if data[:3] != b"\x1f\x8b\x08":
            raise zlib.error("not a gzip member (bad magic or compression method)")
        flags, pos = data[3], 10
        if flags & _FEXTRA:
            data = self._more(data, pos + 2)
            pos += 2 + int.from_bytes(data[pos:pos + 2], "little")
        for flag in (_FNAME, _FCOMMENT):
            if flags & flag:
                while (end := data.find(b"\0", pos)) < 0:
                    data = self._more(data, len(data) + 1)
                pos = end + 1
        if flags & _FHCRC:
            pos += 2
        data = self._more(data, pos)
        return data[pos:]

    def _end_member(self) -> None:
        """After a member's deflate data: check its trailer (raw mode), start the next."""
        rest = self._obj.unused_data
        if not self._check_crc:
            rest = self._more(rest, 8)
            if int.from_bytes(rest[4:8], "little") != self._member_size & 0xFFFFFFFF:
                raise zlib.error("gzip member length does not match its trailer")
            rest = rest[8:]
        self._input = rest
        self._obj = self._decompressor()
        self._in_member = False
        self._member_size = 0

    def _inflate(self) -> bytes:
        """The next step's output (b"" at the end of the stream)."""
        while not self._eof:
            data = self._obj.unconsumed_tail or self._input or self._next_input()
            self._input = b""
            if not data:
                break
            if not self._in_member:
                data = data.lstrip(b"\0")  # padding between or after members
                if not data:
                    continue
                self._in_member = True
                if not self._check_crc:
                    data = self._skip_header(data)
            out = self._obj.decompress(data, _OUTPUT_CHUNK)
            self._member_size += len(out)
            if self._obj.eof:
                self._end_member()
            if out:
                return out
        return b""

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            parts = [self._output[self._pos:]]
            self._output, self._pos = b"", 0
            while chunk := self._inflate():
                parts.append(chunk)
            return b"".join(parts)
        if self._pos >= len(self._output):
            self._output, self._pos = self._inflate(), 0
        if self._pos == 0 and size >= len(self._output):
            data, self._output = self._output, b""
            return data
        data = self._output[self._pos:self._pos + size]
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True


def open_decompressed(raw: BinaryIO, *, verified: bool = False) -> tuple[Compression, BinaryIO]:
    """Sniff ``raw`` and return its compression and a stream of the decompressed bytes.

    ``verified``: the caller checks a cryptographic digest of ``raw``, so the format's
    own checksum need not be computed (gzip's CRC-32 is skipped).
    """
    head = _read_exactly(raw, 6)
    kind = detect(head)
    stream = cast(BinaryIO, _Prefixed(head, raw))
    if kind is Compression.GZIP:
        return kind, cast(BinaryIO, _GzipReader(stream, check_crc=not verified))
    if kind is Compression.ZSTD:
        return kind, cast(BinaryIO, _ZstdReader(stream))
    if kind is Compression.BZIP2:
        return kind, cast(BinaryIO, bz2.BZ2File(stream, mode="rb"))
    if kind is Compression.XZ:
        return kind, cast(BinaryIO, lzma.LZMAFile(stream, mode="rb"))
    return kind, stream
