"""OCI layouts: byte-for-byte manifests, multi-platform indexes and referrers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from staticreg import catalog, mediatypes, paths, publish, sources, targets
from staticreg import digest as digestmod
from staticreg.cli import cli
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
        for found in read if tags else []:
            found.check_single()  # as the CLI does
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


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a tree but the lock, to show a failed publish changed none."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


def _blobs_of(layout: Layout, manifest: dict) -> set[str]:  # type: ignore[type-arg]
    """A manifest's digest and those of its config and layers."""
    doc = json.loads(layout.blobs[manifest["digest"]])
    return {manifest["digest"], doc["config"]["digest"]} | {
        d["digest"] for d in doc["layers"]
    }


def _buildx(tmp_path: Path, drop_arm: bool, drop_amd: bool = False) -> tuple:  # type: ignore[type-arg]
    """A buildx export whose arm64 (and amd64) image and attestation are missing,
    as Docker's containerd image store writes them (moby#49473)."""
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"amd64\n"))
    arm = layout.image(platform_image("arm64", b"arm64\n"))
    amd_att, arm_att = layout.attestation(amd), layout.attestation(arm)
    layout.add(layout.index([amd, arm, amd_att, arm_att]), "buildx/app:1")
    amd_blobs = _blobs_of(layout, amd) | _blobs_of(layout, amd_att)
    arm_blobs = _blobs_of(layout, arm) | _blobs_of(layout, arm_att)
    drop: set[str] = set()
    if drop_arm:
        drop |= arm_blobs - amd_blobs  # keeps the busybox layer both share
    if drop_amd:
        drop |= amd_blobs - arm_blobs
    path = layout.write_dir(tmp_path / "l", drop=drop)
    return path, amd, amd_att


def test_buildx_index_missing_a_platform_names_only_platforms(
    tmp_path: Path,
) -> None:
    path, amd, amd_att = _buildx(tmp_path, drop_arm=True)
    with pytest.raises(SourceError) as info:
        _publish(tmp_path / "tree", [str(path)])
    assert "lists 1 manifests whose blobs are missing, for platforms linux/arm64" in (
        str(info.value)
    )
    assert "unknown" not in str(info.value)
    assert info.value.hint == (
        "publish only the complete platforms with --platform linux/amd64"
    )
    # The hint works: amd64 is published with its own attestation, not arm64's.
    [result] = _publish(tmp_path / "tree", [str(path)], platforms=("linux/amd64",))
    doc = json.loads(_served(tmp_path / "tree", "buildx/app", "1"))
    assert [m["digest"] for m in doc["manifests"]] == [
        amd["digest"],
        amd_att["digest"],
    ]
    assert (
        doc["manifests"][1]["annotations"]["vnd.docker.reference.digest"]
        == (amd["digest"])
    )
    record = _record(tmp_path / "tree", "buildx/app")
    assert record.platforms(str(result.digest)) == ["linux/amd64"]


def test_buildx_index_with_no_complete_platform_says_so(tmp_path: Path) -> None:
    path, _, _ = _buildx(tmp_path, drop_arm=True, drop_amd=True)
    with pytest.raises(SourceError) as info:
        _publish(tmp_path / "tree", [str(path)])
    assert "for platforms linux/amd64, linux/arm64; no platform of it is" in str(
        info.value
    )
    assert info.value.hint is not None and "--platform" not in info.value.hint
    with pytest.raises(SourceError, match="has no platform unknown/unknown") as info:
        _publish(tmp_path / "tree", [str(path)], platforms=("unknown/unknown",))
    assert info.value.hint == "its platforms: linux/amd64, linux/arm64"
    assert not (tmp_path / "tree").exists()


def _signature_only(tmp_path: Path, subject: dict) -> tuple[Path, dict]:  # type: ignore[type-arg]
    layout = Layout()
    signature = layout.artifact(
        subject, SIGNATURE_TYPE, b'{"sig": 2}', "application/json"
    )
    layout.add(signature)
    return layout.write_dir(tmp_path / "sig"), signature


