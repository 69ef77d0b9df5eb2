"""What a repository record implies: its manifests in the order they may be
written, the blobs they reference, and every key the repository owns in a layout.

Sync copies and deletes by these, and verify checks a tree against them, so both
work from the record (the authority) rather than from whatever keys a tree holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from staticreg import digest as digestmod
from staticreg import paths, referrers
from staticreg.catalog import RepositoryRecord


def manifest_order(record: RepositoryRecord) -> list[str]:
    """Every manifest digest of the record, an index's manifests before it."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(digest_text: str) -> None:
        if digest_text in seen or digest_text not in record.manifests:
            return
        seen.add(digest_text)
        for child in record.manifests[digest_text].get("manifests", []):
            visit(str(child))
        ordered.append(digest_text)

    for digest_text in sorted(record.manifests):
        visit(digest_text)
    return ordered


def blobs(record: RepositoryRecord) -> dict[str, int]:
    """The blobs (digest -> size) the record's manifests reference, configs
    included; manifests, which are blobs too, are not."""
    found: dict[str, int] = {}
    for entry in record.manifests.values():
        for digest_text, size in entry.get("blobs", {}).items():
            found[str(digest_text)] = int(size)
    return found


@dataclass
class Keys:
    """The keys of one repository, by kind, in the order to remove them: what
    points comes before what it points at, and the record, which lets an
    interrupted removal be done again, comes last."""

    tags: set[str] = field(default_factory=set)
    referrers: set[str] = field(default_factory=set)
    manifests: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    listing: set[str] = field(default_factory=set)
    record: set[str] = field(default_factory=set)

    def kinds(self) -> tuple[set[str], ...]:
        return (
            self.tags,
            self.referrers,
            self.manifests,
            self.links,
            self.listing,
            self.record,
        )

    def removal_order(self, keep: Keys | None = None) -> list[str]:
        """Keys to remove, safest first, leaving out those ``keep`` holds."""
        kept = keep.all() if keep is not None else set()
        return [key for kind in self.kinds() for key in sorted(kind - kept)]

    def all(self) -> set[str]:
        return set().union(*self.kinds())


def keys(layout: paths.Layout, record: RepositoryRecord) -> Keys:
    """Every key the record's repository has in a tree of ``layout``. Blob links
    include one per manifest, which publish writes whether or not the manifest
    is also stored as a blob."""
    name = record.name
    found = Keys(
        listing={layout.tags_list(name)}, record={paths.repository_record(name)}
    )
    for tag, tag_entry in record.tags.items():
        found.tags.add(layout.tag(name, tag, tag_entry.media_type))
    for digest_text, entry in record.manifests.items():
        digest = digestmod.parse(digest_text)
        found.manifests.add(layout.manifest(name, digest, str(entry["mediaType"])))
        found.links.add(layout.blob_link(name, digest))
        if layout.empty_referrers is None and digest_text not in record.referrers:
            found.referrers.add(layout.referrers(name, digest))
    for blob in blobs(record):
        found.links.add(layout.blob_link(name, digestmod.parse(blob)))
    for subject in record.referrers:
        subject_digest = digestmod.parse(subject)
        files = referrers.files(layout, name, subject_digest, record)
        found.referrers.update(key for key, _ in files)
    return found
