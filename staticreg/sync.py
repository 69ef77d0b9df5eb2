"""Copy a tree between stores (directory to bucket, bucket to directory, ...).

Sync works from the source's records, never by mirroring raw keys: the
destination gets the keys of its own layout, written through the same function
publish writes pointers with (``tree.write_repository``), in the same order:
per repository its blobs, then manifests by digest, tags, referrers answers, the
record and the tags list; then the catalog and the other files the tree shares;
then the layer map and the browse site. With ``delete``, what the source no
longer has is removed only after that: stale pointers first, blobs last.

Only what differs is written (``DiffStore``), so a second sync writes nothing.
The browse site (``site/``, ``v1/``) is copied as it is rather than generated
again: its pages hold only relative links, so they serve from any layout.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO

from staticreg import api, catalog, paths, records, tree
from staticreg import digest as digestmod
from staticreg.catalog import RepositoryRecord
from staticreg.digest import Digest, Hasher
from staticreg.errors import Conflict, DigestMismatch, StoreError
from staticreg.store import StagedWriter, Store

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
LAYER_MAP = f"{paths.PRIVATE}/layers/"
# Keys of the browse site and docker search, copied as they are (gen/site.py),
# with what the site was made from, so that the copy's next publish regenerates
# only what changed.
SITE_PREFIXES = (f"{paths.SITE}/", "v1/", f"{paths.PRIVATE}/site/")


class DiffStore:
    """A store that writes only what differs from what it holds and notes every
    change as '+ key' or '- key'; in a dry run it changes nothing, but answers
    ``stat`` and ``get`` as if it had.

    Keys written with ``api.IMMUTABLE`` are content-addressed, so an object of
    the same size is the same object; any other is compared byte for byte.
    """

    def __init__(
        self, store: Store, dry_run: bool = False, rewrite: frozenset[str] = frozenset()
    ) -> None:
        self.store = store
        # Keys written even when their bytes match (verify --fix: wrong metadata).
        self.rewrite = rewrite
        self.url = store.url
        self.default_layout = store.default_layout
        self.dry_run = dry_run
        self.changes: list[str] = []
        # A dry run's writes: the bytes, a size for a blob, None for a removal.
        self._planned: dict[str, bytes | int | None] = {}

    def note(self, sign: str, key: str, planned: bytes | int | None) -> None:
        """Record a change made (or, in a dry run, planned) outside this view."""
        self.changes.append(f"{sign} {key}")
        log.debug("%s %s", sign, key)
        if self.dry_run:
            self._planned[key] = planned

    def stat(self, key: str) -> int | None:
        if key in self._planned:
            planned = self._planned[key]
            return len(planned) if isinstance(planned, bytes) else planned
        return self.store.stat(key)

    def get(self, key: str) -> bytes:
        planned = self._planned.get(key, 0)
        if planned is None:
            raise KeyError(key)
        return planned if isinstance(planned, bytes) else self.store.get(key)

    def open(self, key: str) -> BinaryIO:
        planned = self._planned.get(key, 0)
        if isinstance(planned, bytes):
            return io.BytesIO(planned)
        if planned is None:
            raise KeyError(key)
        return self.store.open(key)

    def holds(self, key: str, data: bytes, cache_control: str | None) -> bool:
        if key in self.rewrite:
            return False
        size = self.stat(key)
        if size != len(data):
            return False
        if size == 0 or cache_control == api.IMMUTABLE:
            return True
        try:
            return self.get(key) == data
        except KeyError:
            return False

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        if self.holds(key, data, cache_control):
            return
        self.note("+", key, bytes(data))
        if not self.dry_run:
            self.store.put(
                key, data, content_type, cache_control=cache_control, digest=digest
            )

    def copy(
        self,
        source: str,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        self.note("+", key, self.stat(source))
        if not self.dry_run:
            self.store.copy(
                source, key, content_type, cache_control=cache_control, digest=digest
            )

    def delete(self, key: str) -> None:
        if self.stat(key) is None:
            return
        self.note("-", key, None)
        if not self.dry_run:
            self.store.delete(key)

    def staged_writer(self) -> StagedWriter:
        return self.store.staged_writer()

    def list(self, prefix: str) -> Iterator[str]:
        """The keys the underlying store holds (a dry run's plan left out)."""
        return self.store.list(prefix)

    def lock(self) -> AbstractContextManager[None]:
        if self.dry_run:
            return contextlib.nullcontext()
        return self.store.lock()

    def close(self) -> None:
        self.store.close()


@dataclass
class Report:
    """What a sync changed (or, in a dry run, would change), key by key."""

    repositories: int = 0
    changes: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(1 for change in self.changes if change.startswith("+"))

    @property
    def removed(self) -> int:
        return sum(1 for change in self.changes if change.startswith("-"))


def sync(
    source: Store,
    dest: Store,
    *,
    dry_run: bool = False,
    delete: bool = False,
    blob_copies: bool = False,
) -> Report:
    """Bring the tree in ``dest`` up to date with the tree in ``source``.

    A new destination gets its store's default layout, or ``bucket-blob-copies``
    with ``blob_copies``; an existing one keeps the layout it records. Blobs are
    streamed and checked against their digest on the way.
    """
    if source.url == dest.url:
        raise Conflict(f"cannot sync {source.url} onto itself", hint="name another DST")
    source_layout = tree.read_layout(source, "sync from")
    dest_layout = _dest_layout(dest, blob_copies)
    view = DiffStore(dest, dry_run)
    run = _Sync(source, source_layout, view, dest_layout, delete)
    with view.lock():
        run.repositories()
        run.tree_files()
        if delete:
            run.remove_repositories()
        run.private_and_site()
        if delete:
            run.remove_blobs()
    report = Report(len(run.names), view.changes)
    log.info(
        "synced %d repositories from %s to %s: %d objects written, %d removed%s",
        report.repositories,
        source.url,
        dest.url,
        report.written,
        report.removed,
        " (dry run: nothing changed)" if dry_run else "",
    )
    return report


def _dest_layout(dest: Store, blob_copies: bool) -> paths.Layout:
    if blob_copies and dest.default_layout == "directory":
        raise Conflict(
            f"--blob-copies is for bucket destinations, not {dest.url}",
            hint="a directory tree shares blobs through per-repository links",
        )
    return tree.tree_layout(dest, "bucket-blob-copies" if blob_copies else None)


class _Sync:
    def __init__(
        self,
        source: Store,
        source_layout: paths.Layout,
        dest: DiffStore,
        dest_layout: paths.Layout,
        delete: bool,
    ) -> None:
        self.source, self.source_layout = source, source_layout
        self.dest, self.dest_layout = dest, dest_layout
        self.delete = delete
        self.names = catalog.read_names(source, source_layout)
        self.before = catalog.read_names(dest, dest_layout)
        self.blobs: dict[str, int] = {}

    # Repositories ----------------------------------------------------------------

    def repositories(self) -> None:
        for name in self.names:
            record = catalog.read_repository(self.source, name)
            if record is None:
                raise StoreError(
                    f"cannot sync {name}: the catalog of {self.source.url} lists it, "
                    f"but it has no {paths.repository_record(name)}",
                    hint=f"run staticreg verify --fix --root {self.source.url}",
                )
            old = catalog.read_repository(self.dest, name) if self.delete else None
            self.repository(record)
            if old is not None:
                new_keys = records.keys(self.dest_layout, record)
                stale = records.keys(self.dest_layout, old).removal_order(new_keys)
                self._remove(stale)

    def remove_repositories(self) -> None:
        """Remove the repositories the source no longer has, once the catalog
        no longer lists them."""
        for name in sorted(set(self.before) - set(self.names)):
            self._remove_repository(name)

    def repository(self, record: RepositoryRecord) -> None:
        manifests = self._read_manifests(record)
        for digest_text, size in records.blobs(record).items():
            self._copy_blob(digestmod.parse(digest_text), size, record.name)
        for digest_text, data in manifests.items():
            # A manifest is a blob too, except the fallback tags' indexes.
            self._copy_blob(digestmod.parse(digest_text), len(data), None)
        subjects = [digestmod.parse(s) for s in sorted(record.referrers)]
        tree.write_repository(
            self.dest, self.dest_layout, record, manifests, list(record.tags), subjects
        )
        log.info("synced %s (%d tags)", record.name, len(record.tags))

    def _read_manifests(self, record: RepositoryRecord) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for digest_text in records.manifest_order(record):
            media_type = str(record.manifests[digest_text]["mediaType"])
            digest = digestmod.parse(digest_text)
            key = self.source_layout.manifest(record.name, digest, media_type)
            try:
                data = self.source.get(key)
            except KeyError:
                raise StoreError(
                    f"cannot sync {record.name}@{digest_text}: {self.source.url} "
                    f"has no {key}",
                    hint=f"run staticreg verify --root {self.source.url}",
                ) from None
            _check(digestmod.of_bytes(data), len(data), digest, key, self.source)
            found[digest_text] = data
        return found

    def _copy_blob(self, digest: Digest, size: int, user: str | None) -> None:
        """Stream a blob into the destination unless it is there; ``user`` names
        the repository that needs it (None: copy only if the source has it)."""
        key = paths.blob(digest)
        self.blobs[str(digest)] = size
        if self.dest.stat(key) == size:
            return
        if self.dest.dry_run:
            if self.source.stat(key) is not None:
                self.dest.note("+", key, size)
            elif user is not None:
                raise self._missing_blob(digest, user)
            return
        try:
            stream = self.source.open(key)
        except KeyError:
            if user is None:
                return
            raise self._missing_blob(digest, user) from None
        with contextlib.closing(stream):
            self._stream_blob(stream, digest, size, key)
        self.dest.note("+", key, size)

    def _missing_blob(self, digest: Digest, user: str) -> StoreError:
        return StoreError(
            f"cannot copy blob {digest} of {user}: {self.source.url} has no "
            f"{paths.blob(digest)}",
            hint=f"run staticreg verify --root {self.source.url}",
        )

    def _stream_blob(
        self, stream: BinaryIO, digest: Digest, size: int, key: str
    ) -> None:
        """Copy in chunks, never the whole blob in memory, checking the digest."""
        writer = self.dest.staged_writer()
        try:
            hasher = Hasher()
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
                writer.write(chunk)
            writer.close()
            _check(hasher.digest(), hasher.size, digest, key, self.source)
            if hasher.size != size:
                raise DigestMismatch(
                    f"cannot sync {key} from {self.source.url}: it holds "
                    f"{hasher.size} bytes, its record says {size}",
                    hint=f"run staticreg verify --root {self.source.url}",
                )
            tree.commit_blob(self.dest.store, writer, digest, size)
        finally:
            writer.discard()

    def _remove_repository(self, name: str) -> None:
        old = catalog.read_repository(self.dest, name)
        if old is None:
            log.warning(
                "warning: %s lists %s but holds no record of it; dropping it from "
                "the catalog only",
                self.dest.url,
                name,
            )
            return
        self._remove(records.keys(self.dest_layout, old).removal_order())
        log.info("removed %s", name)

    def _remove(self, keys: list[str]) -> None:
        for key in keys:
            self.dest.delete(key)

    # The rest of the tree --------------------------------------------------------

    def tree_files(self) -> None:
        names = self.names if self.delete else [*self.before, *self.names]
        tree.write_tree_files(self.dest, self.dest_layout, names)

    def private_and_site(self) -> None:
        """The layer map (so a later publish into the copy skips compression), the
        site's settings and the site itself."""
        for prefix in (LAYER_MAP, *SITE_PREFIXES):
            self._copy_folder(prefix)
        self._copy_file(paths.SITE_SETTINGS)

    def _copy_folder(self, prefix: str) -> None:
        keys = list(self.source.list(prefix))
        for key in keys:
            self._copy_file(key)
        if self.delete:
            wanted = set(keys)
            self._remove([k for k in self.dest.list(prefix) if k not in wanted])

    def _copy_file(self, key: str) -> None:
        try:
            data = self.source.get(key)
        except KeyError:
            if self.delete:
                self.dest.delete(key)
            return
        # The content type and caching gen/site.py gives; private files (the
        # layer map, the site's state) are never served and get neither.
        served = not key.startswith(paths.PRIVATE + "/")
        self.dest.put(
            key,
            data,
            api.SITE_TYPES.get(key.rpartition(".")[2]),
            cache_control=api.SHORT if served else None,
        )

    def remove_blobs(self) -> None:
        """Remove every blob no record of the source references, last of all."""
        for key in list(self.dest.list("blobs/")):
            algorithm, _, hex_part = key.removeprefix("blobs/").partition("/")
            if f"{algorithm}:{hex_part}" not in self.blobs:
                self.dest.delete(key)


def _check(found: Digest, size: int, expected: Digest, key: str, store: Store) -> None:
    if found != expected:
        raise DigestMismatch(
            f"cannot sync {key} from {store.url}: its content is {found} "
            f"({size} bytes), not {expected}",
            hint=f"run staticreg verify --root {store.url}",
        )
