"""staticreg sync: directory -> bucket -> directory with moto, in both bucket
layouts; incremental, dry runs and --delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sample_trees
from click.testing import CliRunner
from moto import mock_aws

from staticreg import api, catalog, paths, sync, verify
from staticreg import digest as digestmod
from staticreg.cli import cli
from staticreg.errors import Conflict, DigestMismatch
from staticreg.store import DirectoryStore, Store
from staticreg.store.s3 import S3Store

BUCKET = "registry"
BUCKET_LAYOUTS = ["bucket", "bucket-blob-copies"]
# Keys that are the writer's own, not part of what a tree serves or records.
OWN = (paths.LOCK, paths.TMP + "/")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STATICREG_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return sample_trees.inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture
def source(tmp_path: Path, inputs: list[Path]) -> DirectoryStore:
    store = DirectoryStore(str(tmp_path / "source"))
    sample_trees.publish_into(store, inputs)
    return store


class Writes:
    """Counts the S3 calls that write, except the writers' lock."""

    def __init__(self, client: Any) -> None:
        self.keys: list[str] = []
        client.meta.events.register("before-parameter-build.s3", self._seen)

    def _seen(self, params: Any, model: Any, **_: Any) -> None:
        kinds = ("PutObject", "CopyObject", "CreateMultipartUpload", "DeleteObject")
        key = str(params.get("Key", ""))
        if model.name in kinds and not key.endswith(paths.LOCK):
            self.keys.append(key)


def _tree(store: Store) -> dict[str, bytes]:
    return {
        key: store.get(key)
        for key in store.list("")
        if not key.startswith(OWN) and key != paths.SETTINGS
    }


def _records(store: Store) -> dict[str, bytes]:
    found = {}
    for name in sample_trees.REPOSITORIES:
        record = catalog.read_repository(store, name)
        assert record is not None
        found[name] = record.to_bytes()
    return found


def _bucket(aws: Any, prefix: str = "copy") -> S3Store:
    return S3Store(f"s3://{BUCKET}/{prefix}", client=aws)


@pytest.mark.parametrize("layout", BUCKET_LAYOUTS)
def test_round_trip_through_a_bucket(
    layout: str, aws: Any, source: DirectoryStore, tmp_path: Path
) -> None:
    bucket = _bucket(aws)
    sync.sync(source, bucket, blob_copies=layout == "bucket-blob-copies")
    assert catalog.read_settings(bucket)["layout"] == layout  # type: ignore[index]
    assert verify.verify(bucket).problems == []
    assert _records(bucket) == _records(source)
    _check_metadata(bucket, paths.layout_named(layout))

    back = DirectoryStore(str(tmp_path / "back"))
    sync.sync(bucket, back)
    assert catalog.read_settings(back)["layout"] == "directory"  # type: ignore[index]
    assert verify.verify(back).problems == []
    # Records, tags, manifests, blobs, layer map and site: the same bytes.
    assert _tree(back) == _tree(source)


def _check_metadata(bucket: S3Store, layout: Any) -> None:
    """Keys carry what publish gives them: content type, caching, digest."""
    record = catalog.read_repository(bucket, "test/img")
    assert record is not None
    entry = record.tags["v1"]
    digest = digestmod.parse(entry.digest)
    head = bucket.head(layout.manifest("test/img", digest, entry.media_type))
    assert head is not None
    assert head["ContentType"] == entry.media_type
    assert head["CacheControl"] == api.IMMUTABLE
    assert head["Metadata"] == {"docker-content-digest": entry.digest}
    tag = bucket.head(layout.tag("test/img", "v1", entry.media_type))
    assert tag is not None and tag["CacheControl"] == api.SHORT
    blob = next(iter(record.manifests[entry.digest]["blobs"]))
    head = bucket.head(paths.blob(digestmod.parse(blob)))
    assert head is not None and head["ContentType"] == "application/octet-stream"
    assert head["Metadata"] == {"docker-content-digest": blob}


@pytest.mark.parametrize("layout", BUCKET_LAYOUTS)
def test_second_sync_writes_nothing(
    layout: str, aws: Any, source: DirectoryStore, tmp_path: Path
) -> None:
    bucket = _bucket(aws)
    blob_copies = layout == "bucket-blob-copies"
    first = sync.sync(source, bucket, blob_copies=blob_copies)
    assert first.written > 0
    writes = Writes(aws)
    again = sync.sync(source, bucket)
    assert again.changes == [] and writes.keys == []

    back = DirectoryStore(str(tmp_path / "back"))
    sync.sync(bucket, back)
    before = {p: p.stat().st_mtime_ns for p in Path(back.root).rglob("*")}
    assert sync.sync(bucket, back).changes == []
    after = {p: p.stat().st_mtime_ns for p in Path(back.root).rglob("*")}
    assert {p: t for p, t in after.items() if paths.PRIVATE not in str(p)} == {
        p: t for p, t in before.items() if paths.PRIVATE not in str(p)
    }


