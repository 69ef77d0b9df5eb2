"""Write images into a tree: blobs, then manifests, then tags, then listings.

The order is what keeps readers safe. Every blob of every input is staged and
checked before anything becomes visible; then, under the tree's lock, blobs are
committed, then each repository's blob links and manifests by digest (an index's
manifests before the index), then its tags, referrers, record and tags list, and
last the catalog. An interrupted publish leaves at worst unreferenced blobs, never
a tag or manifest pointing at something missing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from staticreg import (
    __version__,
    api,
    catalog,
    manifests,
    mediatypes,
    paths,
    pipeline,
    referrers,
)
from staticreg import digest as digestmod
from staticreg.catalog import RepositoryRecord, TagEntry
from staticreg.digest import Digest
from staticreg.errors import Conflict
from staticreg.gen import site
from staticreg.manifests import Built
from staticreg.model import JSON, Artifact, Blob, Image, Index, Layer, Node
from staticreg.pipeline import Plan, StagedBlob, StagedLayer
from staticreg.reference import Reference
from staticreg.store import StagedWriter, Store

log = logging.getLogger(__name__)

Target = tuple[Node, Sequence[Reference]]
# A referrer and the repositories to publish it in (None: wherever its subject is).
Referrer = tuple[Node, Sequence[str] | None]


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


class Reporter:
    """Progress hooks; the CLI draws bars with them, the library stays silent."""

    def start_layer(self, key: str, name: str, total: int) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def finish_layer(self, key: str) -> None:
        pass


@dataclass
class _Staged:
    layers: dict[tuple[Digest, Digest | None], StagedLayer] = field(
        default_factory=dict
    )
    blobs: dict[Digest, StagedBlob] = field(default_factory=dict)

    def writers(self) -> list[StagedWriter]:
        found = [s.writer for s in self.layers.values()]
        found += [s.writer for s in self.blobs.values()]
        return [w for w in found if w is not None]


def publish(
    store: Store,
    targets: Sequence[Target],
    plan: Plan | None = None,
    reporter: Reporter | None = None,
    workers: int | None = None,
    extra_referrers: Sequence[Referrer] = (),
    layout: str | None = None,
) -> list[Published]:
    """Publish each node under its references, and referrers beside their
    subjects; return one entry per tag written."""
    plan = plan or Plan()
    reporter = reporter or Reporter()
    tree = _Tree(store, tree_layout(store, layout))
    nodes = [node for node, _ in targets] + [node for node, _ in extra_referrers]
    keep = _subjects(extra_referrers)
    staged = _Staged()
    try:
        _stage(nodes, plan, keep, store, reporter, workers, staged)
        built = [manifests.build(node, staged.layers) for node, _ in targets]
        built_refs = [
            manifests.build(node, staged.layers) for node, _ in extra_referrers
        ]
        with store.lock():
            _commit_blobs(store, staged, built + built_refs)
            published = _commit_pointers(
                tree, targets, built, extra_referrers, built_refs
            )
            # Referrers may land in repositories no tag names: then redo them all.
            changed = None if extra_referrers else {p.repository for p in published}
            site.regenerate(store, changed)
            return published
    finally:
        for writer in staged.writers():
            writer.discard()


@dataclass(frozen=True)
class _Tree:
    store: Store
    layout: paths.Layout


def tree_layout(store: Store, requested: str | None = None) -> paths.Layout:
    """The layout of the tree in ``store``: recorded in its settings, else the one
    requested, else the store's default. Refuses trees this version cannot write."""
    settings = check_tree(store)
    if settings is None:
        return paths.layout_named(requested or store.default_layout)
    recorded = paths.layout_named(settings.get("layout", "directory"))
    if requested is not None and requested != recorded.name:
        raise Conflict(
            f"cannot publish into {store.url} with layout {requested!r}: the tree "
            f"uses {recorded.name!r}",
            hint="a tree keeps the layout it was created with; drop the option",
        )
    return recorded


def check_tree(store: Store) -> JSON | None:
    """Refuse a tree from a newer staticreg, or a folder that holds other files;
    return the tree's settings (None for a new tree)."""
    settings = catalog.read_settings(store)
    if settings is None:
        stray = [k for k in store.list("") if not k.startswith(paths.PRIVATE + "/")]
        if stray:
            raise Conflict(
                f"refusing to publish into {store.url}: it is not a staticreg tree "
                f"(it has no {paths.SETTINGS} but holds {stray[0]!r})",
                hint="give --root an empty or new folder",
            )
        return None
    version = settings.get("format")
    if not isinstance(version, int) or version > paths.FORMAT_VERSION:
        raise Conflict(
            f"cannot publish into {store.url}: its format {version!r} is newer than "
            f"this staticreg understands ({paths.FORMAT_VERSION})",
            hint="upgrade staticreg",
        )
    return settings


