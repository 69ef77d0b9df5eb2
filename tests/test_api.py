from __future__ import annotations

import json

import pytest

from staticreg import api, paths
from staticreg import digest as digestmod

HEX = "d" * 64


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("POST", "/v2/app/blobs/uploads/", "UNSUPPORTED"),
        ("PUT", "/v2/app/manifests/v1", "UNSUPPORTED"),
        ("DELETE", f"/v2/app/manifests/sha256:{HEX}", "UNSUPPORTED"),
        ("PATCH", "/v2/app/blobs/uploads/x", "UNSUPPORTED"),
        ("GET", "/v2/app/manifests/sha256:xyz", "DIGEST_INVALID"),
        ("GET", "/v2/app/blobs/sha256:xyz", "DIGEST_INVALID"),
        ("GET", "/v2/app/blobs/notadigest", "DIGEST_INVALID"),
        ("GET", "/v2/app/manifests/-bad", "MANIFEST_UNKNOWN"),
        ("GET", "/v2/App/manifests/v1", "NOT_FOUND"),
        ("GET", "/v2/nothing", "NOT_FOUND"),
        ("GET", "/v1/other", "NOT_FOUND"),
    ],
)
def test_route_errors(method: str, path: str, error: str) -> None:
    assert api.route(method, path).error == error


@pytest.mark.parametrize(
    ("path", "key", "index"),
    [
        ("/", "site/index.html", None),
        ("/r/a/b/", "site/r/a/b/index.html", None),
        ("/r/a/b", "site/r/a/b", "site/r/a/b/index.html"),
        ("/etc/passwd", "site/etc/passwd", "site/etc/passwd/index.html"),
        ("/blobs/sha256/" + HEX, f"site/blobs/sha256/{HEX}", None),
        ("/staticreg.json", "site/staticreg.json", None),
    ],
)
def test_route_site_paths_stay_in_site(path: str, key: str, index: str | None) -> None:
    route = api.route("GET", path)
    assert route.error is None and route.site
    assert route.keys == (key,)
    if index is not None:
        assert route.index == index


@pytest.mark.parametrize(
    ("query", "term"),
    [
        ("q=busy&n=25", "busy"),
        ("n=25&q=e2e%2Fbu", "e2e/bu"),
        ("q=E2E%2fBU", "e2e/bu"),
        ("q=web/", "web/"),
        ("q=..%2F..%2Fstaticreg", ""),
        ("q=%2e%2e", ""),
        ("q=a%22b", ""),
        ("q=a+b", ""),
        ("q=", ""),
        ("n=1", ""),
        ("q=" + "a" * 201, ""),
    ],
)
def test_search_term_reads_q_as_nginx_does(query: str, term: str) -> None:
    assert api.search_term(query) == term


def test_search_page_cuts_to_n_and_keeps_the_total() -> None:
    items = [api.search_item(f"r{n}", "") for n in range(5)]
    body = api.search_body("r", items, 7)
    doc = json.loads(api.search_page(body, "r", 2))
    assert [r["name"] for r in doc["results"]] == ["r0", "r1"]
    assert doc["num_results"] == 7 and doc["page_size"] == 2 and doc["num_pages"] == 4
    assert api.search_page(body, "r", None) == body
    empty = json.loads(api.search_page(None, "zz", 5))
    assert empty == {
        "query": "zz",
        "num_results": 0,
        "num_pages": 0,
        "page_size": 100,
        "page": 1,
        "results": [],
    }


def test_route_manifest_by_digest_is_immutable_and_carries_digest() -> None:
    route = api.route("GET", f"/v2/a/b/manifests/sha256:{HEX}")
    found = digestmod.parse(f"sha256:{HEX}")
    assert route.keys == tuple(paths.manifest_candidates("a/b", found))
    assert route.cache == api.IMMUTABLE
    assert route.digest == f"sha256:{HEX}"
    assert route.unknown == "MANIFEST_UNKNOWN"


def test_route_tag_has_no_digest_header() -> None:
    route = api.route("HEAD", "/v2/a/b/manifests/v1.0")
    assert route.keys == tuple(paths.tag_candidates("a/b", "v1.0"))
    assert route.digest is None and route.cache == api.SHORT


def test_route_blob_requires_the_repository_link() -> None:
    route = api.route("GET", f"/v2/a/blobs/sha256:{HEX}")
    found = digestmod.parse(f"sha256:{HEX}")
    assert route.require == (paths.blob_link("a", found),)
    assert route.keys == (paths.blob(found),)
    assert route.missing == route.unknown == "BLOB_UNKNOWN"


def test_error_bodies_are_spec_json() -> None:
    for code, (status, message) in api.ERRORS.items():
        doc = json.loads(api.error_body(code))
        assert doc == {"errors": [{"code": code, "message": message}]}
        assert status in (400, 404, 405)
        assert "'" not in message  # the nginx template quotes bodies with '


def test_paginate_tags() -> None:
    body = json.dumps({"name": "a", "tags": ["c", "a", "b", "d"]}).encode()
    page, link = api.paginate(body, "tags", "/v2/a/tags/list", 2, None)
    assert json.loads(page)["tags"] == ["a", "b"]
    assert link == '</v2/a/tags/list?n=2&last=b>; rel="next"'
    page, link = api.paginate(body, "tags", "/v2/a/tags/list", 2, "b")
    assert json.loads(page)["tags"] == ["c", "d"] and link is None
