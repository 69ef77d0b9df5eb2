"""Open a store by URL: a directory path, ``file://PATH`` or ``memory://``."""

from __future__ import annotations

from staticreg.errors import StoreError
from staticreg.store.base import Metadata, MetadataStore, StagedWriter, Store
from staticreg.store.directory import DirectoryStore
from staticreg.store.memory import MemoryStore

__all__ = [
    "DirectoryStore",
    "MemoryStore",
    "Metadata",
    "MetadataStore",
    "StagedWriter",
    "Store",
    "open_store",
]


def open_store(url: str, endpoint_url: str | None = None) -> Store:
    """A store for a directory path, ``file://PATH``, ``s3://BUCKET/PREFIX`` or
    ``memory://``; ``endpoint_url`` points S3 at an S3-compatible server."""
    if url.startswith("memory://"):
        return MemoryStore(url)
    if url.startswith("s3://"):
        # Imported here: boto3 is an optional extra, and slow to import.
        from staticreg.store.s3 import S3Store

        return S3Store(url, endpoint_url)
    if "://" in url and not url.startswith("file://"):
        raise StoreError(
            f"cannot open {url!r}: expected a directory path, file://PATH or s3://"
        )
    return DirectoryStore(url.removeprefix("file://"))
