"""The Store interface every backend implements: keys, bytes and content types.

A store knows nothing of manifests or tags (``publish`` does). Writes are atomic
per key: a reader sees the old bytes or the new, never a part. Blobs are streamed
through a ``StagedWriter`` whose key is chosen only once its digest is known, and
which becomes visible only on ``commit``: a publish stages every blob first, checks
them all, and commits them only when the whole input proved valid.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable


class StagedWriter(Protocol):
    size: int

    def write(self, data: bytes | memoryview, /) -> object:
        """Append bytes to the staged object."""

    def close(self) -> None:
        """Finish writing; the object stays invisible until ``commit``."""

    def commit(
        self,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        """Make the staged bytes visible at ``key`` (replacing what was there).

        ``content_type``, ``cache_control`` and ``digest`` are kept with the
        object by stores that can (a bucket serves them as response headers).
        """

    def discard(self) -> None:
        """Drop the staged bytes; safe to call after ``commit`` (does nothing)."""


class Store(Protocol):
    url: str
    # The layout a new tree in this store gets (see paths.Layout).
    default_layout: str

    def stat(self, key: str) -> int | None:
        """The size of ``key`` in bytes, or None if it does not exist."""

    def get(self, key: str) -> bytes:
        """The bytes at ``key``; raise KeyError if it does not exist."""

    def open(self, key: str) -> BinaryIO:
        """A stream of the bytes at ``key``; raise KeyError if it does not exist."""

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        """Write ``data`` at ``key`` atomically, with the object's metadata."""

    def copy(
        self,
        source: str,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        """Copy the object at ``source`` to ``key`` inside the store."""

    def staged_writer(self) -> StagedWriter:
        """A writer for an object whose key is decided after writing."""

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (a folder-like prefix ending in '/'), sorted."""

    def lock(self) -> AbstractContextManager[None]:
        """Hold the tree's writer lock: one publisher at a time changes pointers."""

    def close(self) -> None:
        """Release staging space; left-over staged writers are discarded."""


@dataclass(frozen=True)
class Metadata:
    """What a store keeps with an object besides its bytes (a bucket serves it as
    response headers; a directory keeps none: nginx derives them)."""

    content_type: str | None
    digest: str | None


@runtime_checkable
class MetadataStore(Protocol):
    """A store that keeps each object's metadata and can read it back."""

    def metadata(self, key: str) -> Metadata | None:
        """The metadata of ``key``, or None if it does not exist."""
