"""Read a published tree back: the catalog, each repository's record and its tags.

A repository's record (``paths.repository_record``) is the authority for that
repository; the tags list and the tag files are derived from it. Reading one
repository never reads another, so trees of thousands of repositories stay cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from staticreg import paths
from staticreg.errors import StoreError
from staticreg.model import JSON
from staticreg.store import Store


@dataclass(frozen=True)
class TagEntry:
    digest: str
    media_type: str
    size: int


@dataclass
class RepositoryRecord:
    """Tags and manifests of one repository, as stored in ``_repository.json``.

    ``manifests`` maps a manifest digest to its media type, size, platform and the
    blobs (digest -> size) it references, config included.
    """

    name: str
    tags: dict[str, TagEntry] = field(default_factory=dict)
    manifests: dict[str, JSON] = field(default_factory=dict)
    referrers: dict[str, list[JSON]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        doc = {
            "name": self.name,
            "tags": {
                tag: {"digest": e.digest, "mediaType": e.media_type, "size": e.size}
                for tag, e in sorted(self.tags.items())
            },
            "manifests": dict(sorted(self.manifests.items())),
            "referrers": dict(sorted(self.referrers.items())),
        }
        return (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode()

    def tags_list(self) -> bytes:
        """The body of ``GET /v2/<name>/tags/list``, tags in lexical order."""
        return json.dumps({"name": self.name, "tags": sorted(self.tags)}).encode()

    def blob_size(self, manifest_digest: str) -> int:
        """Compressed size of the blobs a manifest (or an index's manifests)
        references: what a pull of every platform downloads."""
        entry = self.manifests.get(manifest_digest, {})
        total = sum(int(size) for size in entry.get("blobs", {}).values())
        for child in entry.get("manifests", []):
            total += self.blob_size(child) + int(
                self.manifests.get(child, {}).get("size", 0)
            )
        return total

    def platforms(self, manifest_digest: str) -> list[str]:
        entry = self.manifests.get(manifest_digest, {})
        if "platforms" in entry:
            return list(entry["platforms"])
        return [entry["platform"]] if entry.get("platform") else []


def read_repository(store: Store, name: str) -> RepositoryRecord | None:
    try:
        raw = store.get(paths.repository_record(name))
    except KeyError:
        return None
    return parse_repository(store, name, raw)


def parse_repository(store: Store, name: str, raw: bytes) -> RepositoryRecord:
    """A record from the bytes ``read_repository`` would read (``store`` and
    ``name`` only say which file is damaged)."""
    try:
        doc = json.loads(raw)
        tags = {
            tag: TagEntry(e["digest"], e["mediaType"], int(e["size"]))
            for tag, e in doc["tags"].items()
        }
        referrers = {k: list(v) for k, v in (doc.get("referrers") or {}).items()}
        return RepositoryRecord(doc["name"], tags, dict(doc["manifests"]), referrers)
    except (ValueError, KeyError, TypeError) as err:
        raise StoreError(
            f"cannot read {paths.repository_record(name)!r} in {store.url}: {err}",
            hint="the tree is damaged; restore this file from a copy of the tree",
        ) from None


def read_names(store: Store, layout: paths.Layout = paths.DIRECTORY) -> list[str]:
    """Every repository name, from the catalog file."""
    try:
        doc = json.loads(store.get(layout.catalog))
    except KeyError:
        return []
    except ValueError as err:
        raise StoreError(
            f"cannot read {paths.CATALOG!r} in {store.url}: {err}"
        ) from None
    return [str(name) for name in doc.get("repositories", [])]


def catalog_bytes(names: list[str]) -> bytes:
    return json.dumps({"repositories": sorted(set(names))}).encode()


def read_settings(store: Store) -> JSON | None:
    try:
        return json.loads(store.get(paths.SETTINGS))
    except KeyError:
        return None
    except ValueError as err:
        raise StoreError(
            f"cannot read {paths.SETTINGS!r} in {store.url}: {err}"
        ) from None
