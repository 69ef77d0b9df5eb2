"""The pull API over a tree: which key answers which request, with which headers.

``route`` is the single statement of the HTTP behaviour; ``staticreg serve``
executes it and ``templates/nginx.conf.j2`` states the same rules for nginx (the
tests run one table of requests against both). The API is OCI distribution v1.1,
read-only: https://github.com/opencontainers/distribution-spec/blob/main/spec.md
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from staticreg import digest as digestmod
from staticreg import paths, reference

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_MAX_AGE = 60
SHORT = f"public, max-age={SHORT_MAX_AGE}"
READ_ONLY_MESSAGE = (
    "this registry is published with staticreg and is read-only: "
    "publish images with staticreg publish instead of pushing"
)

# code -> (HTTP status, message), per the distribution spec's error codes.
ERRORS = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "NOT_FOUND": (404, "not found"),
    "UNSUPPORTED": (405, READ_ONLY_MESSAGE),
}

_NAME = reference.NAME_RE.pattern.strip("^$")
_MANIFEST_RE = re.compile(rf"^/v2/(?P<name>{_NAME})/manifests/(?P<ref>[^/]+)$")
_BLOB_RE = re.compile(rf"^/v2/(?P<name>{_NAME})/blobs/(?P<ref>[^/]+)$")
_TAGS_RE = re.compile(rf"^/v2/(?P<name>{_NAME})/tags/list$")
# What the patterns above leave, in the order nginx's fallback locations try it.
_FALLBACKS = (
    (re.compile(rf"^/v2/{_NAME}/manifests/[^/]*:"), "DIGEST_INVALID"),
    (re.compile(rf"^/v2/{_NAME}/manifests/"), "MANIFEST_UNKNOWN"),
    (re.compile(rf"^/v2/{_NAME}/blobs/"), "DIGEST_INVALID"),
)


def error_body(code: str) -> bytes:
    message = ERRORS[code][1]
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


@dataclass(frozen=True)
class Route:
    """How to answer a request: the first existing key of ``keys``, or an error.

    ``error`` answers at once. ``require`` names keys that must exist for the answer
    to be given (a blob's link, a repository's record); ``missing`` is the error
    when one does not, ``unknown`` the error when none of ``keys`` exists.
    """

    keys: tuple[str, ...] = ()
    error: str | None = None
    require: tuple[str, ...] = ()
    missing: str = "NOT_FOUND"
    unknown: str = "NOT_FOUND"
    cache: str = SHORT
    digest: str | None = None
    page_field: str | None = None


def route(method: str, path: str) -> Route:
    if method not in ("GET", "HEAD"):
        return Route(error="UNSUPPORTED")
    if path in ("/v2", "/v2/"):
        return Route(keys=(paths.API_ROOT,), cache="no-cache")
    if path == "/v2/_catalog":
        return Route(keys=(paths.CATALOG,), page_field="repositories")
    for pattern, handler in (
        (_MANIFEST_RE, _manifest),
        (_BLOB_RE, _blob),
        (_TAGS_RE, _tags),
    ):
        match = pattern.match(path)
        if match:
            return handler(match.group("name"), match.groupdict().get("ref"))
    for pattern, code in _FALLBACKS:
        if pattern.match(path):
            return Route(error=code)
    return Route(error="NOT_FOUND")


def _manifest(name: str, ref: str | None) -> Route:
    assert ref is not None
    if ":" in ref:
        if not digestmod.is_valid(ref):
            return Route(error="DIGEST_INVALID")
        found = digestmod.parse(ref)
        return Route(
            keys=tuple(paths.manifest_candidates(name, found)),
            unknown="MANIFEST_UNKNOWN",
            cache=IMMUTABLE,
            digest=ref,
        )
    if not reference.TAG_RE.match(ref):
        return Route(error="MANIFEST_UNKNOWN")
    return Route(
        keys=tuple(paths.tag_candidates(name, ref)), unknown="MANIFEST_UNKNOWN"
    )


def _blob(name: str, ref: str | None) -> Route:
    assert ref is not None
    if not digestmod.is_valid(ref):
        return Route(error="DIGEST_INVALID")
    found = digestmod.parse(ref)
    return Route(
        keys=(paths.blob(found),),
        require=(paths.blob_link(name, found),),
        missing="BLOB_UNKNOWN",
        unknown="BLOB_UNKNOWN",
        cache=IMMUTABLE,
        digest=ref,
    )


def _tags(name: str, _: str | None) -> Route:
    return Route(
        keys=(paths.tags_list(name),), unknown="NAME_UNKNOWN", page_field="tags"
    )


def paginate(
    body: bytes, field: str, path: str, n: int | None, last: str | None
) -> tuple[bytes, str | None]:
    """Apply ``n`` and ``last`` to a tags list or catalog; return body and next link.

    ``field`` is the list to page through: 'tags' or 'repositories'.
    """
    doc = json.loads(body)
    items = sorted(doc[field])
    if last is not None:
        items = [item for item in items if item > last]
    link = None
    if n is not None and len(items) > n:
        items = items[:n]
        link = f'<{path}?n={n}&last={items[-1]}>; rel="next"'
    doc[field] = items
    return json.dumps(doc).encode(), link
