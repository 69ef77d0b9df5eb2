"""One suite that every store backend passes."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from staticreg.errors import StoreError
from staticreg.store import DirectoryStore, MemoryStore, Metadata, MetadataStore, Store


@pytest.fixture(params=["memory", "directory", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    if request.param == "s3":
        yield from _s3_store(monkeypatch)
        return
    made: Store = (
        MemoryStore()
        if request.param == "memory"
        else DirectoryStore(str(tmp_path / "tree"))
    )
    yield made
    made.close()


def _s3_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    import boto3
    from moto import mock_aws

    from staticreg.store.s3 import S3Store

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="conformance")
        made = S3Store("s3://conformance/some/prefix", client=client)
        yield made
        made.close()


def test_put_get_stat_delete(store: Store) -> None:
    assert store.stat("a/b.json") is None
    store.put("a/b.json", b"{}")
    assert store.stat("a/b.json") == 2 and store.get("a/b.json") == b"{}"
    store.put("a/b.json", b"[1]")
    assert store.get("a/b.json") == b"[1]"
    store.delete("a/b.json")
    store.delete("a/b.json")
    assert store.stat("a/b.json") is None
    with pytest.raises(KeyError):
        store.get("a/b.json")


def test_staged_writer_is_invisible_until_commit(store: Store) -> None:
    writer = store.staged_writer()
    writer.write(b"abc")
    writer.write(memoryview(b"def"))
    writer.close()
    assert writer.size == 6
    assert list(store.list("blobs/")) == []
    writer.commit("blobs/sha256/x")
    assert store.get("blobs/sha256/x") == b"abcdef"
    with store.open("blobs/sha256/x") as stream:
        assert stream.read() == b"abcdef"


def test_discarded_writer_leaves_nothing(store: Store) -> None:
    writer = store.staged_writer()
    writer.write(b"abc")
    writer.discard()
    assert [k for k in store.list("") if not k.startswith(".staticreg/")] == []


def test_list_is_recursive_and_sorted(store: Store) -> None:
    for key in ["r/b/x", "r/a", "s/z", "r/b/a"]:
        store.put(key, b"")
    assert list(store.list("r/")) == ["r/a", "r/b/a", "r/b/x"]


def test_copy_inside_the_store(store: Store) -> None:
    store.put("blobs/a", b"payload")
    store.copy("blobs/a", "v2/x/blobs/sha256:a", "application/octet-stream")
    assert store.get("v2/x/blobs/sha256:a") == b"payload"


def test_lock_can_be_taken_again(store: Store) -> None:
    with store.lock():
        store.put("k", b"1")
    with store.lock():
        assert store.get("k") == b"1"


def test_directory_files_are_world_readable(tmp_path: Path) -> None:
    import os

    old = os.umask(0o077)
    try:
        tree = DirectoryStore(str(tmp_path / "tree"))
        tree.put("repositories/a/_tags/v1.oci-manifest", b"{}")
        tree.close()
    finally:
        os.umask(old)
    path = tmp_path / "tree"
    for item in [path / "repositories", path / "repositories/a/_tags"]:
        assert item.stat().st_mode & 0o755 == 0o755
    mode = (path / "repositories/a/_tags/v1.oci-manifest").stat().st_mode
    assert stat.S_IMODE(mode) == 0o644


def test_directory_refuses_keys_outside(tmp_path: Path) -> None:
    tree = DirectoryStore(str(tmp_path / "tree"))
    with pytest.raises(StoreError, match="points outside the tree"):
        tree.put("../evil", b"")
    assert not (tmp_path / "evil").exists()


def test_directory_removes_staging_of_dead_writers(tmp_path: Path) -> None:
    abandoned = tmp_path / "tree/.staticreg/tmp/999999-x"
    abandoned.mkdir(parents=True)
    (abandoned / ".owner").write_bytes(b"")
    (abandoned / "blob-1").write_bytes(b"partial")
    tree = DirectoryStore(str(tmp_path / "tree"))
    writer = tree.staged_writer()
    writer.discard()
    assert not abandoned.exists()
    tree.close()


def test_metadata_is_read_back_where_the_store_keeps_it(
    store: Store, request: pytest.FixtureRequest
) -> None:
    """Only a bucket keeps metadata (verify compares it); other stores derive
    headers from keys and do not claim to."""
    kind = request.node.callspec.params["store"]
    assert isinstance(store, MetadataStore) == (kind == "s3")
    if not isinstance(store, MetadataStore):
        return
    media_type = "application/vnd.oci.image.manifest.v1+json"
    store.put("m/x", b"{}", media_type, digest="sha256:" + "a" * 64)
    store.put("m/y", b"{}")
    assert store.metadata("m/x") == Metadata(media_type, "sha256:" + "a" * 64)
    assert store.metadata("m/y") == Metadata("application/octet-stream", None)
    assert store.metadata("m/none") is None
