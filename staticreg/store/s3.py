"""A tree in an S3 bucket (or MinIO, Ceph, R2): the only module that imports boto3.

Objects carry their Content-Type, Cache-Control and digest (as
``x-amz-meta-docker-content-digest``), so the bucket, or a CDN in front of it,
answers with the headers clients need. Blobs are staged in a local temporary file
and uploaded on commit with boto3's managed transfer: parallel multipart uploads
for large blobs, aborted on failure. Requests are retried with backoff on
throttling and 5xx answers. Nothing is ever made public: access is the operator's
choice (bucket policy, CDN origin access).

S3 has no rename and no lock. Each object is written whole, and the publish order
(blobs, manifests, tags, listings) keeps readers safe. Writers exclude each other
through a lock object created with a conditional write (``If-None-Match: *``)
where the store supports it; a second create, which must fail, tells a store that
accepts the condition but ignores it. Elsewhere one writer at a time is expected.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from staticreg import paths
from staticreg.errors import Conflict, StoreError
from staticreg.store.base import Metadata

log = logging.getLogger(__name__)

DIGEST_METADATA = "docker-content-digest"
MULTIPART_THRESHOLD = 64 << 20
MULTIPART_CHUNK = 16 << 20
# How long a writer waits for another's lock, and how often it looks again.
LOCK_WAIT_SECONDS = 600
LOCK_POLL_SECONDS = 1.0
_MISSING = ("404", "NoSuchKey", "NotFound")
# What a conditional create answers when the object exists.
_EXISTS = ("PreconditionFailed", "412", "ConditionalRequestConflict")


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at the ends)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"invalid bucket URL {url!r}: expected s3://BUCKET[/PREFIX]")
    return bucket, prefix.strip("/")


class S3Store:
    default_layout = "bucket"

    def __init__(
        self, url: str, endpoint_url: str | None = None, client: Any = None
    ) -> None:
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        endpoint_url = endpoint_url or os.environ.get("STATICREG_ENDPOINT_URL") or None
        config = Config(
            retries={"max_attempts": 10, "mode": "adaptive"},
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, config=config
        )
        self.transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK,
            max_concurrency=8,
        )
        self._staging: str | None = None

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise StoreError(f"refusing key {key!r}: it points outside the tree")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, err: Exception) -> StoreError:
        hint = None
        if isinstance(err, ClientError):
            code = err.response.get("Error", {}).get("Code")
            if code in ("AccessDenied", "403"):
                hint = "check the credentials and the bucket policy"
            elif code == "NoSuchBucket":
                hint = f"create the bucket {self.bucket!r} first"
        return StoreError(
            f"cannot {action} s3://{self.bucket}/{self._key(key)}: {err}", hint=hint
        )

    def stat(self, key: str) -> int | None:
        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise self._fail("check", key, err) from None
        except BotoCoreError as err:
            raise self._fail("check", key, err) from None
        return int(answer["ContentLength"])

    def head(self, key: str) -> dict[str, Any] | None:
        """The object's headers (for tests and verify), or None if missing."""
        try:
            answer: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=self._key(key)
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise self._fail("check", key, err) from None
        except BotoCoreError as err:
            raise self._fail("check", key, err) from None
        return answer

    def metadata(self, key: str) -> Metadata | None:
        answer = self.head(key)
        if answer is None:
            return None
        digest = answer.get("Metadata", {}).get(DIGEST_METADATA)
        return Metadata(answer.get("ContentType"), digest)

    def open(self, key: str) -> BinaryIO:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in _MISSING:
                raise KeyError(key) from None
            raise self._fail("read", key, err) from None
        except BotoCoreError as err:
            raise self._fail("read", key, err) from None
        body: BinaryIO = answer["Body"]
        return body

    def get(self, key: str) -> bytes:
        with contextlib.closing(self.open(key)) as body:
            return body.read()

    def _extra(
        self, content_type: str | None, cache_control: str | None, digest: str | None
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "ContentType": content_type or "application/octet-stream"
        }
        if cache_control:
            extra["CacheControl"] = cache_control
        if digest:
            extra["Metadata"] = {DIGEST_METADATA: digest}
        return extra

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        extra = self._extra(content_type or guess_type_of(key), cache_control, digest)
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **extra
            )
        except (ClientError, BotoCoreError) as err:
            raise self._fail("write", key, err) from None
        log.debug("uploaded %s (%d bytes)", key, len(data))

    def upload_file(
        self,
        path: str,
        key: str,
        content_type: str | None,
        cache_control: str | None,
        digest: str | None,
    ) -> None:
        extra = self._extra(content_type or guess_type_of(key), cache_control, digest)
        try:
            self.client.upload_file(
                path, self.bucket, self._key(key), ExtraArgs=extra, Config=self.transfer
            )
        except (ClientError, BotoCoreError, Boto3Error, OSError) as err:
            raise self._fail("upload", key, err) from None
        log.debug("uploaded %s (%d bytes)", key, os.path.getsize(path))

    def copy(
        self,
        source: str,
        key: str,
        content_type: str | None = None,
        *,
        cache_control: str | None = None,
        digest: str | None = None,
    ) -> None:
        extra = self._extra(content_type or guess_type_of(key), cache_control, digest)
        extra["MetadataDirective"] = "REPLACE"
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(source)},
                self.bucket,
                self._key(key),
                ExtraArgs=extra,
                Config=self.transfer,
            )
        except (ClientError, BotoCoreError, Boto3Error) as err:
            raise self._fail("copy to", key, err) from None

    def staged_writer(self) -> _StagedUpload:
        if self._staging is None:
            self._staging = tempfile.mkdtemp(prefix="staticreg-s3-")
        return _StagedUpload(self, self._staging)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as err:
            raise self._fail("delete", key, err) from None

    def list(self, prefix: str) -> Iterator[str]:
        full = (
            self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        )
        if prefix.endswith("/") and not full.endswith("/"):
            full += "/"
        cut = len(self.prefix) + 1 if self.prefix else 0
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        )
        try:
            keys = [
                item["Key"][cut:] for page in pages for item in page.get("Contents", [])
            ]
        except (ClientError, BotoCoreError) as err:
            raise self._fail("list", prefix, err) from None
        return iter(sorted(keys))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        key = self._key(paths.LOCK)
        owner = json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.time(),
                "token": uuid.uuid4().hex,
            }
        ).encode()
        if not self._acquire(key, owner):
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.delete_object(Bucket=self.bucket, Key=key)

    def _acquire(self, key: str, owner: bytes) -> bool:
        """Create the lock object; False when the store has no conditional writes."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        warned = False
        while True:
            created = self._create(key, owner)
            if created is None:
                return False
            if created or self._holds(key, owner):
                # When the create succeeded but its answer was lost, the retry
                # found the object it had made: the lock is ours.
                self._probe(key, owner)
                return True
            if self._abandoned(key):
                log.warning("removing the lock of a publish that died on this host")
                self.client.delete_object(Bucket=self.bucket, Key=key)
                continue
            if time.monotonic() > deadline:
                raise Conflict(
                    f"the tree {self.url} stays locked by another publish "
                    f"({self._describe_holder(key)})",
                    hint=f"if none is running (on any host), delete "
                    f"s3://{self.bucket}/{key}",
                )
            if not warned:
                log.warning(
                    "waiting for another publish into %s to finish (%s)",
                    self.url,
                    self._describe_holder(key),
                )
                warned = True
            time.sleep(LOCK_POLL_SECONDS)

    def _create(self, key: str, owner: bytes) -> bool | None:
        """Put the lock object unless it exists: True if made, False if it
        exists, None when the store refuses conditional writes."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=owner, IfNoneMatch="*"
            )
            return True
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in _EXISTS:
                return False
            log.warning(
                "the store refused a conditional write (%s): one "
                "publisher at a time is expected",
                code,
            )
            return None
        except BotoCoreError as err:
            raise self._fail("lock", paths.LOCK, err) from None

    def _probe(self, key: str, owner: bytes) -> None:
        """Warn when the store accepts If-None-Match but ignores it: a second
        create of the lock must fail, or the lock excludes no one."""
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=owner, IfNoneMatch="*"
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code not in _EXISTS:
                log.warning(
                    "cannot tell whether the store honours conditional writes "
                    "(%s): one publisher at a time is expected",
                    code,
                )
            return
        except BotoCoreError as err:
            raise self._fail("lock", paths.LOCK, err) from None
        log.warning(
            "the store at %s ignores conditional writes (If-None-Match): one "
            "publisher at a time is expected",
            self.url,
        )

    def _holder(self, key: str) -> dict[str, Any] | None:
        """What the lock object says of its owner, if it can be read."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            holder = json.loads(answer["Body"].read())
        except (ClientError, BotoCoreError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def _describe_holder(self, key: str) -> str:
        holder = self._holder(key)
        if holder is None:
            return "holder unknown"
        since = holder.get("since")
        when = (
            time.strftime(" since %Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
            if isinstance(since, (int, float))
            else ""
        )
        return f"held by pid {holder.get('pid')} on {holder.get('host')}{when}"

    def _abandoned(self, key: str) -> bool:
        """True for a lock taken on this host by a process that no longer runs."""
        holder = self._holder(key)
        if holder is None or holder.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (OSError, KeyError, TypeError, ValueError):
            return False
        return False

    def _holds(self, key: str, owner: bytes) -> bool:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
            return bool(answer["Body"].read() == owner)
        except (ClientError, BotoCoreError):
            return False

    def close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


class _StagedUpload:
    """A local temporary file, uploaded on commit."""

    def __init__(self, store: S3Store, folder: str) -> None:
        self._store = store
        fd, self._path = tempfile.mkstemp(dir=folder, prefix="blob-")
        self._file: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        assert self._file is not None, "write after close"
        self._file.write(data)
        self.size += len(data)
        return len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
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
        self._store.upload_file(self._path, key, content_type, cache_control, digest)
        self.discard()

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)


def guess_type_of(key: str) -> str:
    media_type = paths.media_type_of(key)
    if media_type:
        return media_type
    if key.endswith(".json") or key.endswith("/_catalog") or key.endswith("/list"):
        return "application/json"
    if key.endswith(".html"):
        return "text/html; charset=utf-8"
    if key.endswith(".css"):
        return "text/css"
    if key.endswith(".js"):
        return "text/javascript"
    return "application/octet-stream"