def _subjects(extra: Sequence[Referrer]) -> set[Digest]:
    return {s for node, _ in extra if (s := node.subject) is not None}


# Stage ---------------------------------------------------------------------------


def _flatten(nodes: Sequence[Node]) -> list[Image | Artifact]:
    found: list[Image | Artifact] = []
    for node in nodes:
        if isinstance(node, Index):
            found += _flatten(node.children)
        else:
            found.append(node)
    return found


def _kept_images(nodes: Sequence[Node], keep: set[Digest]) -> set[int]:
    """Images whose digest referrers name: their bytes must not change."""
    kept: set[int] = set()
    for node in nodes:
        raw = node.raw if isinstance(node, Index) else getattr(node, "manifest", None)
        whole = raw is not None and digestmod.of_bytes(raw) in keep
        for leaf in _flatten([node]):
            if isinstance(leaf, Image) and (
                whole
                or (
                    leaf.manifest is not None
                    and digestmod.of_bytes(leaf.manifest) in keep
                )
            ):
                kept.add(id(leaf))
    return kept


def _stage(
    nodes: Sequence[Node],
    plan: Plan,
    keep: set[Digest],
    store: Store,
    reporter: Reporter,
    workers: int | None,
    staged: _Staged,
) -> None:
    kept = _kept_images(nodes, keep)
    layers: dict[tuple[Digest, Digest | None], tuple[Layer, Plan]] = {}
    blobs: dict[Digest, Blob] = {}
    for leaf in _flatten(nodes):
        if isinstance(leaf, Image):
            layer_plan = Plan("keep") if id(leaf) in kept else plan
            for layer in leaf.layers:
                key = (layer.diff_id, layer.stored.digest if layer.stored else None)
                layers.setdefault(key, (layer, layer_plan))
        else:
            for blob in leaf.blobs:
                blobs.setdefault(blob.descriptor.digest, blob)

    # Compressors, hashing and file I/O release the GIL, so threads use every
    # core; the pool bounds the layers in flight, and so memory.
    count = workers or min(max(len(layers), 1), os.cpu_count() or 1, 4)
    # zstd's workers each hold buffers of several MB: share the cores between the
    # layers in flight instead of giving every layer all of them.
    zstd_threads = max(1, (os.cpu_count() or 1) // count)
    layers = {
        key: (layer, dataclasses.replace(p, zstd_threads=zstd_threads))
        for key, (layer, p) in layers.items()
    }
    with ThreadPoolExecutor(max_workers=count) as pool:
        layer_jobs = {
            key: pool.submit(_run_layer, layer, p, store, reporter)
            for key, (layer, p) in layers.items()
        }
        blob_jobs = {
            key: pool.submit(_run_blob, blob, store, reporter)
            for key, blob in blobs.items()
        }
        _collect(layer_jobs, staged.layers, pool)
        _collect(blob_jobs, staged.blobs, pool)


def _collect(jobs: dict, into: dict, pool: ThreadPoolExecutor) -> None:  # type: ignore[type-arg]
    """Gather results; on the first failure, cancel the rest and drop what was
    staged, so nothing of a failed input survives."""
    try:
        for key, job in jobs.items():
            into[key] = job.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        for job in jobs.values():
            _discard(job)
        raise


def _discard(job: Future) -> None:  # type: ignore[type-arg]
    if job.cancelled() or job.exception() is not None:
        return
    writer = job.result().writer
    if writer is not None:
        writer.discard()


def _run_layer(
    layer: Layer, plan: Plan, store: Store, reporter: Reporter
) -> StagedLayer:
    key = layer.diff_id.short
    reporter.start_layer(key, layer.name, layer.size)
    try:
        return pipeline.stage(layer, plan, store, lambda n: reporter.advance(key, n))
    finally:
        reporter.finish_layer(key)


def _run_blob(blob: Blob, store: Store, reporter: Reporter) -> StagedBlob:
    key = blob.descriptor.digest.short
    reporter.start_layer(key, blob.name, blob.descriptor.size)
    try:
        return pipeline.stage_blob(blob, store, lambda n: reporter.advance(key, n))
    finally:
        reporter.finish_layer(key)


# Commit --------------------------------------------------------------------------


def _commit_blobs(store: Store, staged: _Staged, built: Sequence[Built]) -> None:
    for layer in staged.layers.values():
        commit_blob(store, layer.writer, layer.digest, layer.size)
        pipeline.remember(store, layer)
    for blob in staged.blobs.values():
        commit_blob(store, blob.writer, blob.digest, blob.size)
    for top in built:
        for node in top.walk():
            for digest_text, data in node.documents.items():
                _put_blob(store, digestmod.parse(digest_text), data)
            _put_blob(store, node.digest, node.raw)


def commit_blob(
    store: Store, writer: StagedWriter | None, found: Digest, size: int
) -> None:
    """Make a staged blob visible under ``blobs/`` with the metadata every blob
    carries (publish and sync); a blob already there is kept."""
    if writer is None:
        return
    if store.stat(paths.blob(found)) == size:
        writer.discard()
    else:
        writer.commit(
            paths.blob(found),
            "application/octet-stream",
            cache_control=api.IMMUTABLE,
            digest=str(found),
        )
    log.debug("blob %s (%d bytes) in place", found.short, size)


def _put_blob(store: Store, found: Digest, data: bytes) -> None:
    if store.stat(paths.blob(found)) != len(data):
        store.put(
            paths.blob(found), data, cache_control=api.IMMUTABLE, digest=str(found)
        )


def _commit_pointers(
    tree: _Tree,
    targets: Sequence[Target],
    built: Sequence[Built],
    extra: Sequence[Referrer],
    built_refs: Sequence[Built],
) -> list[Published]:
    by_repository: dict[str, list[tuple[Built, str]]] = {}
    for (_, refs), top in zip(targets, built, strict=True):
        for ref in refs:
            assert ref.tag is not None, "publish targets carry tags"
            by_repository.setdefault(ref.repository, []).append((top, ref.tag))
    refs_by_repository = _place_referrers(by_repository, extra, built_refs)

    published = []
    for name in sorted(set(by_repository) | set(refs_by_repository)):
        published += _commit_repository(
            tree, name, by_repository.get(name, []), refs_by_repository.get(name, [])
        )
    names = catalog.read_names(tree.store, tree.layout)
    write_tree_files(tree.store, tree.layout, names + sorted(by_repository))
    return published


def write_tree_files(store: Store, layout: paths.Layout, names: Sequence[str]) -> None:
    """Write what the whole tree shares, after every repository's pointers: the
    catalog of ``names``, the API root, the empty referrers answer and, for a new
    tree, its settings (publish, sync and verify --fix)."""
    body = catalog.catalog_bytes(list(names))
    store.put(layout.catalog, body, "application/json", cache_control=api.SHORT)
    store.put(layout.api_root, b"{}\n", "application/json", cache_control="no-cache")
    if layout.error_page is not None:
        store.put(
            layout.error_page,
            api.error_body("MANIFEST_UNKNOWN"),
            "application/json",
            cache_control=api.SHORT,
        )
    if layout.empty_referrers is not None:
        store.put(
            layout.empty_referrers,
            referrers.empty_index(),
            mediatypes.OCI_INDEX,
            cache_control=api.SHORT,
        )
    if catalog.read_settings(store) is None:
        settings = {
            "format": paths.FORMAT_VERSION,
            "layout": layout.name,
            "generator": f"staticreg {__version__}",
        }
        store.put(
            paths.SETTINGS,
            (json.dumps(settings, indent=2) + "\n").encode(),
            "application/json",
        )


def _place_referrers(
    by_repository: dict[str, list[tuple[Built, str]]],
    extra: Sequence[Referrer],
    built_refs: Sequence[Built],
) -> dict[str, list[Built]]:
    where: dict[Digest, set[str]] = {}
    for name, entries in by_repository.items():
        for top, _ in entries:
            for node in top.walk():
                where.setdefault(node.digest, set()).add(name)
    placed: dict[str, list[Built]] = {}
    for (_, repos), ref in zip(extra, built_refs, strict=True):
        if repos is not None:
            names = set(repos)
        else:
            names = where.get(ref.subject, set()) if ref.subject else set()
        if not names:
            log.warning(
                "skipped referrer %s: its subject %s is not published with it",
                ref.digest.short,
                ref.subject,
            )
        for name in names:
            placed.setdefault(name, []).append(ref)
    return placed


def _commit_repository(
    tree: _Tree,
    name: str,
    entries: list[tuple[Built, str]],
    new_referrers: list[Built],
) -> list[Published]:
    record = catalog.read_repository(tree.store, name) or RepositoryRecord(name)

    # The record is written last, but decides every pointer: update it first.
    raw: dict[str, bytes] = {}
    for top in [top for top, _ in entries] + new_referrers:
        for node in top.walk():
            record_manifest(record, node, raw)
    published = []
    for top, tag in entries:
        record.tags[tag] = TagEntry(str(top.digest), top.media_type, len(top.raw))
        published.append(Published(name, tag, top.digest, top.media_type, len(top.raw)))
    subjects = referrers.add(record, new_referrers)
    fallbacks = record_fallbacks(record, subjects, raw)

    tags = [tag for _, tag in entries] + fallbacks
    write_repository(tree.store, tree.layout, record, raw, tags, subjects)
    for result in published:
        log.info("published %s", result)
    return published


def record_manifest(
    record: RepositoryRecord, node: Built, raw: dict[str, bytes]
) -> None:
    """Enter a manifest in the record, and its bytes in ``raw``."""
    record.manifests[str(node.digest)] = node.record_entry()
    raw[str(node.digest)] = node.raw


def record_fallbacks(
    record: RepositoryRecord, subjects: Iterable[Digest], raw: dict[str, bytes]
) -> list[str]:
    """Point each subject's ``sha256-<hex>`` fallback tag, in the record, at the
    index of its referrers; return those tags."""
    tags = []
    for subject in subjects:
        fallback = referrers.fallback_tag(record, subject)
        record_manifest(record, fallback, raw)
        tag = referrers.tag_name(subject)
        record.tags[tag] = TagEntry(
            str(fallback.digest), fallback.media_type, len(fallback.raw)
        )
        tags.append(tag)
    return tags


def write_repository(
    store: Store,
    layout: paths.Layout,
    record: RepositoryRecord,
    manifests: Mapping[str, bytes],
    tags: Iterable[str],
    subjects: Iterable[Digest],
) -> None:
    """Write one repository's pointers as its record states them.

    ``manifests`` (digest -> bytes, children before parents) go by digest with
    their blob links, then ``tags``, each a copy of the manifest the record names,
    then the referrers answers of ``subjects``, then the record and the tags list.
    Blobs must already be in place, and the record must hold every manifest and
    tag written. Publish, sync and verify --fix all write pointers through here.
    """
    tree = _Tree(store, layout)
    # Links and manifests by digest first: a tag may point only at what exists.
    for digest_text, data in manifests.items():
        _put_manifest(tree, record, digest_text, data)
    for tag in tags:
        entry = record.tags[tag]
        _put_tag(tree, record.name, tag, entry, manifests[entry.digest])
    # The answers list referrers, so they follow them; the fallback tags holding
    # the same indexes were among the tags.
    for subject in subjects:
        for key, data in referrers.files(layout, record.name, subject, record):
            store.put(key, data, mediatypes.OCI_INDEX, cache_control=api.SHORT)
    store.put(
        paths.repository_record(record.name), record.to_bytes(), "application/json"
    )
    store.put(
        layout.tags_list(record.name),
        record.tags_list(),
        "application/json",
        cache_control=api.SHORT,
    )


def _put_manifest(
    tree: _Tree, record: RepositoryRecord, digest_text: str, data: bytes
) -> None:
    store, layout, name = tree.store, tree.layout, record.name
    entry = record.manifests[digest_text]
    found, media_type = digestmod.parse(digest_text), str(entry["mediaType"])
    for blob in [*entry.get("blobs", {}), digest_text]:
        _link_blob(tree, name, digestmod.parse(blob))
    store.put(
        layout.manifest(name, found, media_type),
        data,
        media_type,
        cache_control=api.IMMUTABLE,
        digest=digest_text,
    )
    if layout.empty_referrers is None and digest_text not in record.referrers:
        # Behind a CDN nothing can fall back to an empty answer: every manifest
        # gets its own, so the referrers API answers 200 for each of them.
        store.put(
            layout.referrers(name, found),
            referrers.empty_index(),
            mediatypes.OCI_INDEX,
            cache_control=api.SHORT,
        )


def _link_blob(tree: _Tree, name: str, found: Digest) -> None:
    key = tree.layout.blob_link(name, found)
    if not tree.layout.copies_blobs:
        tree.store.put(key, b"")
        return
    size = tree.store.stat(paths.blob(found))
    if tree.store.stat(key) != size:
        tree.store.copy(
            paths.blob(found),
            key,
            "application/octet-stream",
            cache_control=api.IMMUTABLE,
            digest=str(found),
        )


def _put_tag(tree: _Tree, name: str, tag: str, entry: TagEntry, data: bytes) -> None:
    store, layout = tree.store, tree.layout
    key = layout.tag(name, tag, entry.media_type)
    # A bucket serves the digest header from the same object as the body, so it
    # can never pair a moved tag with an old digest; nginx sends none on tags.
    store.put(key, data, entry.media_type, cache_control=api.SHORT, digest=entry.digest)
    for stale in layout.tag_candidates(name, tag):
        if stale != key:
            store.delete(stale)
