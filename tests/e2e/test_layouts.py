"""OCI layouts end to end: platform selection, index digests, referrers."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from .conftest import Serve, Tree
from harness import daemons, images
from harness.layouts import SBOM_TYPE, SIGNATURE_TYPE, Layout, platform_image

pytestmark = pytest.mark.e2e

INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def layouts(tree: Tree, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[type-arg]
    work = tmp_path_factory.mktemp("layouts")
    multi = Layout()
    amd = multi.image(platform_image("amd64", b"hello amd64\n"))
    arm = multi.image(platform_image("arm64", b"hello arm64\n"))
    index = multi.index([amd, arm])
    multi.add(index, "lay/multi:1")
    tree.publish(multi.write_tar(work / "multi.tar"))

    signed = Layout()
    image = signed.image(images.hello_image(()))
    signature = signed.artifact(
        image, SIGNATURE_TYPE, b'{"sig": 1}', "application/json"
    )
    sbom = signed.artifact(image, SBOM_TYPE, b'{"spdx": 2}', "application/json")
    signed.add(image, "lay/signed:1")
    signed.add(signature)
    signed.add(sbom)
    tree.publish(signed.write_dir(work / "signed"))
    # The same image and referrers again, for test_attach to add to: the tests
    # of lay/signed then see exactly its two referrers, whatever the order.
    tree.publish(work / "signed", "--tag", "lay/attached:1")

    listed = Layout()
    d_amd = listed.image(platform_image("amd64", b"docker amd64\n"), docker=True)
    d_arm = listed.image(platform_image("arm64", b"docker arm64\n"), docker=True)
    d_index = listed.index([d_amd, d_arm], docker=True)
    listed.add(d_index, "lay/dlist:1")
    tree.publish(listed.write_dir(work / "dlist"))

    buildx = Layout()
    b_amd = buildx.image(platform_image("amd64", b"buildx amd64\n"))
    b_arm = buildx.image(platform_image("arm64", b"buildx arm64\n"))
    attested = [b_amd, b_arm, buildx.attestation(b_amd), buildx.attestation(b_arm)]
    b_index = buildx.index(attested)
    buildx.add(b_index, "lay/buildx:1")
    tree.publish(buildx.write_tar(work / "buildx.tar"))
    return {
        "buildx": b_index,
        "buildx_amd": b_amd,
        "buildx_arm": b_arm,
        "index": index,
        "amd": amd,
        "arm": arm,
        "image": image,
        "signature": signature,
        "sbom": sbom,
        "dlist": d_index,
    }


def test_published_digests_are_the_layout_digests(tree: Tree, layouts) -> None:  # type: ignore[no-untyped-def]
    assert tree.digests["lay/multi:1"] == layouts["index"]["digest"]
    assert tree.digests["lay/signed:1"] == layouts["image"]["digest"]
    assert tree.digests["lay/dlist:1"] == layouts["dlist"]["digest"]
    assert tree.digests["lay/buildx:1"] == layouts["buildx"]["digest"]


def test_containerd_pulls_a_buildx_index_with_attestations(
    layouts,  # type: ignore[no-untyped-def]
    nginx_session: daemons.Nginx,
    containerd: daemons.Containerd,
) -> None:
    ref = f"{nginx_session.host}/lay/buildx:1"
    containerd.new_namespace()
    containerd.pull(ref)
    assert containerd.run(ref).strip() == "buildx amd64"

    # arm64 cannot run here: check what was pulled, the arm64 image and only it.
    containerd.new_namespace()
    containerd.pull(ref, platform="linux/arm64")
    assert containerd.image_digest(ref) == layouts["buildx"]["digest"]
    got = containerd.ctr("content", "get", layouts["buildx_arm"]["digest"])
    config = containerd.ctr(
        "content", "get", json.loads(got.stdout)["config"]["digest"]
    )
    assert json.loads(config.stdout)["architecture"] == "arm64"
    absent = containerd.ctr(
        "content", "get", layouts["buildx_amd"]["digest"], check=False
    )
    assert absent.returncode != 0
    containerd.new_namespace()


def test_containerd_picks_the_platform(
    layouts,
    nginx_session: daemons.Nginx,  # type: ignore[no-untyped-def]
    containerd: daemons.Containerd,
) -> None:
    ref = f"{nginx_session.host}/lay/multi:1"
    containerd.new_namespace()
    containerd.pull(ref)
    assert containerd.run(ref).strip() == "hello amd64"
    assert containerd.ctr("content", "get", layouts["amd"]["digest"]).returncode == 0

    containerd.new_namespace()
    containerd.pull(ref, platform="linux/arm64")
    got = containerd.ctr("content", "get", layouts["arm"]["digest"])
    assert json.loads(got.stdout)["config"]
    absent = containerd.ctr("content", "get", layouts["amd"]["digest"], check=False)
    assert absent.returncode != 0
    containerd.new_namespace()


@pytest.mark.parametrize("name", ["lay/multi:1", "lay/dlist:1", "lay/buildx:1"])
def test_docker_picks_the_platform(
    name: str, nginx_session: daemons.Nginx, dockerd: daemons.Dockerd
) -> None:
    dockerd.reset()
    ref = f"{nginx_session.host}/{name}"
    dockerd.docker("pull", "--platform", "linux/arm64", ref)
    assert dockerd.inspect(ref)["Architecture"] == "arm64"
    dockerd.reset()
    dockerd.pull(ref)
    assert dockerd.inspect(ref)["Architecture"] == "amd64"
    assert dockerd.run(ref).strip().endswith("amd64")


@pytest.mark.parametrize(("name", "key"), [("multi", "index"), ("buildx", "buildx")])
def test_skopeo_copy_all_keeps_the_index_digest(
    name: str,
    key: str,
    layouts,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    nginx_session: daemons.Nginx,
    skopeo: daemons.Skopeo,
) -> None:
    ref = f"docker://{nginx_session.host}/lay/{name}:1"
    skopeo.copy(ref, f"oci:{tmp_path / 'out'}:all", "--all", "--preserve-digests")
    index = json.loads((tmp_path / "out/index.json").read_text())
    assert index["manifests"][0]["digest"] == layouts[key]["digest"]
    assert len(list((tmp_path / "out/blobs/sha256").iterdir())) >= 7


def _referrers(
    base: str, digest: str, query: str = "", name: str = "lay/signed"
) -> tuple[int, dict, dict]:  # type: ignore[type-arg]
    status, headers, body = daemons.http_get(
        f"{base}/v2/{name}/referrers/{digest}{query}"
    )
    return status, headers, json.loads(body) if status == 200 else {}


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_referrers_api(
    server_kind: str,
    layouts,
    nginx_session: daemons.Nginx,  # type: ignore[no-untyped-def]
    serve: Serve,
) -> None:
    base = nginx_session.url if server_kind == "nginx" else serve.url
    subject = layouts["image"]["digest"]
    status, headers, doc = _referrers(base, subject)
    assert status == 200 and headers["Content-Type"] == INDEX
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == INDEX
    listed = {d["digest"]: d for d in doc["manifests"]}
    assert set(listed) == {layouts["signature"]["digest"], layouts["sbom"]["digest"]}
    for key in ("signature", "sbom"):
        entry = listed[layouts[key]["digest"]]
        assert entry["artifactType"] == layouts[key]["artifactType"]
        assert entry["size"] == layouts[key]["size"]
        assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert "OCI-Filters-Applied" not in headers

    status, headers, doc = _referrers(
        base, subject, f"?artifactType={quote(SBOM_TYPE, safe='')}"
    )
    assert status == 200 and headers["Content-Type"] == INDEX
    assert headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in doc["manifests"]] == [layouts["sbom"]["digest"]]

    # Unknown, and known to lay/signed (the signature is a manifest there) but
    # without referrers: both an empty index.
    for unknown in ("sha256:" + "1" * 64, layouts["signature"]["digest"]):
        status, headers, doc = _referrers(base, unknown)
        assert status == 200 and headers["Content-Type"] == INDEX
        assert doc["manifests"] == []
    assert _referrers(base, "sha256:nothex")[0] == 400


def test_fallback_tag_is_listed_and_pullable(
    layouts,
    nginx_session: daemons.Nginx,  # type: ignore[no-untyped-def]
    skopeo: daemons.Skopeo,
) -> None:
    subject = layouts["image"]["digest"]
    tag = subject.replace(":", "-")
    repo = f"docker://{nginx_session.host}/lay/signed"
    assert tag in skopeo.list_tags(repo)
    raw = json.loads(skopeo.inspect(f"{repo}:{tag}", raw=True))
    assert raw["mediaType"] == INDEX
    assert {d["digest"] for d in raw["manifests"]} == {
        layouts["signature"]["digest"],
        layouts["sbom"]["digest"],
    }
    signature = json.loads(
        skopeo.inspect(f"{repo}@{layouts['signature']['digest']}", raw=True)
    )
    assert signature["subject"]["digest"] == subject


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_attach_publishes_a_referrer(
    server_kind: str,
    tree: Tree,
    layouts,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    nginx_session: daemons.Nginx,
    serve: Serve,
) -> None:
    import subprocess
    import sys

    base = nginx_session.url if server_kind == "nginx" else serve.url
    report = tmp_path / "scan.json"
    report.write_text(f'{{"vulnerabilities": [], "server": "{server_kind}"}}')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "staticreg",
            "attach",
            "--root",
            str(tree.root),
            "--subject",
            "lay/attached:1",
            "--artifact-type",
            "application/vnd.example.scan+json",
            "--media-type",
            "application/json",
            str(report),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    added = result.stdout.strip().split("@")[1]
    subject = layouts["image"]["digest"]
    before = {layouts["signature"]["digest"], layouts["sbom"]["digest"]}

    status, _, doc = _referrers(base, subject, name="lay/attached")
    assert status == 200
    listed = {d["digest"] for d in doc["manifests"]}
    assert added in listed and before < listed
    # The fallback tag lists it too, in step with the API.
    status, headers, raw = daemons.http_get(
        f"{base}/v2/lay/attached/manifests/{subject.replace(':', '-')}",
        headers={"Accept": INDEX},
    )
    assert status == 200 and headers["Content-Type"] == INDEX
    assert json.loads(raw) == doc

    status, _, blob = daemons.http_get(
        f"{base}/v2/lay/attached/manifests/{added}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert status == 200
    layer = json.loads(blob)["layers"][0]
    status, _, data = daemons.http_get(
        f"{base}/v2/lay/attached/blobs/{layer['digest']}"
    )
    assert status == 200 and data == report.read_bytes()
    # lay/signed, the same image in another repository, is left as it was.
    _, _, doc = _referrers(base, subject)
    assert {d["digest"] for d in doc["manifests"]} == before
