"""A tree in a real S3 HTTP endpoint (moto's server), behind nginx as the CDN."""

from __future__ import annotations

import hashlib
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
from staticreg.store import s3 as s3store

from .conftest import HELLO
from harness import NginxFactory, cloudfront, daemons, images

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


KILLED = "killed"


def _keys(client: Any, prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` (without it), with its size."""
    keys = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix + "/"
    ):
        for item in page.get("Contents", []):
            keys[item["Key"][len(prefix) + 1 :]] = item["Size"]
    return keys


def _visible_tags_are_whole(client: Any, prefix: str) -> int:
    """Every tag a reader can see (``bucket-blob-copies`` layout) names a
    manifest by digest whose blobs are all there, whole; count the tags."""
    keys = _keys(client, prefix)
    tags = 0
    for key in keys:
        parts = key.split("/manifests/")
        if not key.startswith("v2/") or len(parts) != 2 or ":" in parts[1]:
            continue
        name = parts[0][3:]
        raw = client.get_object(Bucket=BUCKET, Key=f"{prefix}/{key}")["Body"].read()
        found = "sha256:" + hashlib.sha256(raw).hexdigest()
        by_digest = f"{prefix}/v2/{name}/manifests/{found}"
        assert client.get_object(Bucket=BUCKET, Key=by_digest)["Body"].read() == raw
        manifest = json.loads(raw)
        for desc in [manifest["config"], *manifest["layers"]]:
            copy = f"v2/{name}/blobs/{desc['digest']}"
            assert keys.get(copy) == desc["size"], (key, copy)
            assert keys.get("blobs/sha256/" + desc["digest"][7:]) == desc["size"]
        tags += 1
    return tags


def _wait_for_lock(client: Any, proc: subprocess.Popen[bytes], prefix: str) -> None:
    """Until ``proc`` holds the tree's lock: the lock object names its pid (a
    killed writer's lock is still there until the next one removes it)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            raw = client.get_object(Bucket=BUCKET, Key=f"{prefix}/.staticreg/lock")
            if json.loads(raw["Body"].read()).get("pid") == proc.pid:
                return
        except client.exceptions.NoSuchKey:
            pass
        time.sleep(0.01)
    pytest.fail(f"the publish never took the lock (exit {proc.poll()})")


def _uploading(client: Any, prefix: str) -> bool:
    answer = client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix + "/")
    return bool(answer.get("Uploads"))


# Where each round kills the publish: when a key it writes first appears (new
# since the round began), or while a multipart upload runs.
KILL_POINTS: dict[str, Any] = {
    "blob": lambda key: key.startswith("blobs/"),
    "manifest": lambda key: key.startswith("v2/kill/app/manifests/sha256:"),
    "tags": lambda key: key.startswith("v2/kill/app/manifests/tags-"),
    "multipart": None,
}
TAGS_PER_IMAGE = 30


def _kill_tarball(work: Path, point: str) -> Path:
    """A new image for each round, so that each of its keys is new; the
    multipart round's layer is over ``s3.MULTIPART_THRESHOLD``."""
    size = (
        (s3store.MULTIPART_THRESHOLD + (8 << 20)) if point == "multipart" else 4 << 20
    )
    noise = images.build_layer({f"/{point}.bin": os.urandom(size)})
    count = TAGS_PER_IMAGE if point == "tags" else 1
    tags = tuple(f"kill/app:{point}-{i}" for i in range(count))
    spec = images.ImageSpec(layers=(images.build_rootfs_layer(), noise), repo_tags=tags)
    return images.write_docker_save(work / f"{point}.tar", [spec]).path


def _kill_at(
    client: Any, proc: subprocess.Popen[bytes], point: str, before: set[str]
) -> None:
    watch = KILL_POINTS[point]
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if watch is None:
            hit = _uploading(client, KILLED)
        else:
            hit = any(watch(k) for k in _keys(client, KILLED) if k not in before)
        if hit:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    # -9: killed at the point, not finished (0) or failed (1) before it.
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, stderr)


def test_publish_killed_mid_upload_shows_no_broken_tag(
    moto: MotoServer, tmp_path: Path
) -> None:
    small = images.write_docker_save(tmp_path / "s.tar", [images.hello_image()]).path
    root = f"s3://{BUCKET}/{KILLED}"
    staticreg(moto, "publish", "--root", root, "--blob-copies", str(small))
    client = moto.client()
    env = {**os.environ, **CREDENTIALS, "STATICREG_ENDPOINT_URL": moto.url}
    tarballs = []
    for point in KILL_POINTS:
        tar = _kill_tarball(tmp_path, point)
        tarballs.append(tar)
        before = set(_keys(client, KILLED))
        proc = subprocess.Popen(
            [sys.executable, "-m", "staticreg", "publish", "--root", root, str(tar)]
            + ["--compression", "none"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _wait_for_lock(client, proc, KILLED)
        _kill_at(client, proc, point, before)
        visible = _visible_tags_are_whole(client, KILLED)
        assert visible >= 1, point
        if point == "tags":
            # Killed among the tags: some are visible, not all.
            seen = [k for k in _keys(client, KILLED) if KILL_POINTS["tags"](k)]
            assert 0 < len(seen) < TAGS_PER_IMAGE, seen
        if point == "multipart":
            # The killed upload stays unfinished: no part of it is an object.
            assert _uploading(client, KILLED)

    # The next publish finds the dead writer's lock, removes it, and completes.
    done = staticreg(
        moto, "publish", "--root", root, *map(str, tarballs), "--compression", "none"
    )
    assert "removing the lock of a publish that died" in done.stderr
    assert _visible_tags_are_whole(client, KILLED) == 2 + TAGS_PER_IMAGE + 2
    verified = staticreg(moto, "verify", "--root", root)
    assert "0 problems left" in verified.stderr


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


def test_endpoint_url_option_without_the_variable(
    moto: MotoServer, tmp_path: Path
) -> None:
    """--endpoint-url alone points every command at the store (S3Store also reads
    STATICREG_ENDPOINT_URL, which every other test sets)."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "STATICREG_ENDPOINT_URL"},
        **CREDENTIALS,
    }
    hello = images.write_docker_save(tmp_path / "h.tar", [images.hello_image()])
    root = f"s3://{BUCKET}/option"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "staticreg", *args, "--root", root]
            + ["--endpoint-url", moto.url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done

    published = run("publish", str(hello.path))
    digest = published.stdout.strip().split("@")[1]
    assert moto.client().head_object(Bucket=BUCKET, Key="option/staticreg.json")
    listed = run("ls", "test/img", "--json")
    assert json.loads(listed.stdout)["tags"][0]["digest"] == digest
    assert run("ls").stdout.split() == ["REPOSITORY", "TAGS", "test/img", "1"]


def test_default_bucket_layout_answers_every_pull_url(
    moto: MotoServer, tmp_path: Path
) -> None:
    """What a client pulls behind the CDN: each URL mapped to its key by the
    generated viewer-request function, then the object, its Content-Type and
    digest as the bucket serves them, and the header the viewer-response adds."""
    hello = images.write_docker_save(tmp_path / "h.tar", [images.hello_image()])
    root = f"s3://{BUCKET}/cdnpull"
    published = staticreg(moto, "publish", "--root", root, str(hello.path))
    found = published.stdout.strip().split("@")[1]
    client = moto.client()
    settings = json.loads(
        client.get_object(Bucket=BUCKET, Key="cdnpull/staticreg.json")["Body"].read()
    )
    assert settings["layout"] == "bucket"
    functions = tmp_path / "cdn"
    staticreg(moto, "cdn", "--root", root, "-o", str(functions))

    manifest_type = "application/vnd.oci.image.manifest.v1+json"
    tag_url, digest_url = "/v2/test/img/manifests/v1", f"/v2/test/img/manifests/{found}"
    manifest = json.loads(_pull(client, functions, tag_url, manifest_type, found))
    assert _pull(client, functions, digest_url, manifest_type, found)
    assert _pull(client, functions, "/v2/", "application/json", None) == b"{}\n"
    tags = _pull(client, functions, "/v2/test/img/tags/list", "application/json", None)
    assert json.loads(tags) == {"name": "test/img", "tags": ["v1"]}
    for desc in [manifest["config"], *manifest["layers"]]:
        url = f"/v2/test/img/blobs/{desc['digest']}"
        data = _pull(client, functions, url, "application/octet-stream", desc["digest"])
        assert len(data) == desc["size"]

    # The bucket's digest metadata becomes Docker-Content-Digest.
    head = client.head_object(
        Bucket=BUCKET, Key="cdnpull/repositories/test/img/_tags/v1"
    )
    headers = head["ResponseMetadata"]["HTTPHeaders"]
    event = cloudfront.response_event(200, headers, tag_url)
    [answer] = cloudfront.run_function(functions / "viewer-response.js", [event])
    assert answer["headers"]["docker-content-digest"] == {"value": found}


def _pull(
    client: Any, functions: Path, url: str, content_type: str, digest: str | None
) -> bytes:
    """The object ``url`` reaches through the viewer-request function; check its
    Content-Type, digest metadata and, for content-addressed URLs, its bytes."""
    event = cloudfront.request_event("GET", url)
    [mapped] = cloudfront.run_function(functions / "viewer-request.js", [event])
    assert "statusCode" not in mapped, (url, mapped)
    key = mapped["uri"].removeprefix("/")
    assert key.startswith("cdnpull/"), (url, key)
    answer = client.get_object(Bucket=BUCKET, Key=key)
    data: bytes = answer["Body"].read()
    assert answer["ContentType"] == content_type, (url, key)
    if digest is not None:
        assert answer["Metadata"] == {"docker-content-digest": digest}, (url, key)
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest, (url, key)
    return data
