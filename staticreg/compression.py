"""Layer codecs: streaming gzip (ISA-L) and zstd writers and readers.

The compressed bytes, and so the digests, depend on the library, the level and the
block size, never on the machine's core count: both codecs run in their
multi-threaded modes, whose output is the same for any number of workers of at
least one. A tree records the settings it was published with (see ``settings_id``)
so that the layer map never reuses a blob made with other settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import zstandard
from isal import igzip_threaded, isal_zlib

from staticreg.errors import StaticregError

KINDS = ("gzip", "zstd", "none")
DEFAULT_LEVEL = {"gzip": 1, "zstd": 3, "none": 0}
LEVEL_RANGE = {"gzip": (0, 3), "zstd": (1, 19), "none": (0, 0)}
GZIP_BLOCK_SIZE = 1 << 20

_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


@dataclass(frozen=True)
class Codec:
    """What a layer is compressed with: kind ('gzip', 'zstd' or 'none') and level."""

    kind: str
    level: int

    @property
    def settings_id(self) -> str:
        """Names everything that decides the compressed bytes, for the layer map."""
        if self.kind == "gzip":
            return f"gzip-isal-l{self.level}-b{GZIP_BLOCK_SIZE}"
        if self.kind == "zstd":
            return f"zstd-l{self.level}-mt"
        return "none"


def codec(kind: str, level: int | None = None) -> Codec:
    """Validate a compression kind and level; level None picks the default."""
    if kind not in KINDS:
        raise StaticregError(
            f"unknown compression {kind!r}: expected one of {', '.join(KINDS)}"
        )
    if level is None:
        level = DEFAULT_LEVEL[kind]
    low, high = LEVEL_RANGE[kind]
    if not low <= level <= high:
        raise StaticregError(
            f"compression level {level} is out of range for {kind}: expected "
            f"{low} to {high}"
        )
    return Codec(kind, level)


def sniff(head: bytes) -> str:
    """'gzip', 'zstd' or 'none', from the first bytes of a layer."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


class _SinkFile:
    """Adapts a Sink to the file interface that the compressors write to."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, data: bytes | memoryview) -> int:
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class Writer(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...

    def close(self) -> None: ...


def open_writer(target: Codec, sink: Sink, zstd_threads: int | None = None) -> Writer:
    """A writer that compresses what it is given and passes the result to ``sink``.

    ``close`` flushes the last block; it does not close the sink. ``zstd_threads``
    bounds zstd's workers (each holds several MB of buffers) when layers are
    compressed side by side; the bytes written are the same for any count.
    """
    raw = _SinkFile(sink)
    if target.kind == "gzip":
        return igzip_threaded.open(  # type: ignore[no-any-return,no-untyped-call]
            raw,
            "wb",
            compresslevel=target.level,
            threads=_threads(),
            block_size=GZIP_BLOCK_SIZE,
        )
    if target.kind == "zstd":
        threads = zstd_threads or _threads()
        compressor = zstandard.ZstdCompressor(level=target.level, threads=threads)
        return compressor.stream_writer(raw, closefd=False)  # type: ignore[arg-type]
    return _Passthrough(sink)


class _Passthrough:
    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, data: bytes | memoryview) -> int:
        self._sink.write(data)
        return len(data)

    def close(self) -> None:
        pass


class Decoder:
    """Push-style decompressor: feed compressed chunks, get uncompressed bytes.

    Handles streams of several gzip members or zstd frames, as some tools write.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._inner: Any = self._new()

    def _new(self) -> Any:
        if self.kind == "gzip":
            return isal_zlib.decompressobj(wbits=31)
        return zstandard.ZstdDecompressor().decompressobj()

    def feed(self, chunk: bytes) -> bytes:
        out = []
        while chunk:
            try:
                out.append(self._inner.decompress(chunk))
            except (_ISAL_ERROR, zstandard.ZstdError) as err:
                raise ValueError(f"corrupt {self.kind} stream: {err}") from None
            if not self._inner.eof:
                break
            chunk = self._inner.unused_data
            if chunk:
                self._inner = self._new()
        return b"".join(out)

    def finish(self) -> None:
        """Raise ValueError if the stream ended inside a member or frame."""
        if not self._inner.eof:
            raise ValueError(f"{self.kind} stream ends before its end marker")
