"""A tree in a real S3 HTTP endpoint (moto's server), behind nginx as the CDN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from staticreg import api

from .conftest import HELLO
from harness import NginxFactory, daemons, images

pytestmark = pytest.mark.e2e

BUCKET = "registry"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer(daemons.Daemon):
    binary = "moto_server"

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.port = daemons.free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.spawn(
            [
                sys.executable,
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ]
        )
        self.wait_ready(lambda: daemons.port_open(self.port), "listening")

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        # Anonymous reads, as a CDN's origin access or a public bucket would give.
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{BUCKET}/*",
                }
            ],
        }
        client.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
        yield server


def staticreg(
    moto: MotoServer,
    *args: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **CREDENTIALS, "STATICREG_ENDPOINT_URL": moto.url}
    result = subprocess.run(
        [sys.executable, "-m", "staticreg", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert not check or result.returncode == 0, result.stderr
    return result


PROXY = """
worker_processes 1;
pid nginx.pid;
error_log error.log;
events { worker_connections 64; }
http {
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    proxy_cache_path cache levels=1:2 keys_zone=registry:10m;
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass %(origin)s/%(bucket)s/%(prefix)s/;
            proxy_cache registry;
            proxy_cache_valid 200 206 1m;
            proxy_intercept_errors on;
            error_page 403 404 = @missing;
        }
        # What the CDN's custom error response does for a missing key.
        location @missing {
            default_type application/json;
            return 404 '%(missing)s';
        }
    }
}
"""


@pytest.fixture(scope="module")
def bucket_tree(
    moto: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    work = tmp_path_factory.mktemp("s3tree")
    hello = images.write_docker_save(work / "hello.tar", [images.hello_image()])
    out = staticreg(
        moto,
        "publish",
        "--root",
        f"s3://{BUCKET}/mirror",
        "--blob-copies",
        str(hello.path),
        "--tag",
        "s3/hello:1",
    )
    ref, _, found = out.stdout.strip().partition("@")
    return {ref: found}


@pytest.fixture(scope="module")
def proxy(
    moto: MotoServer,
    bucket_tree: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.Nginx]:
    prefix = tmp_path_factory.mktemp("proxy")
    conf = prefix / "nginx.conf"
    conf.write_text(
        PROXY
        % {
            "port": daemons.free_port(),
            "origin": moto.url,
            "bucket": BUCKET,
            "prefix": "mirror",
            "missing": api.error_body("MANIFEST_UNKNOWN").decode(),
        }
    )
    factory = NginxFactory()
    try:
        yield factory(conf, prefix)
    finally:
        factory.close()


def test_objects_and_headers_through_the_proxy(
    proxy: daemons.Nginx, bucket_tree: dict[str, str]
) -> None:
    found = bucket_tree["s3/hello:1"]
    status, headers, _ = daemons.http_get(f"{proxy.url}/v2/")
    assert status == 200
    for path in ("/v2/s3/hello/manifests/1", f"/v2/s3/hello/manifests/{found}"):
        status, headers, body = daemons.http_get(proxy.url + path, method="HEAD")
        assert status == 200, path
        assert headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
        assert int(headers["Content-Length"]) > 0
    status, _, body = daemons.http_get(f"{proxy.url}/v2/s3/hello/tags/list")
    assert json.loads(body) == {"name": "s3/hello", "tags": ["1"]}
    status, _, body = daemons.http_get(f"{proxy.url}/v2/s3/hello/referrers/{found}")
    assert status == 200 and json.loads(body)["manifests"] == []


def test_real_clients_pull_through_the_proxy(
    proxy: daemons.Nginx,
    bucket_tree: dict[str, str],
    skopeo: daemons.Skopeo,
    containerd: daemons.Containerd,
    dockerd: daemons.Dockerd,
) -> None:
    found = bucket_tree["s3/hello:1"]
    ref = f"{proxy.host}/s3/hello:1"
    assert skopeo.manifest_digest(f"docker://{ref}") == found
    containerd.new_namespace()
    containerd.pull(ref)
    assert containerd.image_digest(ref) == found
    assert containerd.run(ref).strip() == HELLO
    dockerd.reset()
    dockerd.pull(ref)
    assert dockerd.image_digest(ref) == found
    assert dockerd.run(ref).strip() == HELLO
    missing = dockerd.pull(f"{proxy.host}/s3/hello:nope", check=False)
    assert "manifest unknown" in daemons.text(missing) + missing.stderr.decode()


def _visible_tags_are_whole(client: Any, prefix: str) -> int:
    """Every tag a reader can see names a manifest whose blobs all exist."""
    keys = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix + "/"
    ):
        for item in page.get("Contents", []):
            keys[item["Key"][len(prefix) + 1 :]] = item["Size"]
    tags = 0
    for key in keys:
        parts = key.split("/manifests/")
        if not key.startswith("v2/") or len(parts) != 2 or ":" in parts[1]:
            continue
        name = parts[0][3:]
        raw = client.get_object(Bucket=BUCKET, Key=f"{prefix}/{key}")["Body"].read()
        import hashlib

        found = "sha256:" + hashlib.sha256(raw).hexdigest()
        assert f"v2/{name}/manifests/{found}" in keys, key
        manifest = json.loads(raw)
        for desc in [manifest["config"], *manifest["layers"]]:
            assert keys.get(f"v2/{name}/blobs/{desc['digest']}") == desc["size"], key
        tags += 1
    return tags


def _wait_for_lock(client: Any, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            client.head_object(Bucket=BUCKET, Key="killed/.staticreg/lock")
            return
        except client.exceptions.ClientError:
            time.sleep(0.01)
    pytest.fail("the publish never took the lock")


def test_publish_killed_mid_upload_shows_no_broken_tag(
    moto: MotoServer, tmp_path: Path
) -> None:
    noise = images.build_layer({"/noise": os.urandom(40 << 20)})
    spec = images.ImageSpec(
        layers=(images.build_rootfs_layer(), noise), repo_tags=("kill/app:1",)
    )
    tar = images.write_docker_save(tmp_path / "big.tar", [spec]).path
    small = images.write_docker_save(tmp_path / "s.tar", [images.hello_image()]).path
    root = f"s3://{BUCKET}/killed"
    staticreg(moto, "publish", "--root", root, "--blob-copies", str(small))
    client = moto.client()
    env = {**os.environ, **CREDENTIALS, "STATICREG_ENDPOINT_URL": moto.url}
    # Kill while the lock is held, that is while objects go up, at several points.
    for delay in (0.0, 0.05, 0.15, 0.3):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "staticreg",
                "publish",
                "--root",
                root,
                str(tar),
                "--compression",
                "none",
                "--tag",
                f"kill/app:{int(delay * 100)}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _wait_for_lock(client, proc)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert _visible_tags_are_whole(client, "killed") >= 1
    # The next publish finds the dead writer's lock, removes it, and completes.
    done = staticreg(moto, "publish", "--root", root, str(tar), "--compression", "none")
    assert _visible_tags_are_whole(client, "killed") >= 2
    assert "removing the lock of a publish that died" in done.stderr


@pytest.mark.parametrize("blob_copies", [False, True])
def test_round_trip_through_the_bucket(
    blob_copies: bool,
    moto: MotoServer,
    tmp_path: Path,
    nginx_factory: NginxFactory,
    skopeo: daemons.Skopeo,
    containerd: daemons.Containerd,
) -> None:
    """Directory to bucket to a new directory: verify passes, clients pull."""
    origin, copy = tmp_path / "origin", tmp_path / "copy"
    hello = images.write_docker_save(tmp_path / "h.tar", [images.hello_image()])
    published = staticreg(moto, "publish", "--root", str(origin), str(hello.path))
    [line] = published.stdout.splitlines()
    bucket = f"s3://{BUCKET}/trip-{int(blob_copies)}"
    flags = ["--blob-copies"] if blob_copies else []
    staticreg(moto, "sync", str(origin), bucket, *flags)
    staticreg(moto, "verify", "--root", bucket)
    staticreg(moto, "sync", bucket, str(copy))
    staticreg(moto, "verify", "--root", str(copy))

    daemons.allow_traversal(copy)
    conf = tmp_path / "nginx" / "nginx.conf"
    conf.parent.mkdir()
    staticreg(
        moto,
        "nginx",
        "--root",
        str(copy),
        "--listen",
        f"127.0.0.1:{daemons.free_port()}",
        "-o",
        str(conf),
    )
    server = nginx_factory(conf, conf.parent)
    ref = f"{server.host}/test/img:v1"
    assert skopeo.manifest_digest(f"docker://{ref}") == line.split("@")[1]
    containerd.new_namespace()
    containerd.pull(ref)
    assert containerd.run(ref).strip() == HELLO
