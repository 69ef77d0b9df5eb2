"""Check a whole tree against its records, and rebuild what is derived from them.

Every blob is hashed (streamed, never held whole); every manifest a record names
must be there and hash to its digest, with its config, layers and blob links or
copies, and an index's manifests; every tag object must be a copy of the manifest
its record names; tags lists, referrers answers, fallback tags and the catalog
must say what the records say. Each problem is one line of text.

``fix`` rewrites the derived files (tag objects, tags lists, referrers answers,
fallback tags, blob links or copies, the catalog) through
``tree.write_repository``, exactly as a publish would. It never invents a
missing blob or manifest: those stay problems.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field

from staticreg import (
    catalog,
    mediatypes,
    paths,
    publish,
    records,
    referrers,
    sync,
    tree,
)
from staticreg import digest as digestmod
from staticreg.catalog import RepositoryRecord
from staticreg.digest import Digest, Hasher
from staticreg.errors import StoreError
from staticreg.model import JSON
from staticreg.store import MetadataStore, Store

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
PROGRESS_EVERY = 100
RECORD_SUFFIX = "/_repository.json"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the tree; ``fixable`` when --fix can rebuild it."""

    text: str
    fixable: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass
class Report:
    """What verify found: the problems left, and those --fix repaired."""

    problems: list[Problem] = field(default_factory=list)
    fixed: list[Problem] = field(default_factory=list)
    blobs: int = 0
    repositories: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: Store, fix: bool = False) -> Report:
    """Check the tree in ``store``; with ``fix``, rebuild its derived files under
    the tree's lock and check again (reusing the blobs' hashes)."""
    layout = tree.read_layout(store, "verify")
    if not fix:
        return _check(store, layout).report()
    with store.lock():
        first = _check(store, layout)
        if not any(problem.fixable for problem in first.problems):
            return first.report()
        _repair(store, layout, first)
        second = _check(store, layout, first)
    report = second.report()
    report.fixed = [p for p in first.problems if p not in set(second.problems)]
    return report


def _check(
    store: Store, layout: paths.Layout, before: _Checker | None = None
) -> _Checker:
    checker = _Checker(store, layout)
    if before is None:
        checker.check_blobs()
    else:
        # --fix writes no blob under blobs/: their hashes still hold.
        checker.blobs, checker.bad_blobs = before.blobs, before.bad_blobs
        checker.problems += before.blob_problems
        checker.good_copies = before.good_copies - before.bad_copies
    names = checker.record_names()
    for name in names:
        checker.check_repository(name)
    checker.check_tree_files(names)
    return checker