def test_referrer_of_an_image_published_earlier(tmp_path: Path, single) -> None:  # type: ignore[no-untyped-def]
    layout, manifest = single
    root = tmp_path / "tree"
    _publish(root, [str(layout.write_dir(tmp_path / "l"))])
    path, signature = _signature_only(tmp_path, manifest)
    assert _publish(root, [str(path)]) == []
    subject = digestmod.parse(manifest["digest"])
    answer = json.loads((root / paths.referrers("team/app", subject)).read_bytes())
    assert [d["digest"] for d in answer["manifests"]] == [signature["digest"]]
    assert json.loads(_served(root, "team/app", f"sha256-{subject.hex}")) == answer
    served = json.loads(_served(root, "team/app", signature["digest"]))
    assert served["subject"]["digest"] == manifest["digest"]
    with pytest.raises(SourceError, match="the inputs hold only referrers"):
        _publish(root, [str(path)], ["team/app:sig"])


def test_referrer_whose_subject_is_nowhere_is_refused(
    tmp_path: Path,
    single,  # type: ignore[no-untyped-def]
) -> None:
    layout, _ = single
    root = tmp_path / "tree"
    _publish(root, [str(layout.write_dir(tmp_path / "l"))])
    before = _files(root)
    stranger = Layout().image(platform_image("arm64", b"elsewhere\n"))
    path, signature = _signature_only(tmp_path, stranger)
    with pytest.raises(Conflict) as info:
        _publish(root, [str(path)])
    message = str(info.value)
    assert "\n" not in message
    assert f"cannot publish referrer {signature['digest']}" in message
    assert f"its subject {stranger['digest']} is neither in the inputs" in message
    assert _files(root) == before


def test_referrer_beside_an_image_it_does_not_refer_to_is_refused(
    tmp_path: Path,
) -> None:
    layout = Layout()
    image = layout.image(images.hello_image(()))
    stranger = Layout().image(platform_image("arm64", b"elsewhere\n"))
    signature = layout.artifact(stranger, SIGNATURE_TYPE, b"{}", "application/json")
    layout.add(image, "team/app:1")
    layout.add(signature)
    with pytest.raises(Conflict, match=f"referrer {signature['digest']}: its subj"):
        _publish(tmp_path / "tree", [str(layout.write_dir(tmp_path / "l"))])
    assert not (tmp_path / "tree" / paths.CATALOG).exists()


def test_ref_leaves_out_the_referrers_of_other_images(tmp_path: Path) -> None:
    layout = Layout()
    one = layout.image(platform_image("amd64", b"one\n"))
    two = layout.image(platform_image("amd64", b"two\n"))
    sig_one = layout.artifact(one, SIGNATURE_TYPE, b"1", "application/json")
    sig_two = layout.artifact(two, SIGNATURE_TYPE, b"2", "application/json")
    layout.add(one, "pick/app:1")
    layout.add(two, "pick/app:2")
    layout.add(sig_one)
    layout.add(sig_two)
    root = tmp_path / "tree"
    [result] = _publish(root, [str(layout.write_dir(tmp_path / "l"))], ref="pick/app:2")
    assert str(result) == f"pick/app:2@{two['digest']}"
    assert list(_record(root, "pick/app").referrers) == [two["digest"]]


def test_platform_on_a_single_image_must_match(tmp_path: Path, single) -> None:  # type: ignore[no-untyped-def]
    layout, manifest = single
    path = layout.write_dir(tmp_path / "l")
    with pytest.raises(SourceError) as info:
        _publish(tmp_path / "tree", [str(path)], platforms=("linux/arm64",))
    assert "is a single-platform image for linux/amd64, not linux/arm64" in str(
        info.value
    )
    assert not (tmp_path / "tree").exists()
    [result] = _publish(tmp_path / "tree", [str(path)], platforms=("linux/amd64",))
    assert str(result.digest) == manifest["digest"]


def test_unnamed_images_and_one_tag_are_refused(tmp_path: Path) -> None:
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"a\n"))
    arm = layout.image(platform_image("arm64", b"b\n"))
    layout.add(amd)
    layout.add(arm)
    path = layout.write_dir(tmp_path / "l")
    with pytest.raises(SourceError, match="holds 2 images, and --tag names one") as e:
        _publish(tmp_path / "tree", [str(path)], ["app:1"])
    assert e.value.hint is not None
    assert f"{amd['digest']} (linux/amd64); {arm['digest']} (linux/arm64)" in (
        e.value.hint
    )
    assert "--ref" in e.value.hint and "index" in e.value.hint
    assert not (tmp_path / "tree").exists()
    # The hint works: --ref picks an image by digest.
    [result] = _publish(tmp_path / "tree", [str(path)], ["app:1"], ref=arm["digest"])
    assert str(result) == f"app:1@{arm['digest']}"


