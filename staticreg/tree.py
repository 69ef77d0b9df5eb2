"""Write and check a tree's pointers: the one place that puts each kind of key
with its metadata, for publish, sync and verify --fix.

Blobs come first (``commit_blob``), then each repository's pointers as its record
states them (``write_repository``: blob links or copies and manifests by digest,
tags, referrers answers, the record and the tags list), and last what the whole
tree shares (``write_tree_files``). See ``paths`` for the keys of each layout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from staticreg import __version__, api, catalog, mediatypes, paths, referrers
from staticreg import digest as digestmod
from staticreg.catalog import RepositoryRecord, TagEntry
from staticreg.digest import Digest
from staticreg.errors import Conflict, StoreError
from staticreg.model import JSON
from staticreg.store import StagedWriter, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Tree:
    """A store and the layout of the tree in it."""

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
    _check_format(store, settings, "publish into")
    return settings


def read_layout(store: Store, action: str) -> paths.Layout:
    """The layout of the published tree in ``store``, for commands that read one;
    ``action`` ('list', 'sync from', 'verify') says in errors what needed it.
    Refuses a store with no tree, or a tree of a newer format."""
    settings = catalog.read_settings(store)
    if settings is None:
        raise StoreError(
            f"cannot {action} {store.url}: it is not a staticreg tree "
            f"(it has no {paths.SETTINGS})",
            hint="give --root the tree staticreg publish or sync wrote",
        )
    _check_format(store, settings, action)
    return paths.layout_named(settings.get("layout", "directory"))


def _check_format(store: Store, settings: JSON, action: str) -> None:
    version = settings.get("format") if isinstance(settings, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise Conflict(
            f"cannot {action} {store.url}: its {paths.SETTINGS} has format "
            f"{version!r}, expected a format number",
            hint=f"the file is damaged; restore {paths.SETTINGS} from a copy",
        )
    if version > paths.FORMAT_VERSION:
        raise Conflict(
            f"cannot {action} {store.url}: its format {version!r} is newer than "
            f"this staticreg understands ({paths.FORMAT_VERSION})",
            hint="upgrade staticreg",
        )


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


def put_blob(store: Store, found: Digest, data: bytes) -> None:
    if store.stat(paths.blob(found)) != len(data):
        store.put(
            paths.blob(found), data, cache_control=api.IMMUTABLE, digest=str(found)
        )


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
        _write_settings(store, layout)


def claim(store: Store, layout: paths.Layout) -> None:
    """Under the tree's lock, before anything else is written: record a new
    tree's settings first, so that a publisher checking the tree meanwhile finds
    a tree rather than a folder of stray files; for an existing tree, check
    again that it has ``layout``, as another publisher may have made it since."""
    settings = catalog.read_settings(store)
    if settings is None:
        _write_settings(store, layout)
        return
    _check_format(store, settings, "publish into")
    recorded = str(settings.get("layout", "directory"))
    if recorded != layout.name:
        raise Conflict(
            f"cannot publish into {store.url} with layout {layout.name!r}: the tree "
            f"uses {recorded!r}",
            hint="a tree keeps the layout it was created with; drop the option",
        )


def _write_settings(store: Store, layout: paths.Layout) -> None:
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