class _Checker:
    def __init__(self, store: Store, layout: paths.Layout) -> None:
        self.store, self.layout = store, layout
        self.problems: list[Problem] = []
        # What the blobs under blobs/ alone showed; --fix repairs none of it.
        self.blob_problems: list[Problem] = []
        # Blobs under blobs/ that hash to their key (digest -> size), and not.
        self.blobs: dict[str, int] = {}
        self.bad_blobs: set[str] = set()
        self.good_copies: set[str] = set()
        self.bad_copies: set[str] = set()
        self.links: set[str] = set()
        self.bad_manifests: set[str] = set()
        self.records: dict[str, RepositoryRecord] = {}
        # Per repository, the manifests that are there and whole, in order.
        self.manifests: dict[str, dict[str, bytes]] = {}
        self.stray_tags: dict[str, list[str]] = {}
        # Repositories the catalog lists that have tag objects but no record.
        self.orphans: list[str] = []
        # Manifests and tags a bucket serves with the wrong headers.
        self.bad_metadata: set[str] = set()

    def problem(self, text: str, fixable: bool = False) -> None:
        self.problems.append(Problem(text, fixable))

    def blob_problem(self, text: str) -> None:
        self.blob_problems.append(Problem(text))
        self.problem(text)

    def report(self) -> Report:
        return Report(list(self.problems), [], len(self.blobs), len(self.records))

    # Blobs -----------------------------------------------------------------------

    def check_blobs(self) -> None:
        keys = list(self.store.list("blobs/"))
        for count, key in enumerate(keys, 1):
            self.check_blob(key)
            if count % PROGRESS_EVERY == 0 or count == len(keys):
                log.info("checked %d of %d blobs", count, len(keys))

    def check_blob(self, key: str) -> None:
        algorithm, _, hex_part = key.removeprefix("blobs/").partition("/")
        text = f"{algorithm}:{hex_part}"
        if not digestmod.is_valid(text):
            self.blob_problem(f"unexpected file {key}: not named after a digest")
            return
        found, size = self.hash(key)
        if found is None:
            return
        if str(found) != text:
            self.blob_problem(f"corrupt blob {text}: digest is {found}, size {size}")
            self.bad_blobs.add(text)
        else:
            self.blobs[text] = size
            log.debug("blob %s is whole (%d bytes)", found.short, size)

    def hash(self, key: str) -> tuple[Digest | None, int]:
        """Stream the object at ``key`` through sha256."""
        hasher = Hasher()
        try:
            stream = self.store.open(key)
        except KeyError:
            return None, 0
        with contextlib.closing(stream):
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.digest(), hasher.size

    # Repositories ----------------------------------------------------------------

    def record_names(self) -> list[str]:
        """Every repository that has a record: the records are the authority,
        the catalog is checked against them."""
        top = paths.repository("")
        return [
            key[len(top) : -len(RECORD_SUFFIX)]
            for key in self.store.list(top)
            if key.endswith(RECORD_SUFFIX)
        ]

    def check_repository(self, name: str) -> None:
        try:
            record = catalog.read_repository(self.store, name)
        except StoreError as err:
            self.problem(str(err))
            return
        if record is None:
            return
        if record.name != name:
            self.problem(f"{paths.repository_record(name)} names {record.name!r}")
            return
        self.records[name] = record
        raw = self.manifests.setdefault(name, {})
        for digest_text in records.manifest_order(record):
            self.check_manifest(record, digest_text, raw)
        self.check_tags(record, raw)
        self.check_stray_tags(record)
        self.compare(
            self.layout.tags_list(name), record.tags_list(), f"tags list of {name}"
        )
        self.check_referrers(record)

    def check_manifest(
        self, record: RepositoryRecord, digest_text: str, raw: dict[str, bytes]
    ) -> None:
        name, ref = record.name, f"{record.name}@{digest_text}"
        digest = digestmod.parse(digest_text)
        doc = self.read_manifest(record, digest, raw)
        # The record's blobs are checked even when the manifest is gone.
        sizes = {
            str(d): int(n)
            for d, n in record.manifests[digest_text].get("blobs", {}).items()
        }
        for descriptor in _blob_descriptors(doc or {}):
            sizes[str(descriptor.get("digest"))] = descriptor.get("size", -1)
        for blob, size in sizes.items():
            # Links are rewritten with their manifest: without it, only the blob.
            self.check_blob_reference(name, ref, blob, size, link=doc is not None)
        if doc is None:
            return
        for child in doc.get("manifests", []) if _is_index(doc) else []:
            if child.get("digest") not in record.manifests:
                self.problem(
                    f"{ref} lists manifest {child.get('digest')}, which "
                    f"{name} does not hold"
                )
        if digest_text in self.blobs:
            self.check_link(name, digest, self.blobs[digest_text])
        if self.layout.empty_referrers is None and digest_text not in record.referrers:
            key = self.layout.referrers(name, digest)
            self.compare(key, referrers.empty_index(), f"referrers answer {key}")

    def read_manifest(
        self, record: RepositoryRecord, digest: Digest, raw: dict[str, bytes]
    ) -> JSON | None:
        """The manifest's document if it is there and whole (its bytes go in
        ``raw``), else None after saying what is wrong."""
        ref = f"{record.name}@{digest}"
        media_type = str(record.manifests[str(digest)]["mediaType"])
        try:
            data = self.store.get(self.layout.manifest(record.name, digest, media_type))
        except KeyError:
            self.problem(f"missing manifest {ref}")
            return None
        found = digestmod.of_bytes(data)
        if found != digest:
            self.problem(f"corrupt manifest {ref}: digest is {found}, size {len(data)}")
            self.bad_manifests.add(ref)
            return None
        raw[str(digest)] = data
        self.check_metadata(
            self.layout.manifest(record.name, digest, media_type),
            media_type,
            str(digest),
        )
        try:
            doc: JSON = json.loads(data)
        except ValueError:
            self.problem(f"manifest {ref} is not JSON")
            return None
        return doc if isinstance(doc, dict) else None

    def check_blob_reference(
        self, name: str, ref: str, text: str, size: int, link: bool
    ) -> None:
        if text in self.bad_blobs:
            return  # reported once, as a corrupt blob
        if text not in self.blobs:
            self.problem(f"missing blob {text} referenced by {ref}")
        elif self.blobs[text] != size:
            self.problem(f"blob {text} is {self.blobs[text]} bytes, {ref} says {size}")
        elif link:
            self.check_link(name, digestmod.parse(text), size)

    def check_link(self, name: str, digest: Digest, size: int) -> None:
        key = self.layout.blob_link(name, digest)
        if key in self.links:
            return
        self.links.add(key)
        if not self.layout.copies_blobs:
            if self.store.stat(key) is None:
                self.problem(f"missing blob link {key}", fixable=True)
            return
        if key in self.good_copies:
            return
        found, got = self.hash(key)
        if found is None:
            self.problem(f"missing blob copy {key}", fixable=True)
        elif found != digest or got != size:
            self.problem(
                f"corrupt blob copy {key}: digest is {found}, size {got}", fixable=True
            )
            self.bad_copies.add(key)
        else:
            self.good_copies.add(key)

    def check_tags(self, record: RepositoryRecord, raw: dict[str, bytes]) -> None:
        for tag, entry in sorted(record.tags.items()):
            label = f"{record.name}:{tag}"
            if entry.digest not in raw:
                # A corrupt manifest was reported already.
                if f"{record.name}@{entry.digest}" not in self.bad_manifests:
                    self.problem(
                        f"tag {label} points at missing manifest {entry.digest}"
                    )
                continue
            key = self.layout.tag(record.name, tag, entry.media_type)
            try:
                data = self.store.get(key)
            except KeyError:
                self.problem(f"missing tag object {key} for {label}", fixable=True)
                continue
            if data != raw[entry.digest]:
                self.problem(
                    f"tag {label} does not match {record.name}@"
                    f"{entry.digest}, which its record names",
                    fixable=True,
                )
            else:
                self.check_metadata(key, entry.media_type, entry.digest)

    def check_metadata(self, key: str, media_type: str, digest: str) -> None:
        """In a bucket, an object's metadata becomes its response headers: a
        client needs the exact media type, and the CDN turns the digest
        metadata into Docker-Content-Digest. A directory keeps none (nginx
        derives the type from the key's extension)."""
        if self.layout.name == "directory" or not isinstance(self.store, MetadataStore):
            return
        found = self.store.metadata(key)
        if found is None:
            return
        wrong = []
        if found.content_type != media_type:
            wrong.append(f"Content-Type {found.content_type!r}, not {media_type!r}")
        if found.digest != digest:
            wrong.append(f"digest metadata {found.digest!r}, not {digest!r}")
        if wrong:
            self.problem(f"wrong metadata on {key}: {'; '.join(wrong)}", fixable=True)
            self.bad_metadata.add(key)

    def tag_objects(self, name: str) -> list[str]:
        """The keys of every tag object of repository ``name``."""
        folder = self.layout.tag(name, "_", mediatypes.OCI_MANIFEST).rpartition("/")[0]
        found = []
        for key in self.store.list(folder + "/"):
            rest = key[len(folder) + 1 :]
            # Skip nested repositories and, in URL layouts, manifests by digest.
            if "/" not in rest and ":" not in rest:
                found.append(key)
        return found

    def check_stray_tags(self, record: RepositoryRecord) -> None:
        """Tag objects the record does not know (a tag removed, a media type
        changed) would still answer pulls."""
        name = record.name
        wanted = {
            self.layout.tag(name, t, e.media_type) for t, e in record.tags.items()
        }
        for key in self.tag_objects(name):
            if key in wanted:
                continue
            self.problem(
                f"tag object {key} is not in the record of {name}", fixable=True
            )
            self.stray_tags.setdefault(name, []).append(key)

    def check_referrers(self, record: RepositoryRecord) -> None:
        for subject in sorted(record.referrers):
            digest = digestmod.parse(subject)
            for key, data in referrers.files(self.layout, record.name, digest, record):
                self.compare(key, data, f"referrers answer {key}")
            tag = referrers.tag_name(digest)
            expected = str(referrers.fallback_tag(record, digest).digest)
            entry = record.tags.get(tag)
            if entry is None or entry.digest != expected:
                self.problem(
                    f"fallback tag {record.name}:{tag} does not list the "
                    f"referrers of {subject}",
                    fixable=True,
                )

    # The whole tree --------------------------------------------------------------

    def check_tree_files(self, names: list[str]) -> None:
        try:
            listed = json.loads(self.store.get(self.layout.catalog))["repositories"]
        except KeyError:
            self.problem(f"missing catalog {self.layout.catalog}", fixable=True)
        except (ValueError, TypeError):
            self.problem(f"catalog {self.layout.catalog} is not valid", fixable=True)
        else:
            self.check_catalog([str(n) for n in listed], names)
        self.compare(self.layout.api_root, b"{}\n", "API root")
        page = self.layout.error_page
        if page is not None and self.store.stat(page) is None:
            self.problem(f"missing error page {page}", fixable=True)
        if self.layout.empty_referrers is not None:
            key = self.layout.empty_referrers
            self.compare(key, referrers.empty_index(), f"empty referrers answer {key}")

    def check_catalog(self, listed: list[str], names: list[str]) -> None:
        extra = sorted(set(listed) - set(names))
        missing = sorted(set(names) - set(listed))
        self.orphans = [name for name in extra if self.tag_objects(name)]
        for name in self.orphans:
            # The record is the authority: nothing can rebuild it, and its tags
            # still answer pulls, so the catalog keeps listing the repository.
            self.problem(
                f"repository {name} has no record ({paths.repository_record(name)})"
                " but its tags are still served; restore the record from a copy "
                "of the tree"
            )
        extra = [name for name in extra if name not in self.orphans]
        if extra:
            self.problem(
                f"catalog lists {', '.join(extra)}, which have no record", fixable=True
            )
        if missing:
            self.problem(f"catalog misses {', '.join(missing)}", fixable=True)

    def compare(self, key: str, expected: bytes, what: str) -> None:
        """A derived file must hold exactly what the records give."""
        try:
            data = self.store.get(key)
        except KeyError:
            self.problem(f"missing {what} ({key})", fixable=True)
            return
        if data != expected:
            self.problem(f"stale {what} ({key})", fixable=True)


