"""OCI layouts: byte-for-byte manifests, multi-platform indexes and referrers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from staticreg import catalog, mediatypes, paths, publish, sources, targets
from staticreg import digest as digestmod
from staticreg.errors import Conflict, DigestMismatch, SourceError
from staticreg.pipeline import Plan
from staticreg.store import DirectoryStore

from harness import images
from harness.layouts import SBOM_TYPE, SIGNATURE_TYPE, Layout, platform_image


def _publish(
    root: Path,
    inputs: list[str],
    tags: list[str] | None = None,
    plan: Plan | None = None,
    ref: str | None = None,
    platforms: tuple[str, ...] = (),
) -> list[publish.Published]:
    store = DirectoryStore(str(root))
    try:
        read = [sources.read(i, ref, platforms) for i in inputs]
        pairs = targets.resolve(
            [n for r in read for n in r.nodes], targets.parse_tags(tags or [])
        )
        extra = [(node, None) for r in read for node in r.referrers]
        return publish.publish(store, pairs, plan or Plan(), extra_referrers=extra)
    finally:
        store.close()


def _record(root: Path, name: str) -> catalog.RepositoryRecord:
    record = catalog.read_repository(DirectoryStore(str(root)), name)
    assert record is not None
    return record


def _served(root: Path, name: str, ref: str) -> bytes:
    keys = (
        paths.tag_candidates(name, ref)
        if ":" not in ref
        else paths.manifest_candidates(name, digestmod.parse(ref))
    )
    [key] = [k for k in keys if (root / k).exists()]
    return (root / key).read_bytes()


@pytest.fixture
def single(tmp_path: Path) -> tuple[Layout, dict]:  # type: ignore[type-arg]
    layout = Layout()
    manifest = layout.image(images.hello_image(()))
    layout.add(manifest, "docker.io/team/app:1.0")
    return layout, manifest


@pytest.mark.parametrize("as_tar", [False, True])
def test_single_image_keeps_its_digest(tmp_path: Path, single, as_tar: bool) -> None:  # type: ignore[no-untyped-def]
    layout, manifest = single
    path = (
        layout.write_tar(tmp_path / "l.tar")
        if as_tar
        else layout.write_dir(tmp_path / "l")
    )
    [result] = _publish(tmp_path / "tree", [str(path)])
    assert str(result) == f"team/app:1.0@{manifest['digest']}"
    assert (
        _served(tmp_path / "tree", "team/app", "1.0")
        == layout.blobs[manifest["digest"]]
    )


def test_two_platform_index_is_published_byte_for_byte(tmp_path: Path) -> None:
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"amd64\n"))
    arm = layout.image(platform_image("arm64", b"arm64\n"))
    index = layout.index([amd, arm])
    layout.add(index, "multi/app:2")
    [result] = _publish(tmp_path / "tree", [str(layout.write_dir(tmp_path / "l"))])
    root = tmp_path / "tree"
    assert str(result.digest) == index["digest"]
    assert _served(root, "multi/app", "2") == layout.blobs[index["digest"]]
    for child in (amd, arm):
        assert (
            _served(root, "multi/app", child["digest"]) == layout.blobs[child["digest"]]
        )
        for desc in [
            json.loads(layout.blobs[child["digest"]])["config"],
            *json.loads(layout.blobs[child["digest"]])["layers"],
        ]:
            assert (
                root / paths.blob_link("multi/app", digestmod.parse(desc["digest"]))
            ).exists()
    record = _record(root, "multi/app")
    assert record.platforms(index["digest"]) == ["linux/amd64", "linux/arm64"]


def test_buildx_index_with_attestations_is_published_byte_for_byte(
    tmp_path: Path,
) -> None:
    # buildx's default output: each platform's image, plus an attestation manifest
    # (an in-toto layer, platform unknown/unknown) referring to it by annotation.
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"amd64\n"))
    arm = layout.image(platform_image("arm64", b"arm64\n"))
    attestations = [layout.attestation(amd), layout.attestation(arm)]
    index = layout.index([amd, arm, *attestations])
    layout.add(index, "buildx/app:1")
    [result] = _publish(tmp_path / "tree", [str(layout.write_dir(tmp_path / "l"))])
    root = tmp_path / "tree"
    assert str(result.digest) == index["digest"]
    assert _served(root, "buildx/app", "1") == layout.blobs[index["digest"]]
    for attestation in attestations:
        raw = layout.blobs[attestation["digest"]]
        assert _served(root, "buildx/app", attestation["digest"]) == raw
        [statement] = json.loads(raw)["layers"]
        link = paths.blob_link("buildx/app", digestmod.parse(statement["digest"]))
        assert (root / link).exists()
    # The attestations are no platforms to pull.
    record = _record(root, "buildx/app")
    assert record.platforms(index["digest"]) == ["linux/amd64", "linux/arm64"]


def test_docker_manifest_list_is_kept(tmp_path: Path) -> None:
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"a\n"), docker=True)
    arm = layout.image(platform_image("arm64", b"b\n"), docker=True)
    index = layout.index([amd, arm], docker=True)
    layout.add(index, "dl/app:1")
    [result] = _publish(tmp_path / "tree", [str(layout.write_dir(tmp_path / "l"))])
    assert str(result.digest) == index["digest"]
    assert result.media_type == mediatypes.DOCKER_LIST
    key = paths.tag("dl/app", "1", result.media_type)
    assert (tmp_path / "tree" / key).read_bytes() == layout.blobs[index["digest"]]


def test_uncompressed_layout_layers_are_gzipped_and_manifest_rebuilt(
    tmp_path: Path,
) -> None:
    layout = Layout()
    manifest = layout.image(images.hello_image(()), compression="none")
    layout.add(manifest, "raw/app:1")
    [result] = _publish(tmp_path / "tree", [str(layout.write_dir(tmp_path / "l"))])
    assert str(result.digest) != manifest["digest"]
    doc = json.loads(_served(tmp_path / "tree", "raw/app", "1"))
    assert {d["mediaType"] for d in doc["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
    kept = _publish(tmp_path / "tree2", [str(tmp_path / "l")], plan=Plan("none"))
    assert str(kept[0].digest) == manifest["digest"]


def test_two_single_platform_inputs_become_an_index(tmp_path: Path) -> None:
    amd = images.write_docker_save(
        tmp_path / "amd.tar", [platform_image("amd64", b"a\n")]
    )
    arm = images.write_docker_save(
        tmp_path / "arm.tar", [platform_image("arm64", b"b\n")]
    )
    [result] = _publish(tmp_path / "tree", [str(amd.path), str(arm.path)], ["app:1.0"])
    doc = json.loads(_served(tmp_path / "tree", "app", "1.0"))
    assert doc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in doc["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
    ]


def test_two_inputs_for_one_platform_are_refused(tmp_path: Path, snapshot) -> None:  # type: ignore[no-untyped-def]
    one = images.write_docker_save(tmp_path / "1.tar", [platform_image("amd64", b"1")])
    two = images.write_docker_save(tmp_path / "2.tar", [platform_image("amd64", b"2")])
    with pytest.raises(Conflict, match="two inputs for platform linux/amd64"):
        _publish(tmp_path / "tree", [str(one.path), str(two.path)], ["app:1"])
    assert not (tmp_path / "tree").exists()


def test_referrers_and_fallback_tag(tmp_path: Path) -> None:
    layout = Layout()
    manifest = layout.image(images.hello_image(()), compression="none")
    signature = layout.artifact(
        manifest, SIGNATURE_TYPE, b'{"sig": 1}', "application/json"
    )
    sbom = layout.artifact(manifest, SBOM_TYPE, b'{"spdx": 2}', "application/json")
    layout.add(manifest, "signed/app:1")
    layout.add(signature)
    layout.add(sbom)
    root = tmp_path / "tree"
    [result] = _publish(root, [str(layout.write_dir(tmp_path / "l"))])
    # Referrers sign the digest: the image is kept byte for byte even though its
    # layers are uncompressed and auto would gzip them.
    assert str(result.digest) == manifest["digest"]
    subject = digestmod.parse(manifest["digest"])
    answer = json.loads((root / paths.referrers("signed/app", subject)).read_bytes())
    assert answer["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert sorted(d["digest"] for d in answer["manifests"]) == sorted(
        [signature["digest"], sbom["digest"]]
    )
    assert {d["artifactType"] for d in answer["manifests"]} == {
        SIGNATURE_TYPE,
        SBOM_TYPE,
    }
    fallback = f"sha256-{subject.hex}"
    assert _record(root, "signed/app").tags[fallback]
    assert json.loads(_served(root, "signed/app", fallback)) == answer
    by_type = root / paths.referrers_by_type(
        "signed/app", subject, "application%2Fspdx%2Bjson"
    )
    assert [d["digest"] for d in json.loads(by_type.read_bytes())["manifests"]] == [
        sbom["digest"]
    ]
    for artifact in (signature, sbom):
        assert (
            _served(root, "signed/app", artifact["digest"])
            == layout.blobs[artifact["digest"]]
        )


def test_index_with_missing_platform_blobs_names_them(tmp_path: Path) -> None:
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"a\n"))
    arm = layout.image(platform_image("arm64", b"b\n"))
    layout.add(layout.index([amd, arm]), "partial/app:1")
    path = layout.write_dir(tmp_path / "l", drop={arm["digest"]})
    with pytest.raises(SourceError) as info:
        _publish(tmp_path / "tree", [str(path)])
    assert "for platforms linux/arm64" in str(info.value)
    assert info.value.hint == (
        "publish only the complete platforms with --platform linux/amd64"
    )
    [result] = _publish(tmp_path / "tree", [str(path)], platforms=("linux/amd64",))
    doc = json.loads(_served(tmp_path / "tree", "partial/app", "1"))
    assert [m["digest"] for m in doc["manifests"]] == [amd["digest"]]
    assert result.digest != digestmod.parse(layout.entries[0]["digest"])


def test_layout_bad_inputs(tmp_path: Path, single) -> None:  # type: ignore[no-untyped-def]
    layout, manifest = single
    path = layout.write_dir(tmp_path / "l")
    with pytest.raises(SourceError, match="has no image with ref 'nope'") as info:
        _publish(tmp_path / "tree", [f"{path}:nope"])
    assert info.value.hint is not None and "docker.io/team/app:1.0" in info.value.hint

    blob = path / "blobs/sha256" / manifest["digest"].split(":")[1]
    blob.write_bytes(blob.read_bytes() + b" ")
    with pytest.raises(SourceError, match="has digest sha256:.* expected"):
        _publish(tmp_path / "tree", [str(path)])

    missing = layout.write_dir(
        tmp_path / "m",
        drop={json.loads(layout.blobs[manifest["digest"]])["layers"][1]["digest"]},
    )
    with pytest.raises(SourceError, match="lacks layer blob"):
        _publish(tmp_path / "tree", [str(missing)])
    assert not (tmp_path / "tree").exists()


def test_layer_blob_digest_mismatch(tmp_path: Path, single) -> None:  # type: ignore[no-untyped-def]
    layout, manifest = single
    path = layout.write_dir(tmp_path / "l")
    layer = json.loads(layout.blobs[manifest["digest"]])["layers"][0]["digest"]
    target = path / "blobs/sha256" / layer.split(":")[1]
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises((DigestMismatch, SourceError)):
        _publish(tmp_path / "tree", [str(path)])
    assert not (tmp_path / "tree").exists()
