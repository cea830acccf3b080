"""Names, image config, ``--change`` instructions, digests and compression sniffing."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import typing
import zlib
from datetime import timedelta

import pytest
import zstandard

from pycompose.runtime.errors import ImageError
from pycompose.runtime.images.changes import apply_changes, parse_duration
from pycompose.runtime.images.compression import Compression, open_decompressed
from pycompose.runtime.images.config import (
    ContainerConfig,
    Healthcheck,
    ImageConfig,
    empty_config,
    parse_time,
)
from pycompose.runtime.images.digest import HashingReader, sha256_digest
from pycompose.runtime.images.reference import familiar_name, normalize_name, parse_reference

# --- references --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "stored", "short"), [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v1.2-rc_3", "docker.io/user/app:v1.2-rc_3", "user/app:v1.2-rc_3"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b/c", "localhost:5000/a/b/c:latest", "localhost:5000/a/b/c:latest"),
    ("ghcr.io/o/r:t", "ghcr.io/o/r:t", "ghcr.io/o/r:t"),
    ("my-app__x.y", "docker.io/library/my-app__x.y:latest", "my-app__x.y:latest"),
])
def test_names_normalise_like_docker(text: str, stored: str, short: str) -> None:
    assert normalize_name(text) == stored
    assert familiar_name(stored) == short


@pytest.mark.parametrize(("text", "why"), [
    ("Busybox", "lowercase"),
    ("busybox:", "bad tag"),
    ("busy box", "invalid reference"),
    ("a" * 64, "64-character hexadecimal"),
    ("bb:" + "x" * 129, "bad tag"),
    ("-app", "invalid reference"),
    ("app-", "invalid reference"),
    ("host:port/app", "bad registry"),
    ("", "invalid reference"),
])
def test_bad_names(text: str, why: str) -> None:
    with pytest.raises(ImageError, match=why):
        normalize_name(text)


def test_digest_references() -> None:
    digest = "sha256:" + "ab" * 32
    ref = parse_reference(f"busybox@{digest}")
    assert (ref.tag, ref.digest) == (None, digest)
    assert ref.familiar == f"busybox@{digest}"
    with pytest.raises(ImageError, match="digest cannot be used as a local tag"):
        normalize_name(f"busybox@{digest}")
    with pytest.raises(ImageError, match="bad digest"):
        parse_reference("busybox@sha256:abc")


# --- image config ----------------------------------------------------------------------------

FULL = {
    "architecture": "amd64", "os": "linux", "variant": "", "author": "me",
    "created": "2024-05-01T10:00:00.123456789Z",
    "docker_version": "24.0.0",  # not modelled: must survive a round trip
    "config": {
        "User": "app:app", "Env": ["PATH=/bin", "A=1=2", "EMPTY"], "Cmd": ["serve", "--port=80"],
        "Entrypoint": ["/entry"], "WorkingDir": "/srv",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}}, "Labels": {"org.example": "yes"}, "StopSignal": "SIGQUIT",
        "Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 30_000_000_000,
                        "Retries": 3},
    },
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
    "history": [{"created": "2024-05-01T10:00:00Z", "created_by": "ADD x /"},
                {"created_by": "CMD", "empty_layer": True}],
}


def test_config_parses_every_field() -> None:
    config = ImageConfig.from_json(json.dumps(FULL).encode(), source="t")
    c = config.config
    assert c.user == "app:app"
    assert c.env_map == {"PATH": "/bin", "A": "1=2", "EMPTY": ""}
    assert (c.cmd, c.entrypoint, c.working_dir) == (("serve", "--port=80"), ("/entry",), "/srv")
    assert c.exposed_ports == ("53/udp", "80/tcp")
    assert c.volumes == ("/data",)
    assert c.labels == {"org.example": "yes"}
    assert c.stop_signal == "SIGQUIT"
    assert c.healthcheck == Healthcheck(test=("CMD-SHELL", "wget -q localhost"),
                                        interval=30_000_000_000, retries=3)
    assert config.diff_ids == ("sha256:" + "1" * 64, "sha256:" + "2" * 64)
    assert config.history[1].empty_layer
    assert config.created_at is not None
    assert config.created_at.microsecond == 123456
    again = ImageConfig.from_json(config.to_json(), source="again")
    assert again == config
    assert json.loads(config.to_json())["docker_version"] == "24.0.0"


def test_config_unset_cmd_is_none_not_empty() -> None:
    doc = {**FULL, "config": {"Entrypoint": ["/e"]}}
    c = ImageConfig.from_json(json.dumps(doc).encode(), source="t").config
    assert c.cmd is None
    assert c.entrypoint == ("/e",)
    assert "Cmd" not in c.to_json()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(rootfs={"type": "zfs"}), "rootfs"),
    (lambda d: d["rootfs"].update(diff_ids=["md5:abc"]), r"rootfs.diff_ids\[0\]"),
    (lambda d: d["config"].update(Env="A=1"), "config.Env"),
    (lambda d: d["config"].update(Cmd=[1, 2]), "config.Cmd"),
    (lambda d: d["config"].update(Labels={"a": 1}), "config.Labels"),
    (lambda d: d["config"].update(Healthcheck={"Retries": -1}), "Healthcheck.Retries"),
    (lambda d: d["config"].update(User=0), "config.User"),
    (lambda d: d.update(history="x"), "history"),
])
def test_config_errors_name_the_field(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(json.dumps(FULL))
    mutate(doc)
    with pytest.raises(ImageError, match=message):
        ImageConfig.from_json(json.dumps(doc).encode(), source="img.json")


def test_config_not_json() -> None:
    with pytest.raises(ImageError, match="img.json: image config is not valid JSON"):
        ImageConfig.from_json(b"{", source="img.json")
    with pytest.raises(ImageError, match="must be a JSON object"):
        ImageConfig.from_json(b"[]", source="img.json")


def test_derive_adds_layer_and_history() -> None:
    base = empty_config(architecture="arm64")
    child = base.derive(diff_ids=["sha256:" + "a" * 64], created_by="ADD", comment="c")
    child2 = child.derive(created_by="ENV", config=ContainerConfig(env=("A=1",)))
    assert child2.diff_ids == ("sha256:" + "a" * 64,)
    assert [h.created_by for h in child2.history] == ["ADD", "ENV"]
    assert [h.empty_layer for h in child2.history] == [False, True]
    assert child2.architecture == "arm64"
    assert child2.config.env == ("A=1",)


def test_parse_time() -> None:
    t = parse_time("2024-05-01T10:00:00.123456789Z")
    assert t is not None
    assert (t.year, t.microsecond, t.utcoffset()) == (2024, 123456, timedelta(0))
    assert parse_time("yesterday") is None
    assert parse_time("2024-05-01T10:00:00+02:00") is not None


# --- changes ---------------------------------------------------------------------------------


def test_changes() -> None:
    c = apply_changes(ContainerConfig(), [
        'CMD ["sh", "-c", "echo hi"]',
        "ENTRYPOINT /entry.sh --flag",
        'ENV A=1 B="two words" C=',
        "ENV LEGACY value with spaces",
        "EXPOSE 80 53/udp 8080/tcp",
        'LABEL "com.example.a"=1 b=two',
        "USER 1000:1000",
        "WORKDIR /srv",
        "WORKDIR app",
        'VOLUME ["/data", "/cache"]',
        "STOPSIGNAL SIGINT",
        "HEALTHCHECK --interval=5s --timeout=2s --start-period=1m --retries=4 CMD curl -f x",
        "ONBUILD RUN make",
    ])
    assert c.cmd == ("sh", "-c", "echo hi")
    assert c.entrypoint == ("/bin/sh", "-c", "/entry.sh --flag")
    assert c.env == ("A=1", "B=two words", "C=", "LEGACY=value with spaces")
    assert c.exposed_ports == ("53/udp", "80/tcp", "8080/tcp")
    assert c.labels == {"com.example.a": "1", "b": "two"}
    assert c.user == "1000:1000"
    assert c.working_dir == "/srv/app"
    assert c.volumes == ("/cache", "/data")
    assert c.stop_signal == "SIGINT"
    assert c.healthcheck == Healthcheck(test=("CMD-SHELL", "curl -f x"), interval=5_000_000_000,
                                        timeout=2_000_000_000, start_period=60_000_000_000,
                                        retries=4)
    assert c.on_build == ("RUN make",)
    off = apply_changes(c, ["HEALTHCHECK NONE", 'SHELL ["/bin/bash", "-c"]', "CMD echo"])
    assert off.healthcheck == Healthcheck(test=("NONE",))
    assert off.cmd == ("/bin/bash", "-c", "echo")


@pytest.mark.parametrize(("change", "message"), [
    ("RUN make", "unsupported instruction 'RUN'"),
    ("EXPOSE 70000", "invalid port"),
    ("EXPOSE 80/icmp", "invalid port"),
    ("CMD", "needs an argument"),
    ("HEALTHCHECK --interval=soon CMD x", "invalid duration"),
    ("HEALTHCHECK --bogus=1 CMD x", "unknown HEALTHCHECK option"),
    ("HEALTHCHECK --retries=3", "expected HEALTHCHECK"),
    ("ENV A=1 B", "expected KEY=VALUE"),
    ("SHELL sh", "JSON array"),
])
def test_bad_changes(change: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        apply_changes(ContainerConfig(), [change])


def test_durations() -> None:
    assert parse_duration("1m30s", "x") == 90_000_000_000
    assert parse_duration("500ms", "x") == 500_000_000
    assert parse_duration("1.5h", "x") == 5_400_000_000_000
    with pytest.raises(ImageError):
        parse_duration("5", "x")


# --- digests and compression -------------------------------------------------------------------


def test_hashing_reader_verifies() -> None:
    data = b"layer" * 1000
    reader = HashingReader(io.BytesIO(data))
    assert reader.read(10) == data[:10]
    reader.drain()
    reader.verify(sha256_digest(data), "blob", len(data))
    with pytest.raises(ImageError, match="size mismatch"):
        reader.verify(sha256_digest(data), "blob", len(data) + 1)
    with pytest.raises(ImageError, match="blob: digest mismatch"):
        reader.verify(sha256_digest(b"other"), "blob")


PAYLOAD = b"".join(bytes([i % 251]) * (i % 97) for i in range(5000))


@pytest.mark.parametrize(("kind", "packed"), [
    (Compression.NONE, PAYLOAD),
    (Compression.GZIP, gzip.compress(PAYLOAD)),
    (Compression.ZSTD, zstandard.ZstdCompressor().compress(PAYLOAD)),
    (Compression.BZIP2, bz2.compress(PAYLOAD)),
    (Compression.XZ, lzma.compress(PAYLOAD)),
    # several zstd frames (as pigz/zstd --rsyncable and concatenated layers produce)
    (Compression.ZSTD, zstandard.ZstdCompressor().compress(PAYLOAD[:1000])
     + zstandard.ZstdCompressor().compress(PAYLOAD[1000:])),
])
def test_decompress_by_magic(kind: Compression, packed: bytes) -> None:
    found, stream = open_decompressed(io.BytesIO(packed))
    assert found is kind
    out = b""
    while chunk := stream.read(777):
        out += chunk
    assert out == PAYLOAD


@pytest.mark.parametrize("packed", [
    gzip.compress(PAYLOAD),
    zstandard.ZstdCompressor().compress(PAYLOAD),
    lzma.compress(PAYLOAD),
])
def test_truncated_compressed_stream_raises(packed: bytes) -> None:
    _, stream = open_decompressed(io.BytesIO(packed[: len(packed) - 5]))

    def read_all() -> None:
        while stream.read(4096):
            pass

    with pytest.raises((EOFError, OSError, lzma.LZMAError)):
        read_all()


def _gzip_member(data: bytes, *, name: bytes = b"", comment: bytes = b"", extra: bytes = b"",
                 hcrc: bool = False) -> bytes:
    """A gzip member with the optional header fields set (gzip.compress writes none)."""
    flags = (4 if extra else 0) | (8 if name else 0) | (16 if comment else 0) | (2 if hcrc else 0)
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff"
    if extra:
        header += len(extra).to_bytes(2, "little") + extra
    if name:
        header += name + b"\0"
    if comment:
        header += comment + b"\0"
    if hcrc:
        header += (zlib.crc32(header) & 0xFFFF).to_bytes(2, "little")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(data) + deflate.flush()
    return header + body + zlib.crc32(data).to_bytes(4, "little") \
        + (len(data) & 0xFFFFFFFF).to_bytes(4, "little")


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read (headers split across reads)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def read(self, size: int = -1) -> bytes:
        n = self._step if size < 0 else min(size, self._step)
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def readable(self) -> bool:
        return True


def _read_all(stream: io.RawIOBase | typing.BinaryIO) -> bytes:
    out = b""
    while chunk := stream.read(777):
        out += chunk
    return out


@pytest.mark.parametrize("step", [1, 3, 1 << 20])
@pytest.mark.parametrize("verified", [False, True])
def test_gzip_members_with_header_fields_and_padding(step: int, verified: bool) -> None:
    packed = (_gzip_member(PAYLOAD[:3000], name=b"layer.tar", comment=b"c", extra=b"xy",
                           hcrc=True)
              + b"\0" * 7 + _gzip_member(PAYLOAD[3000:]) + b"\0" * 512)
    found, stream = open_decompressed(typing.cast(typing.BinaryIO, _Trickle(packed, step)),
                                      verified=verified)
    assert found is Compression.GZIP
    assert _read_all(stream) == PAYLOAD


def test_gzip_without_crc_check_still_checks_length_and_truncation() -> None:
    member = bytearray(_gzip_member(PAYLOAD))
    member[-4:] = (len(PAYLOAD) + 1).to_bytes(4, "little")  # a wrong ISIZE
    with pytest.raises(zlib.error, match="length"):
        _read_all(open_decompressed(io.BytesIO(bytes(member)), verified=True)[1])
    truncated = _gzip_member(PAYLOAD)[:-3]                  # the trailer cut short
    with pytest.raises(EOFError):
        _read_all(open_decompressed(io.BytesIO(truncated), verified=True)[1])
    corrupt_crc = bytearray(_gzip_member(PAYLOAD))
    corrupt_crc[-8] ^= 0xFF  # only the CRC-checking path notices a wrong CRC
    assert _read_all(open_decompressed(io.BytesIO(bytes(corrupt_crc)), verified=True)[1]) \
        == PAYLOAD
    with pytest.raises(zlib.error):
        _read_all(open_decompressed(io.BytesIO(bytes(corrupt_crc)))[1])
