"""Write images into a tree: blobs, then manifests, then tags, then listings.

The order is what keeps readers safe. Every blob of every image is staged and
checked before anything becomes visible; then, under the tree's lock, blobs are
committed, then each repository's blob links and manifests by digest, then its
tags, its record and tags list, and last the catalog. An interrupted publish
leaves at worst unreferenced blobs, never a tag or manifest pointing at something
missing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from staticreg import __version__, catalog, mediatypes, paths, pipeline
from staticreg import digest as digestmod
from staticreg.catalog import RepositoryRecord, TagEntry
from staticreg.digest import Digest
from staticreg.errors import Conflict
from staticreg.model import JSON, Image, Layer
from staticreg.pipeline import Plan, StagedLayer
from staticreg.reference import Reference
from staticreg.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """One tag written: what ``staticreg publish`` prints as NAME:TAG@DIGEST."""

    repository: str
    tag: str
    digest: Digest
    media_type: str
    size: int

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


@dataclass(frozen=True)
class _Manifest:
    image: Image
    raw: bytes
    digest: Digest
    blobs: dict[str, int]


class Reporter:
    """Progress hooks; the CLI draws bars with them, the library stays silent."""

    def start_layer(self, key: str, name: str, total: int) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def finish_layer(self, key: str) -> None:
        pass


def publish(
    store: Store,
    targets: Sequence[tuple[Image, Sequence[Reference]]],
    plan: Plan | None = None,
    reporter: Reporter | None = None,
    workers: int | None = None,
) -> list[Published]:
    """Publish each image under its references; return one entry per tag."""
    plan = plan or Plan()
    reporter = reporter or Reporter()
    check_tree(store)
    staged = _stage_layers(
        [image for image, _ in targets], plan, store, reporter, workers
    )
    try:
        manifests = [_build_manifest(image, staged) for image, _ in targets]
        with store.lock():
            _commit_blobs(store, targets, staged, manifests)
            published = _commit_pointers(store, targets, manifests)
    finally:
        for layer in staged.values():
            if layer.writer is not None:
                layer.writer.discard()
    return published


def check_tree(store: Store) -> None:
    """Refuse a tree from a newer staticreg, or a folder that holds other files."""
    settings = catalog.read_settings(store)
    if settings is None:
        stray = [k for k in store.list("") if not k.startswith(paths.PRIVATE + "/")]
        if stray:
            raise Conflict(
                f"refusing to publish into {store.url}: it is not a staticreg tree "
                f"(it has no {paths.SETTINGS} but holds {stray[0]!r})",
                hint="give --root an empty or new folder",
            )
        return
    version = settings.get("format")
    if not isinstance(version, int) or version > paths.FORMAT_VERSION:
        raise Conflict(
            f"cannot publish into {store.url}: its format {version!r} is newer than "
            f"this staticreg understands ({paths.FORMAT_VERSION})",
            hint="upgrade staticreg",
        )


# Stage ---------------------------------------------------------------------------


def _stage_layers(
    images: Sequence[Image],
    plan: Plan,
    store: Store,
    reporter: Reporter,
    workers: int | None,
) -> dict[Digest, StagedLayer]:
    unique: dict[Digest, Layer] = {}
    for image in images:
        for layer in image.layers:
            unique.setdefault(layer.diff_id, layer)

    def run(layer: Layer) -> StagedLayer:
        key = layer.diff_id.short
        reporter.start_layer(key, layer.name, layer.size)
        try:
            return pipeline.stage(
                layer, plan, store, lambda n: reporter.advance(key, n)
            )
        finally:
            reporter.finish_layer(key)

    # Compressors, hashing and file I/O release the GIL, so threads use every
    # core; the pool bounds the layers in flight, and so memory.
    count = workers or min(len(unique) or 1, os.cpu_count() or 1, 4)
    done: dict[Digest, StagedLayer] = {}
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = {
            diff_id: pool.submit(run, layer) for diff_id, layer in unique.items()
        }
        try:
            for diff_id, future in futures.items():
                done[diff_id] = future.result()
        except BaseException:
            for future in futures.values():
                future.cancel()
            for future in futures.values():
                if not future.cancelled() and future.exception() is None:
                    staged = future.result()
                    if staged.writer is not None:
                        staged.writer.discard()
            raise
    return done


def _build_manifest(image: Image, staged: dict[Digest, StagedLayer]) -> _Manifest:
    layers = [staged[layer.diff_id] for layer in image.layers]
    doc: JSON = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {
            "mediaType": mediatypes.OCI_CONFIG,
            "digest": str(image.config_digest),
            "size": len(image.config),
        },
        "layers": [
            {
                "mediaType": mediatypes.OCI_LAYERS[layer.kind],
                "digest": str(layer.digest),
                "size": layer.size,
            }
            for layer in layers
        ],
    }
    raw = json.dumps(doc, indent=2).encode()
    blobs = {str(image.config_digest): len(image.config)}
    blobs.update({str(layer.digest): layer.size for layer in layers})
    return _Manifest(image, raw, digestmod.of_bytes(raw), blobs)


# Commit --------------------------------------------------------------------------


def _commit_blobs(
    store: Store,
    targets: Sequence[tuple[Image, Sequence[Reference]]],
    staged: dict[Digest, StagedLayer],
    manifests: list[_Manifest],
) -> None:
    for layer in staged.values():
        if layer.writer is None:
            continue
        if store.stat(paths.blob(layer.digest)) == layer.size:
            layer.writer.discard()
        else:
            layer.writer.commit(paths.blob(layer.digest))
        log.debug("blob %s (%d bytes) in place", layer.digest.short, layer.size)
        pipeline.remember(store, layer)
    for (image, _), manifest in zip(targets, manifests, strict=True):
        _put_blob(store, image.config_digest, image.config)
        _put_blob(store, manifest.digest, manifest.raw)


def _put_blob(store: Store, digest: Digest, data: bytes) -> None:
    if store.stat(paths.blob(digest)) != len(data):
        store.put(paths.blob(digest), data)


def _commit_pointers(
    store: Store,
    targets: Sequence[tuple[Image, Sequence[Reference]]],
    manifests: list[_Manifest],
) -> list[Published]:
    by_repository: dict[str, list[tuple[_Manifest, str]]] = {}
    for (_, refs), manifest in zip(targets, manifests, strict=True):
        for ref in refs:
            assert ref.tag is not None, "publish targets carry tags"
            by_repository.setdefault(ref.repository, []).append((manifest, ref.tag))

    published = []
    for name, entries in sorted(by_repository.items()):
        published += _commit_repository(store, name, entries)
    names = catalog.read_names(store)
    store.put(paths.CATALOG, catalog.catalog_bytes(names + list(by_repository)))
    store.put(paths.API_ROOT, b"{}\n")
    if catalog.read_settings(store) is None:
        settings = {
            "format": paths.FORMAT_VERSION,
            "layout": "directory",
            "generator": f"staticreg {__version__}",
        }
        store.put(paths.SETTINGS, (json.dumps(settings, indent=2) + "\n").encode())
    return published


def _commit_repository(
    store: Store, name: str, entries: list[tuple[_Manifest, str]]
) -> list[Published]:
    record = catalog.read_repository(store, name) or RepositoryRecord(name)
    media_type = mediatypes.OCI_MANIFEST

    # Links and manifests by digest first: a tag may point only at what exists.
    for manifest, _ in entries:
        for blob in [*manifest.blobs, str(manifest.digest)]:
            store.put(paths.blob_link(name, digestmod.parse(blob)), b"")
        store.put(
            paths.manifest(name, manifest.digest, media_type), manifest.raw, media_type
        )
        record.manifests[str(manifest.digest)] = {
            "mediaType": media_type,
            "size": len(manifest.raw),
            "platform": str(manifest.image.platform),
            "config": str(manifest.image.config_digest),
            "blobs": manifest.blobs,
        }

    # Then tags: the new file first, then any left from another media type.
    published = []
    for manifest, tag in entries:
        key = paths.tag(name, tag, media_type)
        store.put(key, manifest.raw, media_type)
        for stale in paths.tag_candidates(name, tag):
            if stale != key:
                store.delete(stale)
        record.tags[tag] = TagEntry(str(manifest.digest), media_type, len(manifest.raw))
        published.append(
            Published(name, tag, manifest.digest, media_type, len(manifest.raw))
        )
        log.info("published %s:%s@%s", name, tag, manifest.digest)

    store.put(paths.repository_record(name), record.to_bytes())
    store.put(paths.tags_list(name), record.tags_list())
    return published
