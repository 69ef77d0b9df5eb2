"""The S3 store with moto: keys, metadata, order, skipping, multipart, retries."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner
from moto import mock_aws

from staticreg import api, paths, publish, sources, targets
from staticreg import digest as digestmod
from staticreg.cli import cli
from staticreg.errors import Conflict, StoreError
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


# Where each kind of object goes, by layout: blobs, manifests by digest, tags,
# tags lists and the catalog.
ORDER_KEYS: dict[str, dict[str, Any]] = {
    "bucket": {
        "blob": lambda k: k.startswith("blobs/"),
        "manifest": lambda k: "/_manifests/" in k,
        "tag": lambda k: "/_tags/" in k,
        "list": lambda k: k.endswith("/_tags.json"),
        "catalog": lambda k: k == "v2/_catalog.json",
    },
    "bucket-blob-copies": {
        "blob": lambda k: k.startswith("blobs/"),
        "manifest": lambda k: "/manifests/sha256:" in k,
        "tag": lambda k: "/manifests/" in k and ":" not in k.rpartition("/")[2],
        "list": lambda k: k.endswith("/tags/list"),
        "catalog": lambda k: k == "v2/_catalog",
    },
}


@pytest.mark.parametrize("layout", sorted(ORDER_KEYS))
def test_upload_order_keeps_readers_safe(aws: Any, tmp_path: Path, layout: str) -> None:
    source = Layout()
    image = source.image(images.hello_image(()))
    source.add(image, "signed/app:1")
    source.add(source.artifact(image, SBOM_TYPE, b"{}", "application/json"))
    store = S3Store(f"s3://{BUCKET}", client=aws)
    recorder = Recorder(aws)
    _publish(store, source.write_dir(tmp_path / "l"), layout=layout)

    writes = [key for key in recorder.writes() if not key.startswith(".staticreg")]
    kinds = ORDER_KEYS[layout]

    def first(kind: str) -> int:
        return min(i for i, key in enumerate(writes) if kinds[kind](key))

    def last(kind: str) -> int:
        return max(i for i, key in enumerate(writes) if kinds[kind](key))

    assert last("blob") < first("manifest")
    assert last("manifest") < first("tag")
    assert last("tag") < first("list")
    assert first("list") < first("catalog")
    # Each manifest follows the links or copies of the blobs it references.
    shape = paths.layout_named(layout)
    for index, key in enumerate(writes):
        if not kinds["manifest"](key):
            continue
        doc = json.loads(store.get(key))
        name = "signed/app"
        for desc in [doc.get("config"), *doc.get("layers", [])]:
            if desc is not None:
                link = shape.blob_link(name, digestmod.parse(desc["digest"]))
                assert writes.index(link) < index, (link, key)


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


# The writers' lock ----------------------------------------------------------------

LOCK_KEY = f"reg/{paths.LOCK}"
OTHER = {"host": "builder-7", "pid": 4242, "since": 0, "token": "x"}


def _lock_store(aws: Any, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    monkeypatch.setattr(s3store, "LOCK_POLL_SECONDS", 0.05)
    # A CLI test before may have stopped staticreg's records reaching caplog.
    monkeypatch.setattr(logging.getLogger("staticreg"), "propagate", True)
    monkeypatch.setattr(s3store, "LOCK_WAIT_SECONDS", 10)
    return S3Store(f"s3://{BUCKET}/reg", client=aws)


def _locked_by_other(aws: Any) -> None:
    aws.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=json.dumps(OTHER).encode())


def _lock_gone(aws: Any) -> bool:
    return "Contents" not in aws.list_objects_v2(Bucket=BUCKET, Prefix=LOCK_KEY)


def test_lock_waits_for_another_writer_then_takes_it(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _lock_store(aws, monkeypatch)
    _locked_by_other(aws)
    release = threading.Timer(
        0.5, aws.delete_object, kwargs={"Bucket": BUCKET, "Key": LOCK_KEY}
    )
    release.start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), store.lock():
        assert time.monotonic() - started >= 0.4
        holder = json.loads(aws.get_object(Bucket=BUCKET, Key=LOCK_KEY)["Body"].read())
        assert holder["pid"] != OTHER["pid"]
    release.join()
    assert "waiting for another publish" in caplog.text
    assert "held by pid 4242 on builder-7" in caplog.text
    assert "conditional" not in caplog.text
    assert _lock_gone(aws)


def test_lock_wait_times_out_naming_the_holder(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _lock_store(aws, monkeypatch)
    monkeypatch.setattr(s3store, "LOCK_WAIT_SECONDS", 0.3)
    _locked_by_other(aws)
    with pytest.raises(Conflict) as caught, store.lock():
        pytest.fail("took a lock another writer holds")
    text = str(caught.value)
    assert "stays locked by another publish" in text
    assert "held by pid 4242 on builder-7 since 1970-01-01 00:00:00 UTC" in text
    assert f"delete s3://{BUCKET}/{LOCK_KEY}" in str(caught.value.hint)
    # The holder's lock is left alone.
    assert (
        json.loads(aws.get_object(Bucket=BUCKET, Key=LOCK_KEY)["Body"].read()) == OTHER
    )


def _on_lock_put(aws: Any, answer: Any) -> list[dict[str, str]]:
    """Call ``answer(request, body)`` on every PUT of the lock (a response, or
    None to let it through); note the headers of each."""
    seen: list[dict[str, str]] = []
    bodies: list[bytes] = []

    def params(params: Any, **_: Any) -> None:
        if params.get("Key") == LOCK_KEY:
            bodies.append(params["Body"])

    def send(request: Any, **_: Any) -> AWSResponse | None:
        if not request.url.split("?")[0].endswith(LOCK_KEY):
            return None
        seen.append({k: v.decode() for k, v in request.headers.items()})
        result: AWSResponse | None = answer(request, bodies[-1])
        return result

    aws.meta.events.register("before-parameter-build.s3.PutObject", params)
    aws.meta.events.register("before-send.s3.PutObject", send)
    return seen


def test_lock_whose_created_answer_was_lost_is_ours(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _lock_store(aws, monkeypatch)
    monkeypatch.setattr(s3store, "LOCK_WAIT_SECONDS", 0.3)
    other = boto3.client("s3", region_name="us-east-1")

    def lose_first_answer(request: Any, body: bytes) -> AWSResponse | None:
        if len(seen) > 1:
            return None
        # The create reaches the bucket, but its answer is lost: the retry is
        # refused, as the object exists.
        other.put_object(Bucket=BUCKET, Key=LOCK_KEY, Body=body)
        error = b"<Error><Code>PreconditionFailed</Code></Error>"
        return AWSResponse(request.url, 412, {}, _Raw(error))

    seen = _on_lock_put(aws, lose_first_answer)
    with caplog.at_level(logging.WARNING), store.lock():
        assert not _lock_gone(aws)
    assert caplog.text == ""
    assert _lock_gone(aws)
    # The create, then the probe that the store honours If-None-Match.
    assert [h.get("If-None-Match") for h in seen] == ["*", "*"]


def test_lock_on_a_store_that_refuses_conditional_writes_warns(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _lock_store(aws, monkeypatch)
    body = b"<Error><Code>NotImplemented</Code><Message>If-None-Match</Message></Error>"
    _on_lock_put(aws, lambda request, _: AWSResponse(request.url, 400, {}, _Raw(body)))
    with caplog.at_level(logging.WARNING), store.lock():
        pass
    assert "the store refused a conditional write (NotImplemented)" in caplog.text
    assert "one publisher at a time is expected" in caplog.text


def test_lock_on_a_store_that_ignores_conditional_writes_warns(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _lock_store(aws, monkeypatch)

    def drop_condition(request: Any, _: bytes) -> None:
        # As a store that accepts the header and does not act on it.
        del request.headers["If-None-Match"]

    seen = _on_lock_put(aws, drop_condition)
    with caplog.at_level(logging.WARNING), store.lock():
        assert not _lock_gone(aws)
    assert len(seen) == 2
    assert "ignores conditional writes (If-None-Match)" in caplog.text
    assert "one publisher at a time is expected" in caplog.text
    assert _lock_gone(aws)


def test_lock_honoured_by_the_store_warns_nothing(
    aws: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = _lock_store(aws, monkeypatch)
    with caplog.at_level(logging.WARNING), store.lock():
        assert not _lock_gone(aws)
    assert caplog.text == ""


def test_boto3_is_imported_by_the_s3_store_only(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    """A directory tree never pays for boto3 (an optional extra, slow to import)."""
    root = str(tmp_path / "tree")
    code = f"""
