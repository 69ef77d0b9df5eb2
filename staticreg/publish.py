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
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from staticreg import (
    catalog,
    manifests,
    paths,
    pipeline,
    referrers,
    tree,
)
from staticreg import digest as digestmod
from staticreg.catalog import RepositoryRecord, TagEntry
from staticreg.digest import Digest
from staticreg.errors import Conflict
from staticreg.gen import site
from staticreg.manifests import Built
from staticreg.model import Artifact, Blob, Image, Index, Layer, Node
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
    tree_layout = tree.tree_layout(store, layout)
    nodes = [node for node, _ in targets] + [node for node, _ in extra_referrers]
    keep = _subjects(extra_referrers)
    staged = _Staged()
    try:
        _stage(nodes, plan, keep, store, reporter, workers, staged)
        built = [manifests.build(node, staged.layers) for node, _ in targets]
        built_refs = [
            manifests.build(node, staged.layers) for node, _ in extra_referrers
        ]
        # Referrers may land in repositories no tag names: then redo them all.
        changed = None if extra_referrers else _repositories(targets)
        with store.lock():
            # Before anything is written: a referrer with nowhere to go fails
            # the publish and leaves the tree as it was.
            by_repository = _by_repository(targets, built)
            placed = _place_referrers(
                store, tree_layout, by_repository, extra_referrers, built_refs
            )
            tree.claim(store, tree_layout)
            # Before any pointer moves, so that the site catches up even if this
            # publish dies before regenerating it.
            site.mark_pending(store, changed)
            _commit_blobs(store, staged, built + built_refs)
            published = _commit_pointers(store, tree_layout, by_repository, placed)
            site.regenerate(store, changed, layout=tree_layout)
            return published
    finally:
        for writer in staged.writers():
            writer.discard()


def _repositories(targets: Sequence[Target]) -> set[str]:
    return {ref.repository for _, refs in targets for ref in refs}


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
        tree.commit_blob(store, layer.writer, layer.digest, layer.size)
        pipeline.remember(store, layer)
    for blob in staged.blobs.values():
        tree.commit_blob(store, blob.writer, blob.digest, blob.size)
    for top in built:
        for node in top.walk():
            for digest_text, data in node.documents.items():
                tree.put_blob(store, digestmod.parse(digest_text), data)
            tree.put_blob(store, node.digest, node.raw)


def _by_repository(
    targets: Sequence[Target], built: Sequence[Built]
) -> dict[str, list[tuple[Built, str]]]:
    by_repository: dict[str, list[tuple[Built, str]]] = {}
    for (_, refs), top in zip(targets, built, strict=True):
        for ref in refs:
            assert ref.tag is not None, "publish targets carry tags"
            by_repository.setdefault(ref.repository, []).append((top, ref.tag))
    return by_repository


def _commit_pointers(
    store: Store,
    layout: paths.Layout,
    by_repository: dict[str, list[tuple[Built, str]]],
    refs_by_repository: dict[str, list[Built]],
) -> list[Published]:
    published = []
    for name in sorted(set(by_repository) | set(refs_by_repository)):
        published += _commit_repository(
            store,
            layout,
            name,
            by_repository.get(name, []),
            refs_by_repository.get(name, []),
        )
    names = catalog.read_names(store, layout)
    tree.write_tree_files(store, layout, names + sorted(by_repository))
    return published


def _place_referrers(
    store: Store,
    layout: paths.Layout,
    by_repository: dict[str, list[tuple[Built, str]]],
    extra: Sequence[Referrer],
    built_refs: Sequence[Built],
) -> dict[str, list[Built]]:
    """The repositories each referrer goes to: those its subject is published
    in by this publish or, failing that, already in the tree."""
    where: dict[Digest, set[str]] = {}
    for name, entries in by_repository.items():
        for top, _ in entries:
            for node in top.walk():
                where.setdefault(node.digest, set()).add(name)
    in_tree: dict[str, set[str]] | None = None  # read once, only if needed
    placed: dict[str, list[Built]] = {}
    for (_, repos), ref in zip(extra, built_refs, strict=True):
        names = set(repos) if repos is not None else set()
        if repos is None and ref.subject is not None:
            names = where.get(ref.subject, set())
            if not names:
                in_tree = in_tree if in_tree is not None else _manifests(store, layout)
                names = in_tree.get(str(ref.subject), set())
        if not names:
            raise Conflict(
                f"cannot publish referrer {ref.digest}: its subject {ref.subject} "
                f"is neither in the inputs nor published in {store.url}",
                hint="publish the subject first, or together with the referrer",
            )
        for name in names:
            placed.setdefault(name, []).append(ref)
    return placed


def _manifests(store: Store, layout: paths.Layout) -> dict[str, set[str]]:
    """The repositories of the tree that hold each manifest, from their records:
    a referrer whose subject came in an earlier publish may be in any of them."""
    found: dict[str, set[str]] = {}
    for name in catalog.read_names(store, layout):
        record = catalog.read_repository(store, name)
        for manifest in record.manifests if record is not None else ():
            found.setdefault(manifest, set()).add(name)
    return found


def _commit_repository(
    store: Store,
    layout: paths.Layout,
    name: str,
    entries: list[tuple[Built, str]],
    new_referrers: list[Built],
) -> list[Published]:
    record = catalog.read_repository(store, name) or RepositoryRecord(name)

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
    tree.write_repository(store, layout, record, raw, tags, subjects)
    for result in published:
        log.info("published %s", result)
    for node in new_referrers:
        log.info("published %s@%s, a referrer of %s", name, node.digest, node.subject)
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
