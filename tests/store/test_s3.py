"""The S3 store with moto: keys, metadata, order, skipping, multipart, retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner
from moto import mock_aws

from staticreg import api, paths, publish, sources, targets
from staticreg.cli import cli
from staticreg.pipeline import Plan
from staticreg.store import s3 as s3store
from staticreg.store.s3 import S3Store

from harness import images
from harness.layouts import SBOM_TYPE, Layout

BUCKET = "registry"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class Recorder:
    """Watches every S3 call the store makes, in order."""

    def __init__(self, client: Any) -> None:
        self.calls: list[tuple[str, str]] = []
        client.meta.events.register("before-parameter-build.s3", self._seen)

    def _seen(self, params: Any, model: Any, **_: Any) -> None:
        self.calls.append((model.name, str(params.get("Key", ""))))

    def writes(self) -> list[str]:
        kinds = ("PutObject", "CopyObject", "CreateMultipartUpload")
        return [key for name, key in self.calls if name in kinds]


def _publish(
    store: S3Store, tar: Path, layout: str | None = None, tags: list[str] | None = None
) -> list[publish.Published]:
    found = sources.read(str(tar))
    pairs = targets.resolve(found.nodes, targets.parse_tags(tags or []))
    extra = [(node, None) for node in found.referrers]
    return publish.publish(store, pairs, Plan(), layout=layout, extra_referrers=extra)


def test_objects_carry_content_type_cache_control_and_digest(
    aws: Any, hello_tar: images.SavedTarball
) -> None:
    store = S3Store(f"s3://{BUCKET}/reg", client=aws)
    [result] = _publish(store, hello_tar.path)
    layout = paths.LAYOUTS["bucket"]
    by_digest = aws.head_object(
        Bucket=BUCKET, Key="reg/" + layout.manifest("test/img", result.digest, "")
    )
    assert by_digest["ContentType"] == result.media_type
    assert by_digest["CacheControl"] == api.IMMUTABLE
    assert by_digest["Metadata"] == {"docker-content-digest": str(result.digest)}
    tag = aws.head_object(Bucket=BUCKET, Key="reg/repositories/test/img/_tags/v1")
    assert tag["ContentType"] == result.media_type
    assert tag["CacheControl"] == api.SHORT
    assert tag["ContentLength"] == result.size
    manifest = json.loads(store.get(layout.tag("test/img", "v1", "")))
    layer = manifest["layers"][0]["digest"]
    blob = aws.head_object(Bucket=BUCKET, Key=f"reg/blobs/sha256/{layer[7:]}")
    assert blob["ContentType"] == "application/octet-stream"
    assert blob["Metadata"] == {"docker-content-digest": layer}
    api_root = aws.get_object(Bucket=BUCKET, Key="reg/v2/index.json")
    assert api_root["ContentType"] == "application/json"
    settings = json.loads(store.get(paths.SETTINGS))
    assert settings["layout"] == "bucket"
    # Publishing never makes anything public.
    acl = aws.get_object_acl(Bucket=BUCKET, Key="reg/v2/index.json")
    assert all("AllUsers" not in str(grant) for grant in acl["Grants"])


def test_blob_copies_layout_uses_url_paths(
    aws: Any, hello_tar: images.SavedTarball
) -> None:
    store = S3Store(f"s3://{BUCKET}/p", client=aws)
    [result] = _publish(store, hello_tar.path, layout="bucket-blob-copies")
    keys = set(store.list(""))
    assert "v2/" in keys and "v2/_catalog" in keys and "v2/test/img/tags/list" in keys
    assert f"v2/test/img/manifests/{result.digest}" in keys
    assert "v2/test/img/manifests/v1" in keys
    manifest = json.loads(store.get("v2/test/img/manifests/v1"))
    for desc in [manifest["config"], *manifest["layers"]]:
        head = store.head(f"v2/test/img/blobs/{desc['digest']}")
        assert head is not None and head["ContentLength"] == desc["size"]
        assert head["Metadata"]["docker-content-digest"] == desc["digest"]
    assert json.loads(store.get("v2/test/img/tags/list")) == {
        "name": "test/img",
        "tags": ["v1"],
    }
    # The layout is recorded: a later publish needs no flag, a conflicting one fails.
    _publish(store, hello_tar.path, tags=["other:1"])
    assert "v2/other/manifests/1" in set(store.list("v2/other/"))
    with pytest.raises(Exception, match="the tree uses 'bucket-blob-copies'"):
        _publish(store, hello_tar.path, layout="bucket")


def test_upload_order_keeps_readers_safe(aws: Any, tmp_path: Path) -> None:
    layout = Layout()
    image = layout.image(images.hello_image(()))
    layout.add(image, "signed/app:1")
    layout.add(layout.artifact(image, SBOM_TYPE, b"{}", "application/json"))
    store = S3Store(f"s3://{BUCKET}", client=aws)
    recorder = Recorder(aws)
    _publish(store, layout.write_dir(tmp_path / "l"))

    writes = [key for key in recorder.writes() if not key.startswith(".staticreg")]

    def first(predicate: Any) -> int:
        return min(i for i, key in enumerate(writes) if predicate(key))

    def last(predicate: Any) -> int:
        return max(i for i, key in enumerate(writes) if predicate(key))

    assert last(lambda k: k.startswith("blobs/")) < first(lambda k: "/_manifests/" in k)
    assert last(lambda k: "/_manifests/" in k) < first(lambda k: "/_tags/" in k)
    assert last(lambda k: "/_tags/" in k) < first(lambda k: k.endswith("_tags.json"))
    assert first(lambda k: k.endswith("_tags.json")) < first(
        lambda k: k == "v2/_catalog.json"
    )


def test_existing_blobs_are_not_uploaded_again(
    aws: Any, hello_tar: images.SavedTarball
) -> None:
    store = S3Store(f"s3://{BUCKET}", client=aws)
    _publish(store, hello_tar.path)
    recorder = Recorder(aws)
    _publish(store, hello_tar.path, tags=["again:1"])
    uploaded = [k for k in recorder.writes() if k.startswith("blobs/")]
    assert uploaded == []
    assert not [name for name, _ in recorder.calls if name == "ListObjectsV2"]


def test_large_blob_goes_up_as_multipart(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3store, "MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(s3store, "MULTIPART_CHUNK", 5 << 20)
    import os

    layer = images.build_layer({"/noise": os.urandom(12 << 20)})
    spec = images.ImageSpec(layers=(layer,), repo_tags=("big:1",))
    tar = images.write_docker_save(tmp_path / "big.tar", [spec]).path
    store = S3Store(f"s3://{BUCKET}", client=aws)
    recorder = Recorder(aws)
    _publish(store, tar)
    names = [name for name, _ in recorder.calls]
    assert names.count("UploadPart") >= 3 and "CompleteMultipartUpload" in names


def test_failed_multipart_upload_is_aborted(
    aws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3store, "MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(s3store, "MULTIPART_CHUNK", 5 << 20)
    import os

    from staticreg.errors import StoreError

    layer = images.build_layer({"/noise": os.urandom(12 << 20)})
    spec = images.ImageSpec(layers=(layer,), repo_tags=("big:1",))
    tar = images.write_docker_save(tmp_path / "big.tar", [spec]).path
    store = S3Store(f"s3://{BUCKET}", client=aws)
    recorder = Recorder(aws)

    def refuse(**_: Any) -> AWSResponse:
        return AWSResponse(
            "https://x", 400, {}, _Raw(b"<Error><Code>InvalidPart</Code></Error>")
        )

    aws.meta.events.register("before-send.s3.UploadPart", refuse)
    with pytest.raises(StoreError, match="cannot upload"):
        _publish(store, tar)
    names = [name for name, _ in recorder.calls]
    assert "AbortMultipartUpload" in names
    assert aws.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert [k for k in store.list("") if "_tags/" in k] == []


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_: Any) -> bytes:
        return self._body


def test_throttling_and_5xx_are_retried(
    aws: Any, hello_tar: images.SavedTarball
) -> None:
    store = S3Store(f"s3://{BUCKET}", client=aws)
    failures = {"left": 3}

    def flaky(**_: Any) -> AWSResponse | None:
        if failures["left"]:
            failures["left"] -= 1
            code = 503 if failures["left"] % 2 else 500
            return AWSResponse(
                "https://x",
                code,
                {},
                _Raw(b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>"),
            )
        return None

    aws.meta.events.register("before-send.s3.PutObject", flaky)
    [result] = _publish(store, hello_tar.path)
    assert failures["left"] == 0
    assert store.stat("repositories/test/img/_tags/v1") == result.size


@pytest.mark.parametrize("blob_copies", [False, True], ids=["bucket", "blob-copies"])
def test_every_command_reads_a_bucket_tree(
    aws: Any, tmp_path: Path, blob_copies: bool
) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, [*args, "--root", root])
        return result.exit_code, result.stdout, result.stderr

    root = f"s3://{BUCKET}/reg"
    tar = images.write_docker_save(tmp_path / "hello.tar", [images.hello_image()])
    extra = ["--blob-copies"] if blob_copies else []
    code, out, err = run("publish", *extra, str(tar.path))
    assert code == 0, err
    digest = out.strip().split("@")[1]

    code, out, err = run("ls")
    assert code == 0 and out.split() == ["REPOSITORY", "TAGS", "test/img", "1"], err
    code, out, _ = run("ls", "test/img", "--json")
    assert json.loads(out)["tags"][0]["digest"] == digest
    code, out, err = run("inspect", "test/img:v1", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["digest"] == digest and len(doc["manifest"]["layers"]) == 2

    sbom = tmp_path / "sbom.json"
    sbom.write_text('{"spdxVersion": "SPDX-2.3"}')
    code, out, err = run(
        "attach", "--subject", "test/img:v1", "--artifact-type", SBOM_TYPE, str(sbom)
    )
    assert code == 0, err
    artifact = out.strip().split("@")[1]
    code, out, _ = run("inspect", "test/img:v1")
    assert "Referrers:" in out and artifact in out and SBOM_TYPE in out

    code, out, err = run("search", "img")
    assert code == 0 and out.splitlines()[1].startswith("test/img"), err
    code, _, err = run("index")
    assert code == 0, err
    code, out, err = run("verify")
    assert code == 0, out + err
    code, _, err = run("serve", "--listen", "127.0.0.1:1")
    assert code == 1 and "staticreg serve answers from directory trees" in err


def test_commands_refuse_a_bucket_prefix_without_a_tree(aws: Any) -> None:
    for command in (["ls"], ["inspect", "a/b:1"], ["search", "x"], ["verify"]):
        result = CliRunner().invoke(cli, [*command, "--root", f"s3://{BUCKET}/none"])
        assert result.exit_code == 1
        assert f"s3://{BUCKET}/none: it is not a staticreg tree" in result.stderr