import sys
from staticreg.cli import cli
for args in (["publish", {str(hello_tar.path)!r}], ["ls"], ["verify"]):
    try:
        cli.main([*args, "--root", {root!r}], standalone_mode=False)
    except SystemExit as exit:
        assert not exit.code, (args, exit.code)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore"))
print(loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert "test/img" in done.stdout
    assert "staticreg.store.s3" not in done.stdout


# A failed write at any point ------------------------------------------------------

WRITES = ("PutObject", "CopyObject", "CompleteMultipartUpload")


class FailNth:
    """Makes the Nth write of the tree (lock left out) fail, once armed."""

    def __init__(self, client: Any) -> None:
        self.fail_at = 0
        self.count = 0
        for name in WRITES:
            client.meta.events.register(f"before-send.s3.{name}", self._send)

    def arm(self, fail_at: int) -> None:
        self.fail_at, self.count = fail_at, 0

    def _send(self, request: Any, **_: Any) -> AWSResponse | None:
        if request.url.split("?")[0].endswith(paths.LOCK):
            return None
        self.count += 1
        if self.count != self.fail_at:
            return None
        body = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
        return AWSResponse(request.url, 403, {}, _Raw(body))


def _small_image(tmp_path: Path, name: str, text: bytes, tags: list[str]) -> Path:
    layer = images.build_layer({"/data.txt": text})
    spec = images.ImageSpec(layers=(layer,), repo_tags=tuple(tags))
    return images.write_docker_save(tmp_path / f"{name}.tar", [spec]).path


def _visible_tags_are_whole(store: S3Store, layout: paths.Layout) -> dict[str, str]:
    """Every tag object a reader can see names a manifest by digest and blobs
    that are there and whole (with their link or copy); tag -> digest."""
    keys = set(store.list(""))
    found = {}
    for key in sorted(keys):
        if layout.copies_blobs:
            name, _, tag = key.removeprefix("v2/").rpartition("/manifests/")
            if not key.startswith("v2/") or not name or ":" in tag:
                continue
        else:
            name, _, tag = key.removeprefix("repositories/").rpartition("/_tags/")
            if not key.startswith("repositories/") or not name or "/" in tag:
                continue
        raw = store.get(key)
        digest = digestmod.of_bytes(raw)
        head = store.head(key)
        assert head is not None and head["Metadata"][s3store.DIGEST_METADATA] == str(
            digest
        )
        manifest = json.loads(raw)
        assert store.get(layout.manifest(name, digest, manifest["mediaType"])) == raw
        for desc in [manifest["config"], *manifest["layers"]]:
            blob = digestmod.parse(desc["digest"])
            assert store.stat(paths.blob(blob)) == desc["size"], (key, blob)
            assert layout.blob_link(name, blob) in keys, (key, blob)
        found[f"{name}:{tag}"] = str(digest)
    return found


@pytest.mark.parametrize("layout", ["bucket", "bucket-blob-copies"])
def test_a_write_failing_at_any_point_leaves_every_tag_whole(
    aws: Any, tmp_path: Path, layout: str
) -> None:
    old = _small_image(tmp_path, "old", b"old", ["app:1", "app:2"])
    new = _small_image(tmp_path, "new", b"new", ["app:1", "other:1"])
    shape = paths.layout_named(layout)
    failing = FailNth(aws)
    # A clean run first: how many writes moving the tag takes, and what it gives.
    store = S3Store(f"s3://{BUCKET}/clean", client=aws)
    [before, _] = _publish(store, old, layout=layout)
    failing.arm(0)
    _publish(store, new)
    total = failing.count
    after = _visible_tags_are_whole(store, shape)
    assert after["app:1"] != str(before.digest) and total > 10

    for fail_at in range(1, total + 1):
        store = S3Store(f"s3://{BUCKET}/fail-{fail_at}", client=aws)
        failing.arm(0)
        _publish(store, old, layout=layout)
        failing.arm(fail_at)
        with pytest.raises(StoreError, match="AccessDenied"):
            _publish(store, new)
        visible = _visible_tags_are_whole(store, shape)
        # Each tag answers the old image or the new one, never anything else.
        assert visible["app:1"] in (str(before.digest), after["app:1"]), fail_at
        assert visible["app:2"] == str(before.digest), fail_at
        assert visible.get("other:1", after["other:1"]) == after["other:1"]
