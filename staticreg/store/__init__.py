"""Open a store by URL: a directory path, ``file://PATH`` or ``memory://``."""

from __future__ import annotations

from staticreg.errors import StoreError
from staticreg.store.base import StagedWriter, Store
from staticreg.store.directory import DirectoryStore
from staticreg.store.memory import MemoryStore

__all__ = ["DirectoryStore", "MemoryStore", "StagedWriter", "Store", "open_store"]


def open_store(url: str) -> Store:
    if url.startswith("memory://"):
        return MemoryStore(url)
    if url.startswith("s3://"):
        # TODO(#5): publish to S3 buckets; users must publish to a directory and
        # copy it to the bucket themselves.
        raise StoreError(
            f"cannot open {url!r}: S3 trees are not supported yet",
            hint="publish to a directory and copy it to the bucket",
        )
    if "://" in url and not url.startswith("file://"):
        raise StoreError(
            f"cannot open {url!r}: expected a directory path, file://PATH or s3://"
        )
    return DirectoryStore(url.removeprefix("file://"))