def test_docker_25_tar_with_a_multi_platform_index(tmp_path: Path) -> None:
    # Docker 25+ with the containerd image store writes manifest.json (one
    # platform) beside an index.json naming the multi-platform index.
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"a\n"))
    arm = layout.image(platform_image("arm64", b"b\n"))
    index = layout.index([amd, arm])
    layout.entries.append(
        {
            **index,
            "annotations": {
                "io.containerd.image.name": "docker.io/library/app:1",
                "org.opencontainers.image.ref.name": "1",
            },
        }
    )
    amd_doc = json.loads(layout.blobs[amd["digest"]])
    manifest_json = [
        {
            "Config": "blobs/sha256/" + amd_doc["config"]["digest"][7:],
            "RepoTags": ["app:1"],
            "Layers": ["blobs/sha256/" + d["digest"][7:] for d in amd_doc["layers"]],
        }
    ]
    files = layout.files()
    files["manifest.json"] = json.dumps(manifest_json).encode()
    tar = _write_tar(tmp_path / "d25.tar", files)

    [result] = _publish(tmp_path / "tree", [str(tar)])
    assert str(result) == f"app:1@{index['digest']}"
    record = _record(tmp_path / "tree", "app")
    assert record.platforms(index["digest"]) == ["linux/amd64", "linux/arm64"]

    # Its blobs of the other platforms missing: refused, naming them.
    for name in [n for n in files if amd["digest"][7:] not in n]:
        if arm["digest"][7:] in name:
            del files[name]
    partial = _write_tar(tmp_path / "partial.tar", files)
    with pytest.raises(SourceError, match="for platforms linux/arm64"):
        _publish(tmp_path / "tree2", [str(partial)])


def _write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_inspect_shows_the_platforms_of_an_index(tmp_path: Path) -> None:
    layout = Layout()
    amd = layout.image(platform_image("amd64", b"a\n"))
    arm = layout.image(platform_image("arm64", b"b\n"))
    attestation = layout.attestation(amd)
    index = layout.index([amd, arm, attestation])
    layout.add(index, "multi/app:2")
    root = str(tmp_path / "tree")
    path = str(layout.write_dir(tmp_path / "l"))
    code, _, err = _cli("publish", "--root", root, path)
    assert code == 0, err

    code, out, err = _cli("inspect", "--root", root, "multi/app:2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:4] == [
        "Name:       multi/app",
        f"Digest:     {index['digest']}",
        f"Media type: {mediatypes.OCI_INDEX}",
        "Platforms:",
    ]
    assert lines[4].split() == ["PLATFORM", "DIGEST", "SIZE"]
    rows = [line.split()[:2] for line in lines[5:]]
    assert rows == [
        ["linux/amd64", amd["digest"]],
        ["linux/arm64", arm["digest"]],
        ["(attestation)", attestation["digest"]],
    ]

    code, out, err = _cli("inspect", "--root", root, "multi/app:2", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["digest"] == index["digest"] and doc["mediaType"] == mediatypes.OCI_INDEX
    assert doc["platforms"] == ["linux/amd64", "linux/arm64"]
    assert [m["digest"] for m in doc["manifest"]["manifests"]] == [
        amd["digest"],
        arm["digest"],
        attestation["digest"],
    ]
    assert doc["config"] is None and doc["referrers"] == []


def test_input_ref_may_hold_colons(tmp_path: Path) -> None:
    layout = Layout()
    one = layout.image(platform_image("amd64", b"one\n"))
    two = layout.image(platform_image("amd64", b"two\n"))
    layout.add(one, "docker.io/team/app:1.0")
    layout.add(two, "docker.io/team/app:2.0")
    path = layout.write_tar(tmp_path / "l.tar")
    [result] = _publish(tmp_path / "tree", [f"{path}:docker.io/team/app:2.0"])
    assert str(result) == f"team/app:2.0@{two['digest']}"
