"""A tree held in a dict: for tests, and to see what a publish would write."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from typing import BinaryIO


class MemoryStore:
    default_layout = "directory"

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def stat(self, key: str) -> int | None:
        data = self.objects.get(key)
        return None if data is None else len(data)

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.objects[key])

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        self.objects[key] = bytes(data)
        self.content_types[key] = content_type

    def copy(
        self,
        source: str,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        self.put(key, self.get(source), content_type)

    def staged_writer(self) -> _StagedBuffer:
        return _StagedBuffer(self)

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.content_types.pop(key, None)

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            yield

    def close(self) -> None:
        pass


class _StagedBuffer:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._buffer = io.BytesIO()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.size += len(data)
        return self._buffer.write(data)

    def close(self) -> None:
        pass

    def commit(
        self,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        self._store.put(key, self._buffer.getvalue(), content_type)

    def discard(self) -> None:
        self._buffer = io.BytesIO()
