"""staticreg verify: a fresh tree passes; damage is named; --fix rebuilds what is
derived from the records and never invents a blob."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sample_trees
from click.testing import CliRunner

from staticreg import catalog, paths, referrers, verify
from staticreg import digest as digestmod
from staticreg.cli import cli
from staticreg.store import DirectoryStore, MemoryStore, Store

from harness import images

LAYOUTS = ["directory", "bucket", "bucket-blob-copies"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return sample_trees.inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture
def tree(tmp_path: Path, inputs: list[Path]) -> DirectoryStore:
    store = DirectoryStore(str(tmp_path / "tree"))
    sample_trees.publish_into(store, inputs)
    return store


def _texts(report: verify.Report) -> list[str]:
    return [str(problem) for problem in report.problems]


def _tag(store: Store, name: str, tag: str) -> tuple[str, str]:
    """The digest the record names for a tag, and the layer it starts with."""
    record = catalog.read_repository(store, name)
    assert record is not None
    digest = record.tags[tag].digest
    manifest = json.loads(store.get(paths.tag(name, tag, record.tags[tag].media_type)))
    return digest, manifest["layers"][0]["digest"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_verify_passes_on_a_fresh_publish(layout: str, inputs: list[Path]) -> None:
    store = MemoryStore()
    sample_trees.publish_into(store, inputs, layout)
    report = verify.verify(store)
    assert _texts(report) == []
    assert report.repositories == len(sample_trees.REPOSITORIES)
    assert report.blobs == len(list(store.list("blobs/")))


def test_flipped_byte_in_a_blob_is_a_corrupt_blob(tree: DirectoryStore) -> None:
    _, layer = _tag(tree, "test/img", "v1")
    path = Path(tree.root, paths.blob(digestmod.parse(layer)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    found = digestmod.of_bytes(bytes(data))
    assert _texts(verify.verify(tree)) == [
        f"corrupt blob {layer}: digest is {found}, size {len(data)}"
    ]


def test_missing_blob_names_the_manifest_that_needs_it(tree: DirectoryStore) -> None:
    digest, layer = _tag(tree, "test/img", "v1")
    Path(tree.root, paths.blob(digestmod.parse(layer))).unlink()
    assert _texts(verify.verify(tree)) == [
        f"missing blob {layer} referenced by test/img@{digest}"
    ]


def test_tag_pointing_at_a_missing_manifest(tree: DirectoryStore) -> None:
    digest, _ = _tag(tree, "test/img", "v1")
    record = catalog.read_repository(tree, "test/img")
    assert record is not None
    media_type = record.tags["v1"].media_type
    tree.delete(paths.manifest("test/img", digestmod.parse(digest), media_type))
    assert _texts(verify.verify(tree)) == [
        f"missing manifest test/img@{digest}",
        f"tag test/img:v1 points at missing manifest {digest}",
    ]


def test_stale_tags_list(tree: DirectoryStore) -> None:
    tree.put(paths.tags_list("test/img"), b'{"name": "test/img", "tags": ["old"]}')
    assert _texts(verify.verify(tree)) == [
        "stale tags list of test/img (repositories/test/img/_tags.json)"
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_fix_rebuilds_derived_files(layout: str, inputs: list[Path]) -> None:
    store = MemoryStore()
    sample_trees.publish_into(store, inputs, layout)
    shape = paths.layout_named(layout)
    record = catalog.read_repository(store, "lay/signed")
    assert record is not None
    [subject] = record.referrers
    subject_digest = digestmod.parse(subject)
    referrers_key = shape.referrers("lay/signed", subject_digest)
    tag_key = shape.tag("lay/signed", "1", record.tags["1"].media_type)
    fallback = referrers.tag_name(subject_digest)
    fallback_key = shape.tag("lay/signed", fallback, record.tags[fallback].media_type)
    link = shape.blob_link("lay/multi", _first_blob(store, "lay/multi"))
    # Damage only derived files: a tag object, a tags list, a referrers answer,
    # a fallback tag, a blob link, the catalog.
    store.put(tag_key, b"{}")
    store.put(shape.tags_list("lay/multi"), b"{}")
    store.delete(referrers_key)
    store.delete(fallback_key)
    store.delete(link)
    store.put(shape.catalog, catalog.catalog_bytes(["ghost/repo"]))
    before = verify.verify(store)
    assert len(before.problems) >= 6 and all(p.fixable for p in before.problems)

    fixed = verify.verify(store, fix=True)
    assert fixed.problems == [] and set(fixed.fixed) == set(before.problems)
    assert _texts(verify.verify(store)) == []


def _first_blob(store: Store, name: str) -> digestmod.Digest:
    record = catalog.read_repository(store, name)
    assert record is not None
    blobs = [b for entry in record.manifests.values() for b in entry["blobs"]]
    return digestmod.parse(sorted(blobs)[0])


def test_fix_never_invents_a_missing_blob(tree: DirectoryStore) -> None:
    digest, layer = _tag(tree, "test/img", "v1")
    Path(tree.root, paths.blob(digestmod.parse(layer))).unlink()
    tree.put(paths.tags_list("test/img"), b"{}")
    report = verify.verify(tree, fix=True)
    assert _texts(report) == [f"missing blob {layer} referenced by test/img@{digest}"]
    assert [str(p) for p in report.fixed] == [
        "stale tags list of test/img (repositories/test/img/_tags.json)"
    ]
    assert tree.stat(paths.blob(digestmod.parse(layer))) is None


def test_fix_removes_a_tag_object_the_record_does_not_know(
    tree: DirectoryStore,
) -> None:
    record = catalog.read_repository(tree, "test/img")
    assert record is not None
    media_type = record.tags["v1"].media_type
    stray = paths.tag("test/img", "gone", media_type)
    tree.put(stray, tree.get(paths.tag("test/img", "v1", media_type)))
    assert _texts(verify.verify(tree)) == [
        f"tag object {stray} is not in the record of test/img"
    ]
    assert verify.verify(tree, fix=True).ok
    assert tree.stat(stray) is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_lost_record_is_reported_and_never_dropped(
    layout: str, inputs: list[Path]
) -> None:
    store = MemoryStore()
    sample_trees.publish_into(store, inputs, layout)
    store.delete(paths.repository_record("test/img"))
    expected = [
        "repository test/img has no record (repositories/test/img/_repository.json)"
        " but its tags are still served; restore the record from a copy of the tree"
    ]
    assert _texts(verify.verify(store)) == expected
    # --fix cannot rebuild the authority, and keeps the repository listed.
    assert _texts(verify.verify(store, fix=True)) == expected
    assert "test/img" in catalog.read_names(store, paths.layout_named(layout))


def test_catalog_entry_of_a_removed_repository_is_fixed(tree: DirectoryStore) -> None:
    names = catalog.read_names(tree)
    tree.put(paths.CATALOG, catalog.catalog_bytes([*names, "gone/repo"]))
    assert _texts(verify.verify(tree)) == [
        "catalog lists gone/repo, which have no record"
    ]
    assert verify.verify(tree, fix=True).ok
    assert catalog.read_names(tree) == names


def test_cli_prints_problems_and_exits_non_zero(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    root = str(tmp_path / "r")
    runner = CliRunner()
    published = runner.invoke(cli, ["publish", "--root", root, str(hello_tar.path)])
    assert published.exit_code == 0
    ok = runner.invoke(cli, ["verify", "--root", root])
    assert ok.exit_code == 0 and ok.stdout == ""
    assert "0 problems left" in ok.stderr

    DirectoryStore(root).put(paths.tags_list("test/img"), b"{}")
    bad = runner.invoke(cli, ["verify", "--root", root])
    assert bad.exit_code == 1
    assert bad.stdout.splitlines() == [
        "stale tags list of test/img (repositories/test/img/_tags.json)"
    ]
    assert "verify --fix rebuilds 1 of them" in bad.stderr
    fixed = runner.invoke(cli, ["verify", "--root", root, "--fix"])
    assert fixed.exit_code == 0
    assert fixed.stdout.endswith("(fixed)\n")
    assert runner.invoke(cli, ["verify", "--root", root]).exit_code == 0


def test_cli_refuses_a_folder_that_is_no_tree(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "it is not a staticreg tree" in result.stderr


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("STATICREG_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="registry")
        yield client


@pytest.mark.parametrize("layout", ["bucket", "bucket-blob-copies"])
def test_wrong_bucket_metadata_is_reported_and_fixed(
    layout: str, aws: Any, inputs: list[Path]
) -> None:
    from staticreg.store.s3 import S3Store

    store = S3Store("s3://registry/reg", client=aws)
    sample_trees.publish_into(store, inputs, layout)
    shape = paths.layout_named(layout)
    record = catalog.read_repository(store, "test/img")
    assert record is not None
    entry = record.tags["v1"]
    tag_key = shape.tag("test/img", "v1", entry.media_type)
    manifest_key = shape.manifest(
        "test/img", digestmod.parse(entry.digest), entry.media_type
    )
    # The same bytes, with what a copy by hand (aws s3 cp) may leave.
    store.put(tag_key, store.get(tag_key), "application/octet-stream")
    other = "sha256:" + "0" * 64
    store.put(manifest_key, store.get(manifest_key), entry.media_type, digest=other)
    expected = [
        f"wrong metadata on {manifest_key}: digest metadata {other!r}, "
        f"not {entry.digest!r}",
        f"wrong metadata on {tag_key}: Content-Type 'application/octet-stream', "
        f"not {entry.media_type!r}; digest metadata None, not {entry.digest!r}",
    ]
    assert _texts(verify.verify(store)) == expected

    fixed = verify.verify(store, fix=True)
    assert fixed.ok and [str(p) for p in fixed.fixed] == expected
    assert verify.verify(store).ok
    for key in (tag_key, manifest_key):
        head = store.head(key)
        assert head is not None and head["ContentType"] == entry.media_type
        assert head["Metadata"] == {"docker-content-digest": entry.digest}
