"""Publish into a directory tree and read it back as a registry client would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from staticreg import (
    catalog,
    digest,
    mediatypes,
    paths,
    pipeline,
    publish,
    sources,
    targets,
    tree,
)
from staticreg.errors import Conflict
from staticreg.pipeline import Plan
from staticreg.store import DirectoryStore

from harness import images


def _publish(
    root: Path, tar: Path, tags: list[str] | None = None, plan: Plan | None = None
) -> list[publish.Published]:
    store = DirectoryStore(str(root))
    try:
        pairs = targets.resolve(
            sources.read(str(tar)).nodes, targets.parse_tags(tags or [])
        )
        return publish.publish(store, pairs, plan or Plan())
    finally:
        store.close()


def _pull(root: Path, name: str, ref: str) -> tuple[dict, list[bytes]]:  # type: ignore[type-arg]
    """Follow a tag to its manifest and blobs, checking every digest on the way."""
    [tag_key] = [k for k in paths.tag_candidates(name, ref) if (root / k).exists()]
    raw = (root / tag_key).read_bytes()
    manifest = json.loads(raw)
    by_digest = root / paths.manifest(name, digest.of_bytes(raw), manifest["mediaType"])
    assert by_digest.read_bytes() == raw
    blobs = []
    for desc in [manifest["config"], *manifest["layers"]]:
        found = digest.parse(desc["digest"])
        assert (root / paths.blob_link(name, found)).exists()
        data = (root / paths.blob(found)).read_bytes()
        assert digest.of_bytes(data) == found and len(data) == desc["size"]
        blobs.append(data)
    return manifest, blobs


def test_round_trip_keeps_config_and_layers(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    [result] = _publish(tmp_path / "tree", hello_tar.path)
    assert (result.repository, result.tag) == ("test/img", "v1")
    manifest, blobs = _pull(tmp_path / "tree", "test/img", "v1")
    assert manifest["mediaType"] == mediatypes.OCI_MANIFEST
    assert digest.of_bytes(blobs[0]) == digest.parse(hello_tar.images[0].config_digest)
    assert [d["mediaType"] for d in manifest["layers"]] == [
        mediatypes.OCI_LAYER_GZIP
    ] * 2
    assert str(result.digest) == str(
        digest.of_bytes(
            (
                tmp_path / "tree" / paths.tag("test/img", "v1", mediatypes.OCI_MANIFEST)
            ).read_bytes()
        )
    )


def test_publish_is_deterministic(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    first = _publish(tmp_path / "a", hello_tar.path)
    second = _publish(tmp_path / "b", hello_tar.path)
    assert [r.digest for r in first] == [r.digest for r in second]


@pytest.mark.parametrize("kind", ["zstd", "none"])
def test_compression_settings(
    tmp_path: Path, hello_tar: images.SavedTarball, kind: str
) -> None:
    _publish(tmp_path / "tree", hello_tar.path, plan=Plan(kind))
    manifest, blobs = _pull(tmp_path / "tree", "test/img", "v1")
    assert {d["mediaType"] for d in manifest["layers"]} == {mediatypes.OCI_LAYERS[kind]}
    if kind == "none":
        assert [str(digest.of_bytes(b)) for b in blobs[1:]] == list(
            hello_tar.images[0].diff_ids
        )


def test_blobs_are_stored_once_but_linked_per_repository(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    root = tmp_path / "tree"
    _publish(root, hello_tar.path, ["one/app:1"])
    _publish(root, hello_tar.path, ["two/app:1"])
    manifest, _ = _pull(root, "two/app", "1")
    layer = digest.parse(manifest["layers"][0]["digest"])
    assert (root / paths.blob_link("one/app", layer)).exists()
    assert (
        len(list((root / "blobs/sha256").iterdir())) == 4
    )  # config, 2 layers, manifest
    assert json.loads((root / paths.CATALOG).read_bytes()) == {
        "repositories": ["one/app", "two/app"]
    }


def test_blob_of_another_repository_is_not_linked(
    tmp_path: Path,
    hello_tar: images.SavedTarball,
) -> None:
    root = tmp_path / "tree"
    _publish(root, hello_tar.path, ["one/app:1"])
    bb = images.write_docker_save(tmp_path / "bb.tar", [images.busybox_image()])
    _publish(root, bb.path, ["other:1"])
    manifest, _ = _pull(root, "one/app", "1")
    hello_layer = digest.parse(manifest["layers"][1]["digest"])
    assert not (root / paths.blob_link("other", hello_layer)).exists()


def test_moving_a_tag_replaces_it_and_keeps_the_old_digest(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    root = tmp_path / "tree"
    [old] = _publish(root, hello_tar.path, ["app:stable"])
    other = images.write_docker_save(
        tmp_path / "v2.tar", [images.hello_image(text=b"version two\n")]
    )
    [new] = _publish(root, other.path, ["app:stable"])
    assert old.digest != new.digest
    record = catalog.read_repository(DirectoryStore(str(root)), "app")
    assert record is not None
    assert record.tags["stable"].digest == str(new.digest)
    assert str(old.digest) in record.manifests
    assert json.loads((root / paths.tags_list("app")).read_bytes()) == {
        "name": "app",
        "tags": ["stable"],
    }


@pytest.mark.parametrize("compression", ["auto", "zstd", "none"])
def test_republish_compresses_and_writes_nothing_again(
    tmp_path: Path,
    hello_tar: images.SavedTarball,
    monkeypatch: pytest.MonkeyPatch,
    compression: str,
) -> None:
    root = tmp_path / "tree"
    first = _publish(root, hello_tar.path, plan=Plan(compression))
    if compression != "none":
        assert len(list((root / ".staticreg/layers").iterdir())) == 2

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a layer the tree holds was staged again")

    monkeypatch.setattr(pipeline.compression, "open_writer", refuse)
    monkeypatch.setattr(DirectoryStore, "staged_writer", refuse)
    again = _publish(root, hello_tar.path, plan=Plan(compression))
    assert [p.digest for p in again] == [p.digest for p in first]


def test_one_tag_for_several_images_is_refused(tmp_path: Path) -> None:
    saved = images.write_docker_save(
        tmp_path / "two.tar", [images.hello_image(("a:1",)), images.busybox_image()]
    )
    with pytest.raises(Conflict, match="two inputs for platform linux/amd64 under one"):
        targets.resolve(
            sources.read(str(saved.path)).nodes, targets.parse_tags(["x:1"])
        )


def test_refuses_a_folder_that_is_not_a_tree(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    root = tmp_path / "home"
    root.mkdir()
    (root / "notes.txt").write_text("mine")
    with pytest.raises(Conflict, match="it is not a staticreg tree"):
        _publish(root, hello_tar.path)
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt"]


def test_new_tree_is_a_tree_while_its_first_publish_commits(
    tmp_path: Path, hello_tar: images.SavedTarball, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second publisher checks the tree before it waits for the lock: at the
    # first publish's busiest moment (blobs in place, no pointer yet) it must
    # find a tree it may publish into, not a folder of stray files.
    seen = []
    commit_pointers = publish._commit_pointers

    def check_then_commit(store, *args, **kwargs):  # type: ignore[no-untyped-def]
        assert list(store.list("blobs/"))
        seen.append(tree.check_tree(store))
        return commit_pointers(store, *args, **kwargs)

    monkeypatch.setattr(publish, "_commit_pointers", check_then_commit)
    _publish(tmp_path / "new", hello_tar.path)
    assert seen and seen[0]["layout"] == "directory"


def test_layout_is_checked_again_under_the_lock(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    store = DirectoryStore(str(tmp_path / "tree"))
    # Made by another publisher after this one looked and found nothing.
    tree.claim(store, paths.layout_named("directory"))
    with pytest.raises(Conflict, match="the tree uses 'directory'"):
        tree.claim(store, paths.layout_named("bucket"))
