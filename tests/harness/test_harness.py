"""Self-test of the harness, without staticreg: the images are valid and every real
client pulls them from the CNCF reference registry and reports the same digest."""

from __future__ import annotations

import json
import socket
import tarfile
from pathlib import Path

import pytest

from . import NginxFactory, daemons, images

# Registers this package's fixtures; a tests/conftest.py defining fixtures of the
# same names overrides them, so the daemons are never started twice.
pytest_plugins = [__package__ or "harness"]

REPO = "test/img"


@pytest.fixture(scope="module")
def classic(tmp_path_factory: pytest.TempPathFactory) -> images.SavedTarball:
    """Three images: two tags on hello, busybox sharing its base, one untagged."""
    path = tmp_path_factory.mktemp("tarballs") / "classic.tar"
    specs = [
        images.hello_image((f"{REPO}:v1", f"{REPO}:latest")),
        images.busybox_image(),
        images.hello_image((), text=b"untagged\n"),
    ]
    return images.write_docker_save(path, specs)


@pytest.fixture(scope="module")
def docker25(tmp_path_factory: pytest.TempPathFactory) -> images.SavedTarball:
    path = tmp_path_factory.mktemp("tarballs") / "docker25.tar"
    specs = [images.hello_image(("test/d25:v1",), text=b"hello docker25\n")]
    return images.write_docker25_save(path, specs)


@pytest.fixture(scope="module")
def pushed(
    classic: images.SavedTarball,
    skopeo: daemons.Skopeo,
    distribution_registry: daemons.DistributionRegistry,
) -> tuple[str, str]:
    """Push hello to the reference registry; return its reference and digest."""
    ref = f"{distribution_registry.host}/{REPO}:v1"
    skopeo.copy(f"docker-archive:{classic.path}:{REPO}:v1", f"docker://{ref}")
    return ref, skopeo.manifest_digest(f"docker://{ref}")


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {info.name: info for info in tar.getmembers()}


def _read(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        extracted = tar.extractfile(name)
        assert extracted is not None, name
        return extracted.read()


# --- images, no daemons -----------------------------------------------------------


def test_images_write_identical_bytes_twice(tmp_path: Path) -> None:
    specs = [images.hello_image(), images.busybox_image()]
    first = images.write_docker_save(tmp_path / "a.tar", specs)
    second = images.write_docker_save(tmp_path / "b.tar", specs)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.images == second.images


def test_classic_tarball_digests_match_members(classic: images.SavedTarball) -> None:
    manifest = images.read_manifest(classic.path)
    assert [entry["RepoTags"] for entry in manifest] == [
        [f"{REPO}:v1", f"{REPO}:latest"],
        ["test/busybox:latest"],
        None,
    ]
    for entry, saved in zip(manifest, classic.images, strict=True):
        config = _read(classic.path, entry["Config"])
        assert images.sha256_digest(config) == saved.config_digest
        assert json.loads(config)["rootfs"]["diff_ids"] == list(saved.diff_ids)
        layers = [_read(classic.path, name) for name in entry["Layers"]]
        assert [images.sha256_digest(data) for data in layers] == list(saved.diff_ids)


def test_classic_tarball_symlinks_a_layer_shared_at_another_position(
    classic: images.SavedTarball,
) -> None:
    busybox_layer = classic.images[1].layer_paths[0]
    info = _members(classic.path)[busybox_layer]
    assert info.issym()
    assert info.linkname == f"../{classic.images[0].layer_paths[0]}"


def test_docker25_tarball_is_an_oci_layout(docker25: images.SavedTarball) -> None:
    saved = docker25.images[0]
    index = json.loads(_read(docker25.path, "index.json"))
    entry = index["manifests"][0]
    assert entry["digest"] == saved.manifest_digest
    assert entry["annotations"] == {
        "io.containerd.image.name": "docker.io/test/d25:v1",
        "org.opencontainers.image.ref.name": "v1",
    }
    digest = saved.manifest_digest or ""
    manifest = json.loads(_read(docker25.path, f"blobs/sha256/{digest[7:]}"))
    assert [layer["digest"] for layer in manifest["layers"]] == list(saved.diff_ids)
    assert images.read_manifest(docker25.path)[0]["Layers"] == [
        f"blobs/sha256/{diff_id[7:]}" for diff_id in saved.diff_ids
    ]


def test_hostile_variants_are_broken_as_named(
    classic: images.SavedTarball, tmp_path: Path
) -> None:
    src = classic.path
    target = images.target_layer_member(src)

    cut = images.truncated(src, tmp_path / "truncated.tar")
    with pytest.raises(tarfile.ReadError), tarfile.open(cut) as tar:
        tar.getmembers()
    assert "../evil" in _members(images.with_dotdot_member(src, tmp_path / "d.tar"))
    assert "/etc/evil" in _members(images.with_absolute_member(src, tmp_path / "a.tar"))

    corrupt = images.with_corrupt_layer(src, tmp_path / "corrupt.tar")
    digest = images.sha256_digest(_read(corrupt, target))
    assert digest not in classic.images[0].diff_ids

    missing = images.with_missing_layer(src, tmp_path / "missing.tar")
    assert classic.images[0].layer_paths[-1] not in _members(missing)
    assert not tarfile.is_tarfile(images.not_a_tar(tmp_path / "not.tar"))


def test_missing_binary_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda *args, **kwargs: None)
    with pytest.raises(daemons.HarnessError, match="apt-get install docker.io"):
        daemons.require("dockerd")