def _is_index(doc: JSON) -> bool:
    return doc.get("mediaType") in (mediatypes.OCI_INDEX, mediatypes.DOCKER_LIST) or (
        "manifests" in doc and "layers" not in doc
    )


def _blob_descriptors(doc: JSON) -> list[JSON]:
    """The config and layers a manifest references (an index references none)."""
    found = [doc["config"]] if isinstance(doc.get("config"), dict) else []
    found += [d for d in doc.get("layers") or [] if isinstance(d, dict)]
    return found


# Repair --------------------------------------------------------------------------


def _repair(store: Store, layout: paths.Layout, found: _Checker) -> None:
    """Rewrite every derived file from the records; only what differs is written."""
    view = sync.DiffStore(store, rewrite=frozenset(found.bad_metadata))
    for name, record in sorted(found.records.items()):
        raw = found.manifests[name]
        # A corrupt copy has the right size: remove it, so it is copied again.
        for key in sorted(found.bad_copies & records.keys(layout, record).links):
            view.delete(key)
        subjects = [digestmod.parse(s) for s in sorted(record.referrers)]
        publish.record_fallbacks(record, subjects, raw)
        # Tags whose manifest is missing cannot be written: they stay problems.
        tags = [tag for tag, entry in record.tags.items() if entry.digest in raw]
        tree.write_repository(view, layout, record, raw, tags, subjects)
        for key in found.stray_tags.get(name, []):
            view.delete(key)
    tree.write_tree_files(view, layout, sorted([*found.records, *found.orphans]))
    for change in view.changes:
        log.info("fixed: %s", change)
