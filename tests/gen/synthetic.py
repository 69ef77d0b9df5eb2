"""Synthetic trees for the generators: records and blobs written directly.

Publishing thousands of images for real would take minutes; the generators only
read records, manifests and configs back, so these are written as ``publish``
writes them, with made-up layer digests (layers are never read).
"""

from __future__ import annotations

import hashlib
import json

from staticreg import catalog, mediatypes, paths
from staticreg import digest as digestmod
from staticreg.catalog import RepositoryRecord, TagEntry
from staticreg.store import MemoryStore, Store

WORDS = [
    "alpine", "api", "auth", "backend", "cache", "cli", "database", "debian",
    "edge", "gateway", "golang", "java", "kafka", "logging", "metrics", "nginx",
    "node", "postgres", "proxy", "python", "queue", "redis", "runtime", "search",
    "server", "service", "storage", "tools", "worker",
]  # fmt: skip


class CountingStore(MemoryStore):
    """A memory store that remembers which keys were read, written or deleted,
    and the Cache-Control each write asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []
        self.written: list[str] = []
        self.deleted: list[str] = []
        self.cache_controls: dict[str, str | None] = {}

    def get(self, key: str) -> bytes:
        self.read.append(key)
        return super().get(key)

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        self.written.append(key)
        self.cache_controls[key] = cache_control
        super().put(key, data, content_type, cache_control=cache_control)

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)

    def forget(self) -> None:
        """Start counting again."""
        self.read.clear()
        self.written.clear()
        self.deleted.clear()


def _put_json(store: Store, doc: object) -> tuple[str, int]:
    raw = json.dumps(doc).encode()
    found = digestmod.of_bytes(raw)
    store.put(paths.blob(found), raw)
    return str(found), len(raw)


def image(
    store: Store,
    seed: str,
    labels: dict[str, str] | None = None,
    created: str = "2024-05-01T12:00:00Z",
    layers: int = 3,
) -> tuple[str, int, dict[str, object]]:
    """Put a config and an OCI manifest; return the manifest's digest, size and
    the record entry ``publish`` would write for it."""
    layer_list = [
        {
            "mediaType": mediatypes.OCI_LAYER_GZIP,
            "digest": "sha256:" + hashlib.sha256(f"{seed}/{n}".encode()).hexdigest(),
            "size": 1000 * (n + 1),
        }
        for n in range(layers)
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Labels": labels or {}},
        "history": [
            {"created": created, "created_by": f"RUN step {n} of {seed}"}
            for n in range(layers)
        ],
        "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layer_list]},
    }
    config_digest, config_size = _put_json(store, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "config": {
            "mediaType": mediatypes.OCI_CONFIG,
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layer_list,
    }
    digest, size = _put_json(store, manifest)
    blobs = {config_digest: config_size}
    blobs.update({x["digest"]: x["size"] for x in layer_list})
    entry = {
        "mediaType": mediatypes.OCI_MANIFEST,
        "size": size,
        "platform": "linux/amd64",
        "config": config_digest,
        "blobs": blobs,
    }
    return digest, size, entry


def repository(
    store: Store,
    name: str,
    tags: int,
    description: str = "",
    labels: dict[str, str] | None = None,
) -> None:
    """Put a repository record whose tags each name their own image."""
    record = RepositoryRecord(name)
    all_labels = dict(labels or {})
    if description:
        all_labels["org.opencontainers.image.description"] = description
    for n in range(tags):
        created = f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}T00:00:00Z"
        digest, size, entry = image(store, f"{name}:{n}", all_labels, created)
        record.manifests[digest] = entry
        record.tags[f"1.{n}"] = TagEntry(digest, mediatypes.OCI_MANIFEST, size)
    store.put(paths.repository_record(name), record.to_bytes())
    store.put(paths.tags_list(name), record.tags_list())


def catalog_of(store: Store, names: list[str]) -> None:
    store.put(paths.CATALOG, catalog.catalog_bytes(names))
    store.put(paths.SETTINGS, json.dumps({"format": paths.FORMAT_VERSION}).encode())


def tree(repositories: int, tags: int) -> MemoryStore:
    """``repositories`` repositories in 50 namespaces, ``tags`` tags each."""
    store = MemoryStore()
    names = []
    for n in range(repositories):
        word = WORDS[n % len(WORDS)]
        name = f"team{n % 50}/{word}-{WORDS[(n // 7) % len(WORDS)]}-{n}"
        description = (
            f"The {word} image of team {n % 50}: a {WORDS[(n * 3) % len(WORDS)]} "
            f"for {WORDS[(n * 5) % len(WORDS)]} workloads, build {n}."
        )
        repository(store, name, tags, description)
        names.append(name)
    catalog_of(store, names)
    return store