# --- real daemons -----------------------------------------------------------------


@pytest.mark.e2e
def test_failed_start_names_binary_and_shows_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((daemons.LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        registry = daemons.DistributionRegistry(tmp_path, port=port)
        with pytest.raises(daemons.HarnessError) as failure:
            registry.__enter__()
    assert "docker-registry: exited" in str(failure.value)
    assert "address already in use" in str(failure.value)


@pytest.mark.e2e
def test_registry_serves_what_skopeo_pushed(
    pushed: tuple[str, str],
    skopeo: daemons.Skopeo,
    distribution_registry: daemons.DistributionRegistry,
) -> None:
    ref, digest = pushed
    assert skopeo.inspect_json(f"docker://{ref}")["Digest"] == digest
    assert skopeo.list_tags(f"docker://{distribution_registry.host}/{REPO}") == ["v1"]
    url = f"{distribution_registry.url}/v2/{REPO}/manifests/v1"
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    status, headers, _ = daemons.http_get(url, accept)
    assert (status, headers["Docker-Content-Digest"]) == (200, digest)


@pytest.mark.e2e
def test_ctr_pulls_and_runs(
    pushed: tuple[str, str], containerd: daemons.Containerd
) -> None:
    ref, digest = pushed
    containerd.pull(ref)
    assert containerd.image_digest(ref) == digest
    assert containerd.run(ref, "/bin/echo", "hello") == "hello\n"
    assert containerd.run(ref) == images.HELLO_TEXT.decode()


@pytest.mark.e2e
def test_docker_pulls_and_runs(
    pushed: tuple[str, str], dockerd: daemons.Dockerd
) -> None:
    ref, digest = pushed
    dockerd.pull(ref)
    assert dockerd.image_digest(ref) == digest
    assert dockerd.run(ref, "/bin/echo", "hello") == "hello\n"


@pytest.mark.e2e
def test_reset_clients_fetch_every_layer_again(
    pushed: tuple[str, str],
    containerd: daemons.Containerd,
    dockerd: daemons.Dockerd,
) -> None:
    ref, _ = pushed
    dockerd.pull(ref)
    dockerd.reset()
    assert "Already exists" not in daemons.text(dockerd.pull(ref))
    containerd.pull(ref)
    containerd.new_namespace()
    assert daemons.text(containerd.ctr("images", "ls", "--quiet")) == ""


@pytest.mark.e2e
def test_podman_pulls(pushed: tuple[str, str], podman: daemons.Podman) -> None:
    ref, digest = pushed
    podman.reset()  # a port reused by an earlier server leaves other digests
    podman.pull(ref)
    assert podman.image_digest(ref) == digest


@pytest.mark.e2e
def test_skopeo_copies_manifest_bytes_unchanged(
    pushed: tuple[str, str], skopeo: daemons.Skopeo, tmp_path: Path
) -> None:
    # dir: keeps the manifest as served; skopeo 1.9 cannot read back an oci:
    # layout holding a Docker manifest ("no descriptor found for reference").
    ref, digest = pushed
    skopeo.copy(f"docker://{ref}", f"dir:{tmp_path / 'copy'}")
    manifest = (tmp_path / "copy" / "manifest.json").read_bytes()
    assert images.sha256_digest(manifest) == digest


@pytest.mark.e2e
def test_docker_loads_classic_tarball(
    classic: images.SavedTarball, dockerd: daemons.Dockerd
) -> None:
    output = dockerd.load(classic.path)
    assert f"Loaded image: {REPO}:v1" in output
    assert f"Loaded image ID: {classic.images[2].image_id}" in output
    assert dockerd.inspect(f"{REPO}:latest")["Id"] == classic.images[0].image_id
    assert dockerd.run(f"{REPO}:v1") == images.HELLO_TEXT.decode()
    assert dockerd.run("test/busybox:latest") == "hello\n"


@pytest.mark.e2e
def test_docker_loads_docker25_tarball(
    docker25: images.SavedTarball, dockerd: daemons.Dockerd
) -> None:
    # Docker 20.10 reads only manifest.json, whose paths point into blobs/sha256.
    assert "Loaded image: test/d25:v1" in dockerd.load(docker25.path)
    assert dockerd.inspect("test/d25:v1")["Id"] == docker25.images[0].image_id
    assert dockerd.run("test/d25:v1") == "hello docker25\n"


@pytest.mark.e2e
def test_docker_save_writes_a_real_classic_tarball(
    dockerd: daemons.Dockerd, tmp_path: Path
) -> None:
    rootfs = images.write_rootfs_tar(tmp_path / "rootfs.tar")
    image_id = dockerd.import_rootfs(rootfs, "test/imported:v1", images.DEFAULT_CMD)
    dockerd.docker("tag", "test/imported:v1", "test/imported:v2")
    saved = dockerd.save(tmp_path / "saved.tar", "test/imported:v1", "test/imported:v2")

    (entry,) = images.read_manifest(saved)
    assert entry["Config"] == f"{image_id[7:]}.json"
    assert entry["RepoTags"] == ["test/imported:v1", "test/imported:v2"]
    layer = _read(saved, entry["Layers"][0])
    config = json.loads(_read(saved, entry["Config"]))
    assert config["rootfs"]["diff_ids"] == [images.sha256_digest(layer)]
    assert dockerd.run("test/imported:v2") == images.HELLO_TEXT.decode()


# --- nginx ------------------------------------------------------------------------

_NGINX_CONF = """\
worker_processes 1;
pid nginx.pid;
error_log logs/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


def _nginx_site(tmp_path: Path) -> tuple[Path, Path]:
    prefix = tmp_path / "prefix"
    for folder in ("logs", "tmp", "www"):
        (prefix / folder).mkdir(parents=True)
    (prefix / "www" / "hello.txt").write_bytes(b"hi\n")
    (prefix / "www" / "hello.txt").chmod(0o644)
    conf = prefix / "nginx.conf"
    port = daemons.free_port()
    conf.write_text(_NGINX_CONF.format(port=port, root=prefix / "www"))
    return conf, prefix


@pytest.mark.e2e
def test_nginx_serves_checks_and_stops(
    nginx_factory: NginxFactory, tmp_path: Path
) -> None:
    conf, prefix = _nginx_site(tmp_path)
    checked = daemons.Nginx.test_config(conf, prefix)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr

    server = nginx_factory(conf, prefix)
    status, _, body = daemons.http_get(f"{server.url}/hello.txt")
    assert (status, body) == (200, b"hi\n")
    pid = server.pid
    assert pid is not None

    nginx_factory.close()
    assert not daemons.pid_alive(pid)
    assert not daemons.port_open(server.port)


@pytest.mark.e2e
def test_nginx_is_stopped_even_if_its_pid_file_is_elsewhere(tmp_path: Path) -> None:
    conf, prefix = _nginx_site(tmp_path)
    server = daemons.Nginx(conf, prefix, pid_path=prefix / "elsewhere.pid")
    server.start_timeout = 1.0
    # nginx started (no "exited" error), but its pid file never appeared.
    with pytest.raises(daemons.HarnessError, match="not writing its pid file"):
        server.__enter__()
    running = [a for _, _, a in daemons.processes() if str(conf) in " ".join(a)]
    assert running == []


def test_nginx_without_pid_directive_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\nhttp { server { listen 127.0.0.1:9; } }\n")
    with pytest.raises(daemons.HarnessError, match="no pid directive"):
        daemons.Nginx(conf, tmp_path)
