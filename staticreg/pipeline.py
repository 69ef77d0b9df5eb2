"""One pass over a layer: read it once, hash, (de)compress, hash again, stage.

Whatever the source holds (an uncompressed tar, gzip or zstd) and whatever the
tree wants, each byte is read from the source once: the uncompressed stream is
hashed into the diff_id and checked against the config, the stored stream is
hashed into the blob digest while it is written to a staged object. Memory stays
at a few buffers per layer whatever its size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from staticreg import compression, paths
from staticreg import digest as digestmod
from staticreg.compression import Codec
from staticreg.digest import Digest, Hasher
from staticreg.errors import DigestMismatch, SourceError
from staticreg.model import Blob, Layer
from staticreg.store import StagedWriter, Store

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Plan:
    """What the tree asks of layers: 'auto' keeps compressed input as it is, and
    'keep' keeps every layer as it is (for images whose digest must not change)."""

    compression: str = "auto"
    level: int | None = None
    # zstd workers per layer; None uses every core (see compression.open_writer).
    zstd_threads: int | None = None

    def codec_for(self, source_kind: str) -> Codec:
        if self.compression == "keep":
            return compression.codec(source_kind, None)
        if self.compression == "auto":
            if source_kind != "none":
                return compression.codec(source_kind, None)
            return compression.codec("gzip", self.level)
        return compression.codec(self.compression, self.level)

    def keeps(self, source_kind: str) -> bool:
        """True when the source's bytes are stored as they are."""
        if self.compression == "keep":
            return True
        if source_kind == "none":
            return self.compression == "none"
        return self.compression in ("auto", source_kind)


# The layer map's settings for a compressed layer kept as the source held it: its
# bytes come from elsewhere, so they must never stand for our own compression.
KEPT = "kept"


@dataclass
class StagedLayer:
    """A layer's stored blob: staged for commit, or already in the tree.

    ``remember_as`` is the layer map settings the blob is recorded under once
    committed (None: nothing to record)."""

    diff_id: Digest
    digest: Digest
    size: int
    kind: str
    settings_id: str
    writer: StagedWriter | None
    remember_as: str | None


class _HashingSink:
    def __init__(self, writer: StagedWriter) -> None:
        self.hasher = Hasher()
        self._writer = writer

    def write(self, data: bytes | memoryview) -> int:
        self.hasher.update(data)
        self._writer.write(data)
        return len(data)


def stage(layer: Layer, plan: Plan, store: Store, progress: Progress) -> StagedLayer:
    """Read ``layer`` once and stage the blob the plan asks for.

    Raises DigestMismatch when the uncompressed bytes do not hash to the diff_id
    the config records. When the tree already holds the blob the layer would
    become, the source is only hashed, to prove it is that layer, and nothing is
    compressed or written.
    """
    with layer.opener() as source:
        head = source.read(CHUNK_SIZE)
        kind = compression.sniff(head)
        target = plan.codec_for(kind)
        keeps = plan.keeps(kind)
        if keeps:
            known = _kept_blob(store, layer, kind)
        else:
            known = _compressed_blob(store, layer.diff_id, target)
        if known is not None:
            _verify_only(layer, source, head, progress, raw=keeps and kind != "none")
            return StagedLayer(
                layer.diff_id,
                known[0],
                known[1],
                target.kind,
                target.settings_id,
                None,
                None,
            )
        return _stream(layer, source, head, kind, plan, target, store, progress)


def _compressed_blob(
    store: Store, diff_id: Digest, target: Codec
) -> tuple[Digest, int] | None:
    """The blob the layer map records for ``diff_id`` compressed with ``target``."""
    if target.kind == "none":
        return None
    return _mapped_blob(store, diff_id, target.settings_id)


def _kept_blob(store: Store, layer: Layer, kind: str) -> tuple[Digest, int] | None:
    """The blob a layer kept as it is would be, if the tree holds it already."""
    if kind == "none":
        # An uncompressed blob is the layer itself: its digest is the diff_id.
        if store.stat(paths.blob(layer.diff_id)) == layer.size:
            return layer.diff_id, layer.size
        return None
    # A compressed one is known by the digest the source names, and only if an
    # earlier publish checked that its content has this diff_id.
    stored = layer.stored
    if stored is None or _mapped_blob(store, layer.diff_id, KEPT) != (
        stored.digest,
        stored.size,
    ):
        return None
    return stored.digest, stored.size


def _mapped_blob(
    store: Store, diff_id: Digest, settings_id: str
) -> tuple[Digest, int] | None:
    try:
        entry = store.get(paths.layer_map(diff_id, settings_id)).decode()
        text, size_text = entry.split()
        found, size = digestmod.parse(text), int(size_text)
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    # The map is a cache: trust an entry only while its blob is there, whole.
    if store.stat(paths.blob(found)) != size:
        log.debug("layer map entry for %s is stale; reading it again", diff_id.short)
        return None
    return found, size


def remember(store: Store, staged: StagedLayer) -> None:
    """Record a layer in the layer map, once its blob is committed."""
    if staged.remember_as is not None:
        key = paths.layer_map(staged.diff_id, staged.remember_as)
        store.put(key, f"{staged.digest} {staged.size}\n".encode())