def test_dry_run_writes_nothing(
    aws: Any, source: DirectoryStore, tmp_path: Path
) -> None:
    writes = Writes(aws)
    result = CliRunner().invoke(
        cli, ["sync", source.root, f"s3://{BUCKET}/copy", "--dry-run"]
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert writes.keys == []
    assert aws.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    assert all(line.startswith("+ ") for line in lines)
    planned = {line[2:] for line in lines}
    assert planned >= {paths.SETTINGS, paths.CATALOG, paths.INDEX_JSON}
    assert {k for k in planned if k.startswith("blobs/")} == {
        k for k in source.list("blobs/")
    }
    # What a dry run lists is what the sync then writes.
    done = sync.sync(source, _bucket(aws))
    assert set(done.changes) == set(lines)

    folder = tmp_path / "new"
    result = CliRunner().invoke(cli, ["sync", source.root, str(folder), "--dry-run"])
    assert result.exit_code == 0 and result.stdout
    assert not folder.exists()


def test_delete_removes_what_the_source_no_longer_has(
    aws: Any, source: DirectoryStore, inputs: list[Path], tmp_path: Path
) -> None:
    bucket = _bucket(aws)
    sync.sync(source, bucket, blob_copies=True)
    smaller = DirectoryStore(str(tmp_path / "smaller"))
    sample_trees.publish_into(smaller, inputs[:2])

    layout = paths.layout_named("bucket-blob-copies")
    kept = sync.sync(smaller, bucket)
    assert kept.removed == 0
    assert "lay/signed" in catalog.read_names(bucket, layout)

    planned = sync.sync(smaller, bucket, delete=True, dry_run=True)
    removals = [c[2:] for c in planned.changes if c.startswith("- ")]
    written = [c[2:] for c in planned.changes if c.startswith("+ ")]
    assert removals and written
    # What the source changed: the catalog and the site; the rest is removals.
    assert all(k == layout.catalog or k.startswith(("site/", "v1/")) for k in written)

    # The catalog stops listing a repository before its keys go.
    order = planned.changes
    gone = [i for i, c in enumerate(order) if c.startswith("- ") and "lay/signed" in c]
    assert order.index(f"+ {layout.catalog}") < min(gone)

    done = sync.sync(smaller, bucket, delete=True)
    assert done.changes == planned.changes
    assert not [k for k in bucket.list("") if "lay/signed" in k]
    assert verify.verify(bucket).problems == []
    assert catalog.read_names(bucket, layout) == ["lay/multi", "test/img"]
    assert set(bucket.list("blobs/")) == set(smaller.list("blobs/"))
    # Pointers go before the blobs they needed.
    first_blob = min(i for i, k in enumerate(removals) if k.startswith("blobs/"))
    assert all(not k.startswith("blobs/") for k in removals[:first_blob])
    assert all(k.startswith("blobs/") for k in removals[first_blob:])


def test_existing_bucket_keeps_its_layout(aws: Any, source: DirectoryStore) -> None:
    bucket = _bucket(aws)
    sync.sync(source, bucket)
    with pytest.raises(Conflict, match="the tree uses 'bucket'"):
        sync.sync(source, bucket, blob_copies=True)


def test_blob_copies_are_for_buckets(source: DirectoryStore, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["sync", source.root, str(tmp_path / "d"), "--blob-copies"]
    )
    assert result.exit_code == 1
    assert "--blob-copies is for s3:// roots" in result.stderr


def test_corrupt_source_blob_is_refused(source: DirectoryStore, tmp_path: Path) -> None:
    record = catalog.read_repository(source, "test/img")
    assert record is not None
    layer = json.loads(
        source.get(paths.tag("test/img", "v1", record.tags["v1"].media_type))
    )["layers"][0]["digest"]
    path = Path(source.root, paths.blob(digestmod.parse(layer)))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    copy = DirectoryStore(str(tmp_path / "copy"))
    with pytest.raises(DigestMismatch, match=f"not {layer}"):
        sync.sync(source, copy)
    # Nothing points at the blob that was refused.
    assert copy.stat(paths.repository_record("test/img")) is None


def test_layer_map_lets_a_publish_into_the_copy_skip_compression(
    source: DirectoryStore, tmp_path: Path
) -> None:
    copy = DirectoryStore(str(tmp_path / "copy"))
    sync.sync(source, copy)
    layer_map = list(source.list(f"{paths.PRIVATE}/layers/"))
    assert layer_map and list(copy.list(f"{paths.PRIVATE}/layers/")) == layer_map


def test_site_search_and_ping_keep_their_caching(
    aws: Any, source: DirectoryStore
) -> None:
    bucket = _bucket(aws)
    sync.sync(source, bucket)
    search = next(iter(source.list(paths.SEARCH_RESULTS + "/")))
    for key in (paths.site_home(1), paths.SEARCH_JSON, paths.PING, search):
        head = bucket.head(key)
        assert head is not None and head.get("CacheControl") == api.SHORT, key
    home = bucket.head(paths.site_home(1))
    assert home is not None and home["ContentType"].startswith("text/html")
    # The private files are never served: no caching is promised for them.
    [layer_map, *_] = bucket.list(f"{paths.PRIVATE}/layers/")
    assert "CacheControl" not in (bucket.head(layer_map) or {})
