"""One table of requests, answered the same by nginx and ``staticreg serve``."""

from __future__ import annotations

import http.client
import json

import pytest

from staticreg import catalog, paths
from staticreg.store import DirectoryStore

from .conftest import Serve, Tree
from harness import daemons

pytestmark = pytest.mark.e2e

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ZERO = "sha256:" + "0" * 64
ZERO512 = "sha512:" + "0" * 128


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
        ("GET", "/v2", {}, 200, None),  # after a redirect to /v2/
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
        ("GET", f"/v2/e2e/gzip/manifests/{ZERO512}", {}, 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/e2e/gzip/blobs/{ZERO512}", {}, 404, "BLOB_UNKNOWN"),
        ("GET", f"/v2/e2e/gzip/referrers/{ZERO512}", {}, 200, None),
        ("GET", f"/v2/e2e/gzip/referrers/{ZERO}", {}, 200, None),
        ("GET", "/v2/e2e/gzip/referrers/sha256:abc", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2/e2e/gzip/manifests/sha256:abc", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2/e2e/gzip/manifests/sha256:../x", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2/e2e/gzip/manifests/a/b", {}, 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/e2e/gzip/blobs/sha256:a/b", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2/e2e/gzip/manifests/sha256:a:b", {}, 400, "DIGEST_INVALID"),
        ("GET", "/v2//e2e///gzip/tags/list", {}, 200, None),
        # nginx ignores n; serve answers an empty page (test_serve_pages_tags).
        ("GET", "/v2/e2e/gzip/tags/list?n=0", {}, 200, None),
        ("GET", "/v2/_catalog?n=0", {}, 200, None),
        ("GET", f"/v2/e2e/gzip/blobs/{layer}", {}, 200, None),
        ("HEAD", f"/v2/e2e/gzip/blobs/{layer}", {}, 200, None),
        ("GET", f"/v2/e2e/gzip/blobs/{layer}", {"Range": "bytes=10-99"}, 206, None),
        ("GET", f"/v2/e2e/gzip/blobs/{ZERO}", {}, 404, "BLOB_UNKNOWN"),
        ("GET", f"/v2/e2e/busybox/blobs/{hello_only}", {}, 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/e2e/gzip/blobs/sha256:short", {}, 400, "DIGEST_INVALID"),
        ("POST", "/v2/e2e/gzip/blobs/uploads/", {}, 405, "UNSUPPORTED"),
        ("PUT", "/v2/e2e/gzip/manifests/1", {}, 405, "UNSUPPORTED"),
        ("DELETE", f"/v2/e2e/gzip/manifests/{manifest}", {}, 405, "UNSUPPORTED"),
        ("GET", "/", {}, 200, None),
        ("GET", "/staticreg.json", {}, 404, "NOT_FOUND"),
        ("GET", "/.staticreg/lock", {}, 404, "NOT_FOUND"),
        ("GET", f"/blobs/sha256/{layer.split(':')[1]}", {}, 404, "NOT_FOUND"),
        ("GET", "/repositories/e2e/gzip/_repository.json", {}, 404, "NOT_FOUND"),
        ("GET", "/v2/../staticreg.json", {}, 404, "NOT_FOUND"),
        ("GET", "/v2/E2E/gzip/tags/list", {}, 404, "NOT_FOUND"),
        ("GET", "/v2/nothing", {}, 404, "NOT_FOUND"),
        ("GET", "/index.html", {}, 200, None),
        ("GET", "/r/e2e/gzip/", {}, 200, None),
        ("GET", "/r/e2e/gzip/index.html", {}, 200, None),
        ("GET", "/r/e2e/gzip", {}, 200, None),  # after a redirect to /r/e2e/gzip/
        ("HEAD", "/r/e2e/busybox/index.html", {}, 200, None),
        ("GET", "/r/e2e/nothing/index.html", {}, 404, "NOT_FOUND"),
        ("GET", "/r/", {}, 404, "NOT_FOUND"),
        ("GET", "/assets/site.css", {}, 200, None),
        ("GET", "/assets/site.js", {}, 200, None),
        ("GET", "/index.json", {}, 200, None),
        ("GET", "/search.json", {}, 200, None),
        ("GET", "/site/index.html", {}, 404, "NOT_FOUND"),
        ("GET", "/r/../staticreg.json", {}, 404, "NOT_FOUND"),
        ("POST", "/index.html", {}, 405, "UNSUPPORTED"),
        ("GET", "/v1/_ping", {}, 200, None),
        ("GET", "/v1/search?q=busy&n=25", {}, 200, None),
        ("GET", "/v1/search?q=nothing-matches", {}, 200, None),
        ("GET", "/v1/search?q=..%2F..%2Fstaticreg", {}, 200, None),
        ("GET", "/v1/search?q=%00", {}, 200, None),
        ("GET", "/v1/search", {}, 200, None),
        ("GET", "/v1/nothing", {}, 404, "NOT_FOUND"),
        ("GET", "/v1/search/busy.json", {}, 404, "NOT_FOUND"),
        ("GET", "/_staticreg/search/busy.json", {}, 404, "NOT_FOUND"),
    ]


def _request(
    base: str, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    return daemons.http_get(base + path, headers=headers, method=method)


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_request_table(
    server_kind: str, tree: Tree, nginx_session: daemons.Nginx, serve: Serve
) -> None:
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
def test_manifest_headers(
    server_kind: str, tree: Tree, nginx_session: daemons.Nginx, serve: Serve
) -> None:
    base = nginx_session.url if server_kind == "nginx" else serve.url
    manifest = tree.digests["e2e/gzip:1"]
    raw = (
        tree.root
        / paths.manifest(
            "e2e/gzip",
            __import__("staticreg.digest").digest.parse(manifest),
            OCI_MANIFEST,
        )
    ).read_bytes()

    status, by_tag, body = _request(base, "HEAD", "/v2/e2e/gzip/manifests/1", {})
    assert status == 200 and body == b""
    assert by_tag["Content-Type"] == OCI_MANIFEST
    assert by_tag["Content-Length"] == str(len(raw))
    assert "Docker-Content-Digest" not in by_tag  # could go stale behind a cache
    assert "immutable" not in by_tag["Cache-Control"]

    _, by_digest, body = _request(
        base,
        "GET",
        f"/v2/e2e/gzip/manifests/{manifest}",
        {"Accept-Encoding": "gzip"},
    )
    assert body == raw
    assert by_digest["Docker-Content-Digest"] == manifest
    assert "immutable" in by_digest["Cache-Control"]
    assert "Content-Encoding" not in by_digest


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_blob_range_and_headers(
    server_kind: str, tree: Tree, nginx_session: daemons.Nginx, serve: Serve
) -> None:
    base = nginx_session.url if server_kind == "nginx" else serve.url
    layer = _blobs(tree, "e2e/gzip")[-1]
    data = (tree.root / "blobs/sha256" / layer.split(":")[1]).read_bytes()
    _, full, body = _request(
        base, "GET", f"/v2/e2e/gzip/blobs/{layer}", {"Accept-Encoding": "gzip"}
    )
    assert body == data and full["Docker-Content-Digest"] == layer
    assert full["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in full
    status, part, body = _request(
        base, "GET", f"/v2/e2e/gzip/blobs/{layer}", {"Range": f"bytes={len(data) - 5}-"}
    )
    assert status == 206 and body == data[-5:]
    assert part["Content-Range"] == f"bytes {len(data) - 5}-{len(data) - 1}/{len(data)}"


def test_serve_pages_tags(tree: Tree, serve: Serve) -> None:
    status, headers, body = _request(serve.url, "GET", "/v2/_catalog?n=2", {})
    doc = json.loads(body)
    assert status == 200 and len(doc["repositories"]) == 2
    assert headers["Link"].startswith("</v2/_catalog?n=2&last=")
    for path in ("/v2/_catalog?n=0", "/v2/e2e/gzip/tags/list?n=0"):
        status, headers, body = _request(serve.url, "GET", path, {})
        assert status == 200 and "Link" not in headers, path
        assert json.loads(body) in (
            {"repositories": []},
            {"name": "e2e/gzip", "tags": []},
        )


@pytest.mark.parametrize("n", ["-1", "x"])
def test_serve_refuses_bad_n_that_nginx_ignores(
    n: str, tree: Tree, nginx_session: daemons.Nginx, serve: Serve
) -> None:
    for path in (f"/v2/_catalog?n={n}", f"/v2/e2e/gzip/tags/list?n={n}"):
        status, _, body = _request(serve.url, "GET", path, {})
        [error] = json.loads(body)["errors"]
        assert status == 400 and error["code"] == "PAGINATION_NUMBER_INVALID", path
        assert error["detail"] == {"n": n}
        status, _, body = _request(nginx_session.url, "GET", path, {})
        assert status == 200 and json.loads(body), path


SITE_AND_SEARCH = [
    "/",
    "/r/e2e/gzip/index.html",
    "/assets/site.css",
    "/assets/site.js",
    "/assets/favicon.svg",
    "/search.json",
    "/v1/_ping",
    "/v1/search?q=busy",
    "/v1/search?q=E2E%2FBu",
    "/v1/search?q=e2e/",
    "/v1/search?q=nothing-matches",
    "/v1/search?q=%22%3E",
]


def test_site_and_search_answer_alike(
    tree: Tree, nginx_session: daemons.Nginx, serve: Serve
) -> None:
    for path in SITE_AND_SEARCH:
        answers = []
        for base in (nginx_session.url, serve.url):
            status, headers, body = _request(base, "GET", path, {})
            assert status == 200, f"{base}{path}: {status}"
            answers.append(
                (
                    headers["Content-Type"],
                    headers.get("Cache-Control"),
                    headers.get("X-Content-Type-Options"),
                    body,
                )
            )
        assert answers[0] == answers[1], path
    assert answers[0][0] == "application/json"
    assert json.loads(answers[0][3])["query"] == ""  # a term no name can start
    _, headers, _ = _request(serve.url, "GET", "/", {})
    assert headers["Content-Type"] == "text/html; charset=utf-8"


def test_search_answers_docker_shape(tree: Tree, serve: Serve) -> None:
    _, _, body = _request(serve.url, "GET", "/v1/search?q=e2e%2F&n=2", {})
    doc = json.loads(body)
    assert doc["query"] == "e2e/" and doc["num_results"] == 5
    assert [r["name"] for r in doc["results"]] == ["e2e/auto", "e2e/busybox"]
    assert doc["page_size"] == 2 and doc["num_pages"] == 3 and doc["page"] == 1
    assert set(doc["results"][0]) == {
        "name",
        "description",
        "star_count",
        "is_official",
        "is_automated",
    }


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_folder_without_slash_redirects(
    server_kind: str, tree: Tree, nginx_session: daemons.Nginx, serve: Serve
) -> None:
    server = nginx_session if server_kind == "nginx" else serve
    connection = http.client.HTTPConnection(
        server.host.split(":")[0], int(server.host.split(":")[1]), timeout=5
    )
    try:
        connection.request("GET", "/r/e2e/gzip")
        answer = connection.getresponse()
        answer.read()
    finally:
        connection.close()
    assert answer.status == 301
    assert answer.getheader("Location") == "/r/e2e/gzip/"
