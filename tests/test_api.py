from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator

import pytest

from staticreg import api, paths, server
from staticreg import digest as digestmod
from staticreg.gen import nginx
from staticreg.store import MemoryStore

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


def test_paginate_zero_is_an_empty_page_without_link() -> None:
    body = json.dumps({"name": "a", "tags": ["b", "a"]}).encode()
    page, link = api.paginate(body, "tags", "/v2/a/tags/list", 0, None)
    assert json.loads(page) == {"name": "a", "tags": []} and link is None
    empty = json.dumps({"repositories": []}).encode()
    page, link = api.paginate(empty, "repositories", "/v2/_catalog", 0, None)
    assert json.loads(page) == {"repositories": []} and link is None


@pytest.mark.parametrize(
    ("text", "n"), [(None, None), ("", None), ("0", 0), ("2", 2), ("100", 100)]
)
def test_page_size_reads_n(text: str | None, n: int | None) -> None:
    assert api.page_size(text) == n


@pytest.mark.parametrize("text", ["-1", "abc", "1.5", "+3", " 2", "2\n", "1_0", "٣"])
def test_page_size_refuses_anything_but_a_count(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid n {text!r}")):
        api.page_size(text)


def test_pagination_error_names_n_and_is_not_in_the_nginx_config() -> None:
    doc = json.loads(api.error_body("PAGINATION_NUMBER_INVALID", {"n": "-1"}))
    assert doc["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"
    assert doc["errors"][0]["detail"] == {"n": "-1"}
    assert api.ERRORS["PAGINATION_NUMBER_INVALID"][0] == 400
    text = nginx.render_server("/srv/registry", "127.0.0.1:5000")
    assert "pagination_number_invalid" not in text


@pytest.fixture
def served() -> Iterator[str]:
    """``staticreg serve`` in a thread over a two-repository tree in memory."""
    store = MemoryStore()
    store.put(paths.CATALOG, json.dumps({"repositories": ["b/two", "a/one"]}).encode())
    tags = {"name": "a/one", "tags": ["2", "1", "3"]}
    store.put(paths.tags_list("a/one"), json.dumps(tags).encode())
    httpd = server.serve(store, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(address: str, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(address, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/v2/a/one/tags/list", "/v2/_catalog"])
def test_serve_n_zero_answers_an_empty_page(served: str, path: str) -> None:
    status, headers, body = _get(served, f"{path}?n=0")
    field = "tags" if "tags" in path else "repositories"
    assert status == 200 and json.loads(body)[field] == []
    assert "Link" not in headers


@pytest.mark.parametrize("path", ["/v2/a/one/tags/list", "/v2/_catalog"])
@pytest.mark.parametrize("n", ["-1", "abc"])
def test_serve_bad_n_is_a_json_400(served: str, path: str, n: str) -> None:
    status, headers, body = _get(served, f"{path}?n={n}")
    assert status == 400 and headers["Content-Type"] == "application/json"
    [error] = json.loads(body)["errors"]
    assert error["code"] == "PAGINATION_NUMBER_INVALID"
    assert error["detail"] == {"n": n}


def test_serve_pages_on(served: str) -> None:
    status, headers, body = _get(served, "/v2/a/one/tags/list?n=2")
    assert status == 200 and json.loads(body)["tags"] == ["1", "2"]
    assert headers["Link"] == '</v2/a/one/tags/list?n=2&last=2>; rel="next"'
    _, headers, body = _get(served, "/v2/a/one/tags/list?n=2&last=2")
    assert json.loads(body)["tags"] == ["3"] and "Link" not in headers
