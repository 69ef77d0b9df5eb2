"""One table of requests, answered the same by nginx and ``staticreg serve``."""

from __future__ import annotations

import json

import pytest
from harness import daemons

from staticreg import catalog, paths
from staticreg.store import DirectoryStore

from .conftest import Serve, Tree

pytestmark = pytest.mark.e2e

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ZERO = "sha256:" + "0" * 64


def _blobs(tree: Tree, name: str) -> list[str]:
    record = catalog.read_repository(DirectoryStore(str(tree.root)), name)
    assert record is not None
    digest = record.tags["1" if name != "e2e/busybox" else "latest"].digest
    return list(record.manifests[digest]["blobs"])


def _cases(tree: Tree) -> list[tuple[str, str, dict[str, str], int, str | None]]:
    """(method, path, request headers, status, error code or None)."""
    manifest = tree.digests["e2e/gzip:1"]
    layer = _blobs(tree, "e2e/gzip")[-1]
    busybox = set(_blobs(tree, "e2e/busybox"))
    hello_only = (set(_blobs(tree, "e2e/gzip")) - busybox).pop()
    return [
        ("GET", "/v2/", {}, 200, None),
        ("GET", "/v2/_catalog", {}, 200, None),
        ("GET", "/v2/e2e/gzip/tags/list", {}, 200, None),
        ("GET", "/v2/e2e/nothing/tags/list", {}, 404, "NAME_UNKNOWN"),
        ("GET", "/v2/e2e/gzip/manifests/1", {}, 200, None),
        ("HEAD", "/v2/e2e/gzip/manifests/1", {}, 200, None),
        ("GET", f"/v2/e2e/gzip/manifests/{manifest}", {}, 200, None),
        ("HEAD", f"/v2/e2e/gzip/manifests/{manifest}", {}, 200, None),
        ("GET", "/v2/e2e/gzip/manifests/2", {}, 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/e2e/nothing/manifests/1", {}, 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/e2e/gzip/manifests/{ZERO}", {}, 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/e2e/gzip/manifests/sha256:abc", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2/e2e/gzip/manifests/sha256:../x", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2/e2e/gzip/manifests/a/b", {}, 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/e2e/gzip/blobs/sha256:a/b", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2/e2e/gzip/manifests/sha256:a:b", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2//e2e///gzip/tags/list", {}, 200, None),
        ("GET", f"/v2/e2e/gzip/blobs/{layer}", {}, 200, None),
        ("HEAD", f"/v2/e2e/gzip/blobs/{layer}", {}, 200, None),
        ("GET", f"/v2/e2e/gzip/blobs/{layer}", {"Range": "bytes=10-99"}, 206, None),
        ("GET", f"/v2/e2e/gzip/blobs/{ZERO}", {}, 404, "BLOB_UNKNOWN"),
        ("GET", f"/v2/e2e/busybox/blobs/{hello_only}", {}, 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/e2e/gzip/blobs/sha256:short", {}, 400, "DIGEST_INVALID"),
        ("POST", "/v2/e2e/gzip/blobs/uploads/", {}, 405, "UNSUPPORTED"),
        ("PUT", "/v2/e2e/gzip/manifests/1", {}, 405, "UNSUPPORTED"),
        ("DELETE", f"/v2/e2e/gzip/manifests/{manifest}", {}, 405, "UNSUPPORTED"),
        ("GET", "/", {}, 404, "NOT_FOUND"),
        ("GET", "/staticreg.json", {}, 404, "NOT_FOUND"),
        ("GET", "/.staticreg/lock", {}, 404, "NOT_FOUND"),
        ("GET", f"/blobs/sha256/{layer.split(':')[1]}", {}, 404, "NOT_FOUND"),
        ("GET", "/repositories/e2e/gzip/_repository.json", {}, 404, "NOT_FOUND"),
        ("GET", "/v2/../staticreg.json", {}, 404, "NOT_FOUND"),
        ("GET", "/v2/E2E/gzip/tags/list", {}, 404, "NOT_FOUND"),
    ]


def _request(base: str, method: str, path: str,
             headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return daemons.http_get(base + path, headers=headers, method=method)


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_request_table(server_kind: str, tree: Tree, nginx_session: daemons.Nginx,
                       serve: Serve) -> None:
    base = nginx_session.url if server_kind == "nginx" else serve.url
    for method, path, headers, status, error in _cases(tree):
        got, answer, body = _request(base, method, path, headers)
        where = f"{server_kind} {method} {path}"
        assert got == status, f"{where}: {got} {body[:200]!r}"
        assert answer.get("Docker-Distribution-API-Version") == "registry/2.0", where
        if error is not None:
            assert answer["Content-Type"].startswith("application/json"), where
            if method != "HEAD":
                assert json.loads(body)["errors"][0]["code"] == error, where
        if status == 405:
            assert b"published with staticreg" in body


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_manifest_headers(server_kind: str, tree: Tree, nginx_session: daemons.Nginx,
                          serve: Serve) -> None:
    base = nginx_session.url if server_kind == "nginx" else serve.url
    manifest = tree.digests["e2e/gzip:1"]
    raw = (tree.root / paths.manifest(
        "e2e/gzip", __import__("staticreg.digest").digest.parse(manifest),
        OCI_MANIFEST)).read_bytes()

    status, by_tag, body = _request(base, "HEAD", "/v2/e2e/gzip/manifests/1", {})
    assert status == 200 and body == b""
    assert by_tag["Content-Type"] == OCI_MANIFEST
    assert by_tag["Content-Length"] == str(len(raw))
    assert "Docker-Content-Digest" not in by_tag  # could go stale behind a cache
    assert "immutable" not in by_tag["Cache-Control"]

    _, by_digest, body = _request(base, "GET", f"/v2/e2e/gzip/manifests/{manifest}", {})
    assert body == raw
    assert by_digest["Docker-Content-Digest"] == manifest
    assert "immutable" in by_digest["Cache-Control"]
    assert "Content-Encoding" not in by_digest


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_blob_range_and_headers(server_kind: str, tree: Tree,
                                nginx_session: daemons.Nginx, serve: Serve) -> None:
    base = nginx_session.url if server_kind == "nginx" else serve.url
    layer = _blobs(tree, "e2e/gzip")[-1]
    data = (tree.root / "blobs/sha256" / layer.split(":")[1]).read_bytes()
    _, full, body = _request(base, "GET", f"/v2/e2e/gzip/blobs/{layer}",
                             {"Accept-Encoding": "gzip"})
    assert body == data and full["Docker-Content-Digest"] == layer
    assert full["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in full
    status, part, body = _request(base, "GET", f"/v2/e2e/gzip/blobs/{layer}",
                                  {"Range": f"bytes={len(data) - 5}-"})
    assert status == 206 and body == data[-5:]
    assert part["Content-Range"] == f"bytes {len(data) - 5}-{len(data) - 1}/{len(data)}"


def test_serve_pages_tags(tree: Tree, serve: Serve) -> None:
    status, headers, body = _request(serve.url, "GET", "/v2/_catalog?n=2", {})
    doc = json.loads(body)
    assert status == 200 and len(doc["repositories"]) == 2
    assert headers["Link"].startswith("</v2/_catalog?n=2&last=")
