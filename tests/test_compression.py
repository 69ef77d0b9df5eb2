from __future__ import annotations

import gzip
import hashlib
import os

import pytest
import zstandard

from staticreg import compression
from staticreg.errors import StaticregError


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes | memoryview) -> int:
        self.data += chunk
        return len(chunk)


def _compress(kind: str, data: bytes) -> bytes:
    sink = Collect()
    writer = compression.open_writer(compression.codec(kind), sink)
    for start in range(0, len(data), 300_000):
        writer.write(data[start : start + 300_000])
    writer.close()
    return bytes(sink.data)


DATA = os.urandom(500_000) + b"layer text " * 300_000


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_round_trip_and_determinism(kind: str) -> None:
    first, second = _compress(kind, DATA), _compress(kind, DATA)
    assert first == second
    decoder = compression.Decoder(kind) if kind != "none" else None
    plain = decoder.feed(first) if decoder else first
    assert plain == DATA


def test_gzip_header_has_no_timestamp_or_name() -> None:
    out = _compress("gzip", b"abc")
    assert out[:4] == b"\x1f\x8b\x08\x00"  # no FNAME flag
    assert out[4:8] == b"\x00\x00\x00\x00"  # MTIME zero
    assert gzip.decompress(out) == b"abc"


def test_zstd_output_is_standard() -> None:
    out = _compress("zstd", DATA)
    reader = zstandard.ZstdDecompressor().stream_reader(out)
    assert reader.read() == DATA


def test_decoder_handles_several_members_and_reports_truncation() -> None:
    data = gzip.compress(b"one") + gzip.compress(b"two")
    decoder = compression.Decoder("gzip")
    assert decoder.feed(data) == b"onetwo"
    decoder.finish()
    cut = compression.Decoder("gzip")
    cut.feed(gzip.compress(DATA)[:1000])
    with pytest.raises(ValueError, match="ends before its end marker"):
        cut.finish()


def test_decoder_reports_corrupt_stream() -> None:
    with pytest.raises(ValueError, match="corrupt gzip stream"):
        compression.Decoder("gzip").feed(b"\x1f\x8b\x08\x00" + b"\xff" * 100)


@pytest.mark.parametrize(
    ("kind", "level", "message"),
    [
        ("gzip", 9, "compression level 9 is out of range for gzip: expected 0 to 3"),
        ("zstd", 0, "compression level 0 is out of range for zstd: expected 1 to 19"),
        ("brotli", None, "unknown compression 'brotli'"),
    ],
)
def test_codec_validation(kind: str, level: int | None, message: str) -> None:
    with pytest.raises(StaticregError, match=message):
        compression.codec(kind, level)


def test_sniff() -> None:
    assert compression.sniff(gzip.compress(b"x")) == "gzip"
    assert compression.sniff(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert compression.sniff(b"usr/\0\0\0") == "none"


# Several gzip blocks and several zstd jobs (about 8 MiB each at level 3), so
# that more than one worker has work to do.
BIG = (os.urandom(3 << 20) + b"text of a layer\n" * 400_000) * 3


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_output_is_the_same_for_any_thread_count(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = {}
    for threads in (1, 2, 3, 8):
        monkeypatch.setattr(compression, "_threads", lambda n=threads: n)
        digests[threads] = hashlib.sha256(_compress(kind, BIG)).hexdigest()
    assert len(set(digests.values())) == 1, digests


@pytest.mark.parametrize("zstd_threads", [1, 2, 5])
def test_zstd_output_is_the_same_for_any_worker_bound(
    zstd_threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compression, "_threads", lambda: 4)
    expected = hashlib.sha256(_compress("zstd", BIG)).hexdigest()
    sink = Collect()
    codec = compression.codec("zstd")
    writer = compression.open_writer(codec, sink, zstd_threads=zstd_threads)
    writer.write(BIG)
    writer.close()
    assert hashlib.sha256(sink.data).hexdigest() == expected