def _verify_only(
    layer: Layer, source: BinaryIO, head: bytes, progress: Progress, raw: bool
) -> None:
    """Hash the source: the uncompressed stream against the diff_id, or with
    ``raw`` the stored stream against the source's own descriptor."""
    hasher = Hasher()
    hasher.update(head)
    progress(len(head))
    for chunk in _chunks(source):
        hasher.update(chunk)
        progress(len(chunk))
    if raw:
        _check_stored(layer, hasher)
    else:
        _check_diff_id(layer, hasher.digest())


def _stream(
    layer: Layer,
    source: BinaryIO,
    head: bytes,
    kind: str,
    plan: Plan,
    target: Codec,
    store: Store,
    progress: Progress,
) -> StagedLayer:
    writer = store.staged_writer()
    try:
        sink = _HashingSink(writer)
        diff_hasher = Hasher()
        if plan.keeps(kind):
            _copy(source, head, kind, sink, diff_hasher, progress)
        else:
            _transcode(
                source,
                head,
                kind,
                target,
                sink,
                diff_hasher,
                progress,
                plan.zstd_threads,
            )
        writer.close()
        _check_diff_id(layer, diff_hasher.digest())
        if layer.stored is not None and plan.keeps(kind):
            _check_stored(layer, sink.hasher)
    except BaseException:
        writer.discard()
        raise
    stored = sink.hasher
    if not plan.keeps(kind):
        remember_as: str | None = target.settings_id
    else:
        remember_as = KEPT if kind != "none" and layer.stored is not None else None
    return StagedLayer(
        layer.diff_id,
        stored.digest(),
        stored.size,
        target.kind,
        target.settings_id,
        writer,
        remember_as,
    )


def _copy(
    source: BinaryIO,
    head: bytes,
    kind: str,
    sink: _HashingSink,
    diff_hasher: Hasher,
    progress: Progress,
) -> None:
    decoder = compression.Decoder(kind) if kind != "none" else None
    for chunk in _with_head(head, source):
        sink.write(chunk)
        diff_hasher.update(_decode(decoder, chunk) if decoder else chunk)
        progress(len(chunk))
    if decoder:
        _finish(decoder)


def _transcode(
    source: BinaryIO,
    head: bytes,
    kind: str,
    target: Codec,
    sink: _HashingSink,
    diff_hasher: Hasher,
    progress: Progress,
    zstd_threads: int | None,
) -> None:
    decoder = compression.Decoder(kind) if kind != "none" else None
    encoder = compression.open_writer(target, sink, zstd_threads)
    try:
        for chunk in _with_head(head, source):
            plain = _decode(decoder, chunk) if decoder else chunk
            diff_hasher.update(plain)
            encoder.write(plain)
            progress(len(chunk))
    finally:
        encoder.close()
    if decoder:
        _finish(decoder)


def _decode(decoder: compression.Decoder, chunk: bytes) -> bytes:
    try:
        return decoder.feed(chunk)
    except ValueError as err:
        raise SourceError(f"cannot read a layer: {err}") from None


def _finish(decoder: compression.Decoder) -> None:
    try:
        decoder.finish()
    except ValueError as err:
        raise SourceError(f"cannot read a layer: {err}") from None


def _with_head(head: bytes, source: BinaryIO) -> Iterator[bytes]:
    yield head
    yield from _chunks(source)


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(CHUNK_SIZE):
        yield chunk


def _check_stored(layer: Layer, hasher: Hasher) -> None:
    assert layer.stored is not None
    expected = layer.stored
    if (hasher.digest(), hasher.size) != (expected.digest, expected.size):
        raise DigestMismatch(
            f"layer {layer.name!r} has digest {hasher.digest()} and size "
            f"{hasher.size}, but its manifest expects {expected.digest} and size "
            f"{expected.size}",
            hint="the layout is corrupt or was modified; export it again",
        )


@dataclass
class StagedBlob:
    """A blob copied as it is: staged for commit, or already in the tree."""

    digest: Digest
    size: int
    writer: StagedWriter | None


def stage_blob(blob: Blob, store: Store, progress: Progress) -> StagedBlob:
    """Copy a blob the source names by digest, checking digest and size."""
    expected = blob.descriptor
    if store.stat(paths.blob(expected.digest)) == expected.size:
        return StagedBlob(expected.digest, expected.size, None)
    writer = store.staged_writer()
    try:
        sink = _HashingSink(writer)
        with blob.opener() as source:
            for chunk in _chunks(source):
                sink.write(chunk)
                progress(len(chunk))
        writer.close()
        actual = sink.hasher
        if (actual.digest(), actual.size) != (expected.digest, expected.size):
            raise DigestMismatch(
                f"blob {blob.name!r} has digest {actual.digest()} and size "
                f"{actual.size}, expected {expected.digest} and size {expected.size}",
                hint="the input is corrupt or was modified; export it again",
            )
    except BaseException:
        writer.discard()
        raise
    return StagedBlob(expected.digest, expected.size, writer)


def _check_diff_id(layer: Layer, actual: Digest) -> None:
    if actual != layer.diff_id:
        raise DigestMismatch(
            f"layer {layer.name!r} has diff_id {actual}, but its config expects "
            f"{layer.diff_id}",
            hint="the archive is corrupt or was modified; save it again",
        )
