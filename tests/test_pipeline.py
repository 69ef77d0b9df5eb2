"""The one-pass layer pipeline, against digests computed the slow way."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from typing import BinaryIO

import pytest
import zstandard

from staticreg import digest, mediatypes, paths, pipeline
from staticreg.errors import DigestMismatch
from staticreg.model import Descriptor, Layer
from staticreg.pipeline import Plan
from staticreg.store import MemoryStore

# Larger than the pipeline's read buffer, so every path loops more than once.
PLAIN = (os.urandom(1 << 20) + b"text of a file\n" * 200_000) * 2


def _layer(data: bytes, diff_id: bytes = PLAIN) -> Layer:
    def opener() -> BinaryIO:
        return io.BytesIO(data)

    return Layer(opener, digest.of_bytes(diff_id), "test-layer", len(data))


def _stage(layer: Layer, plan: Plan, store: MemoryStore) -> pipeline.StagedLayer:
    seen: list[int] = []
    staged = pipeline.stage(layer, plan, store, seen.append)
    assert sum(seen) == layer.size
    return staged


def _committed(store: MemoryStore, staged: pipeline.StagedLayer) -> bytes:
    assert staged.writer is not None
    staged.writer.commit(paths.blob(staged.digest))
    return store.get(paths.blob(staged.digest))


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_blob_digest_and_size_match_reference(kind: str) -> None:
    store = MemoryStore()
    staged = _stage(_layer(PLAIN), Plan(kind), store)
    blob = _committed(store, staged)
    assert staged.digest.hex == hashlib.sha256(blob).hexdigest()
    assert staged.size == len(blob)
    assert staged.diff_id == digest.of_bytes(PLAIN)
    decoder = pipeline.compression.Decoder(kind)
    assert decoder.feed(blob) == PLAIN


def test_uncompressed_blob_is_the_layer_itself() -> None:
    store = MemoryStore()
    staged = _stage(_layer(PLAIN), Plan("none"), store)
    assert staged.digest == digest.of_bytes(PLAIN)
    assert _committed(store, staged) == PLAIN


def test_output_is_deterministic_across_runs() -> None:
    digests = {
        _stage(_layer(PLAIN), Plan("gzip"), MemoryStore()).digest for _ in range(3)
    }
    assert len(digests) == 1


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_blob_digest_is_the_same_for_any_core_count(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = {}
    for cores in (1, 2, 7):
        monkeypatch.setattr(pipeline.compression, "_threads", lambda n=cores: n)
        for zstd_threads in (None, 1, 3):
            plan = Plan(kind, zstd_threads=zstd_threads)
            staged = _stage(_layer(PLAIN), plan, MemoryStore())
            found[(cores, zstd_threads)] = staged.digest
    assert len(set(found.values())) == 1, found


@pytest.mark.parametrize(
    ("compress", "kind"),
    [
        (lambda d: gzip.compress(d, mtime=0), "gzip"),
        (zstandard.ZstdCompressor().compress, "zstd"),
    ],
)
def test_auto_keeps_compressed_input_byte_for_byte(compress, kind: str) -> None:  # type: ignore[no-untyped-def]
    source = compress(PLAIN)
    store = MemoryStore()
    staged = _stage(_layer(source), Plan("auto"), store)
    assert staged.kind == kind
    assert _committed(store, staged) == source
    assert staged.digest == digest.of_bytes(source)


def test_recompresses_when_asked_for_another_codec() -> None:
    store = MemoryStore()
    staged = _stage(_layer(gzip.compress(PLAIN)), Plan("zstd"), store)
    assert staged.kind == "zstd"
    blob = _committed(store, staged)
    assert zstandard.ZstdDecompressor().stream_reader(blob).read() == PLAIN


def test_wrong_diff_id_is_refused_and_nothing_staged() -> None:
    store = MemoryStore()
    with pytest.raises(
        DigestMismatch, match="has diff_id sha256:.* but its config expects"
    ):
        pipeline.stage(
            _layer(PLAIN, diff_id=b"other"), Plan("gzip"), store, lambda n: None
        )
    assert store.objects == {}


def test_layer_map_skips_compression_on_republish() -> None:
    store = MemoryStore()
    first = _stage(_layer(PLAIN), Plan("gzip"), store)
    _committed(store, first)
    pipeline.remember(store, first)

    again = _stage(_layer(PLAIN), Plan("gzip"), store)
    assert again.writer is None and again.remember_as is None
    assert (again.digest, again.size) == (first.digest, first.size)


def test_layer_map_refuses_a_stale_entry() -> None:
    store = MemoryStore()
    first = _stage(_layer(PLAIN), Plan("gzip"), store)
    _committed(store, first)
    pipeline.remember(store, first)
    store.put(paths.blob(first.digest), b"truncated")  # size no longer matches

    again = _stage(_layer(PLAIN), Plan("gzip"), store)
    assert again.writer is not None and again.remember_as == first.remember_as


def test_layer_map_still_verifies_the_source() -> None:
    store = MemoryStore()
    first = _stage(_layer(PLAIN), Plan("gzip"), store)
    _committed(store, first)
    pipeline.remember(store, first)
    tampered = _layer(PLAIN[:-1] + b"!")
    with pytest.raises(DigestMismatch):
        pipeline.stage(tampered, Plan("gzip"), store, lambda n: None)


def test_uncompressed_layer_in_the_tree_is_only_hashed() -> None:
    store = MemoryStore()
    first = _stage(_layer(PLAIN), Plan("none"), store)
    _committed(store, first)

    again = _stage(_layer(PLAIN), Plan("none"), store)
    assert again.writer is None and again.digest == digest.of_bytes(PLAIN)
    with pytest.raises(DigestMismatch, match="has diff_id"):
        pipeline.stage(_layer(PLAIN[:-1] + b"!"), Plan("none"), store, lambda n: None)


def _kept_layer(data: bytes) -> Layer:
    stored = Descriptor(mediatypes.OCI_LAYER_GZIP, digest.of_bytes(data), len(data))

    def opener() -> BinaryIO:
        return io.BytesIO(data)

    return Layer(opener, digest.of_bytes(PLAIN), "kept", len(data), stored)


def test_kept_layer_in_the_tree_is_hashed_but_not_decompressed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = gzip.compress(PLAIN, mtime=0)
    store = MemoryStore()
    first = _stage(_kept_layer(source), Plan("auto"), store)
    assert first.remember_as == pipeline.KEPT
    _committed(store, first)
    pipeline.remember(store, first)

    def no_decoding(*args: object) -> None:
        raise AssertionError("a layer the tree holds was decompressed again")

    monkeypatch.setattr(pipeline.compression, "Decoder", no_decoding)
    again = _stage(_kept_layer(source), Plan("auto"), store)
    assert again.writer is None and again.digest == first.digest
    # Bytes other than the descriptor's are refused even so.
    tampered = _kept_layer(source)
    tampered = Layer(
        lambda: io.BytesIO(source[:-1] + b"!"),
        tampered.diff_id,
        "kept",
        len(source),
        tampered.stored,
    )
    with pytest.raises(DigestMismatch, match="but its manifest expects"):
        pipeline.stage(tampered, Plan("auto"), store, lambda n: None)


def test_kept_layer_without_a_map_entry_is_checked_in_full() -> None:
    source = gzip.compress(PLAIN, mtime=0)
    store = MemoryStore()
    store.put(paths.blob(digest.of_bytes(source)), source)
    # The blob is there, but nothing proved it holds this diff_id: read it all.
    staged = _stage(_kept_layer(source), Plan("auto"), store)
    assert staged.writer is not None
    wrong = Layer(
        lambda: io.BytesIO(source),
        digest.of_bytes(b"x"),
        "kept",
        len(source),
        _kept_layer(source).stored,
    )
    with pytest.raises(DigestMismatch, match="has diff_id"):
        pipeline.stage(wrong, Plan("auto"), store, lambda n: None)
