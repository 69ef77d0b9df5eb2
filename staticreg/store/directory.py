"""A tree in a local directory: files written to a staging area, then renamed.

Every file is made world-readable and every folder world-searchable, whatever the
umask, because nginx serves the tree from unprivileged worker processes. Staging
lives under ``.staticreg/tmp`` inside the tree so that a rename into place is
atomic; each writer's staging folder is owned through a lock, and folders whose
owner died (kill -9, power loss) are removed by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

from staticreg import paths
from staticreg.errors import StoreError

log = logging.getLogger(__name__)

FILE_MODE = 0o644
DIR_MODE = 0o755


class DirectoryStore:
    default_layout = "directory"

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = self.root
        self._staging: str | None = None
        self._owner_fd: int | None = None
        # Layers are staged from several threads; they share one staging folder.
        self._staging_lock = threading.Lock()
        self._puts = itertools.count()  # names of put's files in the staging folder
        self._root_existed = os.path.exists(self.root)
        if self._root_existed and not os.path.isdir(self.root):
            raise StoreError(f"cannot use {root!r} as a tree: it is not a directory")

    def _path(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"refusing key {key!r}: it points outside the tree")
        return os.path.join(self.root, key)

    def stat(self, key: str) -> int | None:
        try:
            found = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        # A folder is no key: a site URL naming one must not be opened as a file.
        return found.st_size if stat.S_ISREG(found.st_mode) else None

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as file:
                return file.read()
        except FileNotFoundError:
            raise KeyError(key) from None

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise KeyError(key) from None

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        # The staged writer's steps, minus what a whole-bytes write can skip
        # (a random name, a buffered file, a failing unlink): the site writes
        # ~90,000 small files, and each syscall saved shows.
        target = self._path(key)
        staged = os.path.join(self._staging_dir(), f"put-{next(self._puts)}")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            fd = os.open(staged, flags, FILE_MODE)
            try:
                with memoryview(data) as view:
                    while view:
                        view = view[os.write(fd, view) :]
                os.fchmod(fd, FILE_MODE)
            finally:
                os.close(fd)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise _store_error(staged, err) from None
        try:
            self._replace(staged, target)
        except StoreError:
            with contextlib.suppress(OSError):
                os.unlink(staged)
            raise

    def copy(
        self,
        source: str,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        writer = self.staged_writer()
        try:
            with self.open(source) as stream:
                while chunk := stream.read(1 << 20):
                    writer.write(chunk)
            writer.commit(key)
        finally:
            writer.discard()

    def staged_writer(self) -> _StagedFile:
        return _StagedFile(self, self._staging_dir())

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def list(self, prefix: str) -> Iterator[str]:
        top = self._path(prefix.rstrip("/")) if prefix else self.root
        found = []
        cut = len(self.root) + 1  # os.walk joins onto top, itself under the root
        for folder, _, files in os.walk(top):
            rel = folder[cut:]
            found += [f"{rel}/{name}" for name in files] if rel else files
        return iter(sorted(found))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        path = self._path(paths.LOCK)
        make_dirs(os.path.dirname(path))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("waiting for another publish into %s to finish", self.root)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def commit_file(self, staged: str, key: str) -> None:
        os.chmod(staged, FILE_MODE)
        self._replace(staged, self._path(key))

    def _replace(self, staged: str, target: str) -> None:
        """Rename ``staged`` to ``target``, making the target's folders when the
        first try finds them missing (cheaper than checking each time)."""
        try:
            try:
                os.replace(staged, target)
            except FileNotFoundError:
                make_dirs(os.path.dirname(target))
                os.replace(staged, target)
        except OSError as err:
            raise StoreError(f"cannot write {target!r}: {err.strerror}") from None

    def _staging_dir(self) -> str:
        with self._staging_lock:
            return self._make_staging_dir()

    def _make_staging_dir(self) -> str:
        if self._staging is None:
            top = self._path(paths.TMP)
            make_dirs(top)
            _remove_abandoned(top)
            self._staging = tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=top)
            owner = os.path.join(self._staging, ".owner")
            self._owner_fd = os.open(owner, os.O_RDWR | os.O_CREAT, FILE_MODE)
            fcntl.flock(self._owner_fd, fcntl.LOCK_EX)
        return self._staging

    def close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        if self._owner_fd is not None:
            os.close(self._owner_fd)
            self._owner_fd = None
        self._remove_if_never_published()

    def _remove_if_never_published(self) -> None:
        # A failed first publish must leave nothing behind, not even the private
        # folder that staging and the lock made.
        if os.path.exists(self._path(paths.SETTINGS)):
            return
        private = self._path(paths.PRIVATE)
        if os.path.isdir(private) and not _has_files(private, ignore={"lock"}):
            shutil.rmtree(private, ignore_errors=True)
        if not self._root_existed:
            with contextlib.suppress(OSError):
                os.rmdir(self.root)


class _StagedFile:
    def __init__(self, store: DirectoryStore, folder: str) -> None:
        self._store = store
        fd, self._path = tempfile.mkstemp(dir=folder, prefix="blob-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        assert self._file is not None, "write after close"
        try:
            self._file.write(data)
        except OSError as err:
            raise _store_error(self._path, err) from None
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as err:
                raise _store_error(self._path, err) from None
            self._file = None

    def commit(
        self,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        self.close()
        self._store.commit_file(self._path, key)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)


def _store_error(path: str, err: OSError) -> StoreError:
    hint = "free some space and publish again" if err.errno == errno.ENOSPC else None
    return StoreError(f"cannot write {path!r}: {err.strerror}", hint=hint)


def make_dirs(path: str) -> None:
    """Create ``path`` and missing parents, each readable and searchable by all."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder)
            os.chmod(folder, DIR_MODE)


def _has_files(folder: str, ignore: set[str]) -> bool:
    for _, _, files in os.walk(folder):
        if any(name not in ignore for name in files):
            return True
    return False


def _remove_abandoned(top: str) -> None:
    for name in os.listdir(top):
        folder = os.path.join(top, name)
        owner = os.path.join(folder, ".owner")
        try:
            fd = os.open(owner, os.O_RDWR)
        except FileNotFoundError:
            # A writer creates its folder an instant before locking its owner
            # file: only an old folder without one is abandoned.
            if time.time() - os.path.getmtime(folder) > 3600:
                shutil.rmtree(folder, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        finally:
            os.close(fd)
        log.debug("removing staging folder %s left by an interrupted publish", folder)
        shutil.rmtree(folder, ignore_errors=True)
