"""Real clients pull what staticreg published, from real nginx and from serve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import HELLO, Demo, Serve, Tree
from harness import daemons, images

pytestmark = pytest.mark.e2e

PULLABLE_BY_DOCKER = ["auto", "gzip", "none"]  # Docker 20.10 cannot read zstd layers
ALL = ["auto", "gzip", "zstd", "none"]


@pytest.mark.parametrize("kind", ALL)
def test_skopeo_copies_with_the_published_digest(
    kind: str,
    tree: Tree,
    nginx_session: daemons.Nginx,
    skopeo: daemons.Skopeo,
    tmp_path: Path,
) -> None:
    ref = f"docker://{nginx_session.host}/e2e/{kind}:1"
    assert skopeo.manifest_digest(ref) == tree.digests[f"e2e/{kind}:1"]
    skopeo.copy(ref, f"oci:{tmp_path / 'out'}:copy", "--preserve-digests")
    index = json.loads((tmp_path / "out/index.json").read_text())
    assert index["manifests"][0]["digest"] == tree.digests[f"e2e/{kind}:1"]
    assert skopeo.list_tags(f"docker://{nginx_session.host}/e2e/{kind}") == ["1"]


@pytest.mark.parametrize("kind", ALL)
def test_containerd_pulls_and_runs(
    kind: str, tree: Tree, nginx_session: daemons.Nginx, containerd: daemons.Containerd
) -> None:
    ref = f"{nginx_session.host}/e2e/{kind}:1"
    containerd.pull(ref)
    try:
        assert containerd.image_digest(ref) == tree.digests[f"e2e/{kind}:1"]
        assert containerd.run(ref).strip() == HELLO
        assert containerd.run(ref, "/bin/echo", "ran").strip() == "ran"
    finally:
        containerd.remove(ref)


@pytest.mark.parametrize("kind", PULLABLE_BY_DOCKER)
def test_docker_pulls_and_runs(
    kind: str, tree: Tree, nginx_session: daemons.Nginx, dockerd: daemons.Dockerd
) -> None:
    dockerd.reset()
    ref = f"{nginx_session.host}/e2e/{kind}:1"
    dockerd.pull(ref)
    assert dockerd.image_digest(ref) == tree.digests[f"e2e/{kind}:1"]
    assert dockerd.run(ref).strip() == HELLO


@pytest.mark.parametrize("kind", ALL)
def test_podman_pulls(
    kind: str, tree: Tree, nginx_session: daemons.Nginx, podman: daemons.Podman
) -> None:
    podman.reset()
    ref = f"{nginx_session.host}/e2e/{kind}:1"
    podman.pull(ref)
    assert podman.image_digest(ref) == tree.digests[f"e2e/{kind}:1"]


def test_missing_tag_is_manifest_unknown(
    nginx_session: daemons.Nginx,
    dockerd: daemons.Dockerd,
    skopeo: daemons.Skopeo,
    containerd: daemons.Containerd,
) -> None:
    ref = f"{nginx_session.host}/e2e/gzip:nope"
    result = dockerd.pull(ref, check=False)
    assert result.returncode != 0
    assert "manifest unknown" in daemons.text(result) + result.stderr.decode()
    copy = skopeo.copy(f"docker://{ref}", "oci:/nonexistent:x", check=False)
    assert copy.returncode != 0 and b"manifest unknown" in copy.stderr
    pulled = containerd.pull(ref, check=False)
    assert pulled.returncode != 0 and b"not found" in pulled.stderr


def test_push_is_refused_as_read_only(
    nginx_session: daemons.Nginx, skopeo: daemons.Skopeo, tree: Tree
) -> None:
    source = f"docker://{nginx_session.host}/e2e/gzip:1"
    pushed = skopeo.copy(
        source, f"docker://{nginx_session.host}/e2e/pushed:1", check=False
    )
    assert pushed.returncode != 0
    assert b"unsupported: this registry is published with staticreg" in pushed.stderr


def test_publish_while_serving_needs_no_reload(
    tree: Tree, nginx_session: daemons.Nginx, skopeo: daemons.Skopeo, tmp_path: Path
) -> None:
    newer = images.write_docker_save(
        tmp_path / "new.tar", [images.hello_image(text=b"moved tag\n")]
    )
    [line] = tree.publish(newer.path, "--tag", "e2e/moving:1")
    ref = f"docker://{nginx_session.host}/e2e/moving:1"
    assert skopeo.manifest_digest(ref) == line.split("@")[1]
    again = images.write_docker_save(
        tmp_path / "again.tar", [images.hello_image(text=b"moved again\n")]
    )
    [moved] = tree.publish(again.path, "--tag", "e2e/moving:1")
    assert skopeo.manifest_digest(ref) == moved.split("@")[1]


def test_skopeo_and_docker_pull_from_serve(
    tree: Tree, serve: Serve, skopeo: daemons.Skopeo, dockerd: daemons.Dockerd
) -> None:
    ref = f"{serve.host}/e2e/gzip:1"
    assert skopeo.manifest_digest(f"docker://{ref}") == tree.digests["e2e/gzip:1"]
    dockerd.reset()
    dockerd.pull(ref)
    assert dockerd.image_digest(ref) == tree.digests["e2e/gzip:1"]
    assert dockerd.run(ref).strip() == HELLO
    missing = dockerd.pull(f"{serve.host}/e2e/gzip:nope", check=False)
    assert "manifest unknown" in daemons.text(missing) + missing.stderr.decode()


def test_containerd_and_podman_pull_from_serve(
    tree: Tree, serve: Serve, containerd: daemons.Containerd, podman: daemons.Podman
) -> None:
    ref = f"{serve.host}/e2e/zstd:1"
    containerd.pull(ref)
    try:
        assert containerd.image_digest(ref) == tree.digests["e2e/zstd:1"]
        assert containerd.run(ref).strip() == HELLO
    finally:
        containerd.remove(ref)
    podman.reset()
    podman.pull(ref)
    assert podman.image_digest(ref) == tree.digests["e2e/zstd:1"]


def test_real_docker_save_tarball_round_trip(
    tmp_path: Path,
    tree: Tree,
    nginx_session: daemons.Nginx,
    dockerd: daemons.Dockerd,
    containerd: daemons.Containerd,
) -> None:
    """docker import, docker save (Docker 20.10), publish, pull, run."""
    rootfs = images.write_rootfs_tar(tmp_path / "rootfs.tar", b"saved by docker\n")
    dockerd.import_rootfs(rootfs, "local/saved:1", ("/bin/cat", "/hello.txt"))
    dockerd.docker("tag", "local/saved:1", "local/saved:also")
    saved = dockerd.save(tmp_path / "saved.tar", "local/saved:1", "local/saved:also")
    lines = tree.publish(saved)
    assert sorted(line.split("@")[0] for line in lines) == [
        "local/saved:1",
        "local/saved:also",
    ]
    ref = f"{nginx_session.host}/local/saved:1"
    containerd.pull(ref)
    try:
        assert containerd.run(ref).strip() == "saved by docker"
    finally:
        containerd.remove(ref)


def test_docker25_tarball_round_trip(
    tmp_path: Path, tree: Tree, nginx_session: daemons.Nginx, dockerd: daemons.Dockerd
) -> None:
    spec = images.hello_image(("docker.io/library/d25:v1",), text=b"docker 25\n")
    saved = images.write_docker25_save(tmp_path / "d25.tar", [spec])
    [line] = tree.publish(saved.path)
    assert line.startswith("d25:v1@")
    dockerd.reset()
    ref = f"{nginx_session.host}/d25:v1"
    dockerd.pull(ref)
    assert dockerd.run(ref).strip() == "docker 25"


def test_skopeo_and_podman_archives_round_trip(
    tmp_path: Path,
    tree: Tree,
    nginx_session: daemons.Nginx,
    skopeo: daemons.Skopeo,
    podman: daemons.Podman,
    containerd: daemons.Containerd,
) -> None:
    """Archives written by `skopeo copy docker-archive:` and `podman save`, which
    name layers after their diff_id, publish and run like docker's."""
    source = f"{nginx_session.host}/e2e/gzip:1"
    by_skopeo = tmp_path / "skopeo.tar"
    skopeo.copy(f"docker://{source}", f"docker-archive:{by_skopeo}:arch/skopeo:1")
    podman.pull(source)
    by_podman = tmp_path / "podman.tar"
    try:
        podman.podman("tag", source, "localhost/arch/podman:1")
        podman.podman("save", "-o", str(by_podman), "localhost/arch/podman:1")
    finally:
        podman.remove(source, "localhost/arch/podman:1")
    for archive in (by_skopeo, by_podman):
        assert any(
            name.endswith(".tar") and "/" not in name for name in _names(archive)
        )

    assert [line.split("@")[0] for line in tree.publish(by_skopeo)] == ["arch/skopeo:1"]
    # podman records its own 'localhost/' host, which is dropped like any other.
    assert [line.split("@")[0] for line in tree.publish(by_podman)] == ["arch/podman:1"]
    for name in ("arch/skopeo:1", "arch/podman:1"):
        ref = f"{nginx_session.host}/{name}"
        containerd.pull(ref)
        try:
            assert containerd.run(ref).strip() == HELLO
        finally:
            containerd.remove(ref)


def _names(archive: Path) -> list[str]:
    import tarfile

    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_demo_publishes_and_serves_a_runnable_sample(
    tmp_path: Path, skopeo: daemons.Skopeo, containerd: daemons.Containerd
) -> None:
    with Demo(tmp_path / "demo", tmp_path / "registry") as demo:
        ref = f"{demo.host}/sample/hello:latest"
        assert skopeo.list_tags(f"docker://{demo.host}/sample/hello") == ["latest"]
        containerd.pull(ref)
        try:
            assert "staticreg" in containerd.run(ref)
        finally:
            containerd.remove(ref)
