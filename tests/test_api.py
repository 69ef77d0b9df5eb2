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
        ("GET", "/etc/passwd", "NOT_FOUND"),
        ("GET", "/blobs/sha256/" + HEX, "NOT_FOUND"),
    ],
)
def test_route_errors(method: str, path: str, error: str) -> None:
    assert api.route(method, path).error == error


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
