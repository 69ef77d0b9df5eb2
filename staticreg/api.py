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
from staticreg.model import JSON

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
FILTERS_HEADER = "OCI-Filters-Applied"
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
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
}
# Codes only ``staticreg serve`` answers: nginx ignores ``n`` and never pages.
SERVE_ONLY_ERRORS = frozenset({"PAGINATION_NUMBER_INVALID"})

_NAME = reference.NAME_RE.pattern.strip("^$")
_MANIFEST_RE = re.compile(rf"^/v2/(?P<name>{_NAME})/manifests/(?P<ref>[^/]+)$")
_BLOB_RE = re.compile(rf"^/v2/(?P<name>{_NAME})/blobs/(?P<ref>[^/]+)$")
_TAGS_RE = re.compile(rf"^/v2/(?P<name>{_NAME})/tags/list$")
_REFERRERS_RE = re.compile(rf"^/v2/(?P<name>{_NAME})/referrers/(?P<ref>[^/]+)$")
_PAGE_SIZE_RE = re.compile(r"[0-9]+")
# What the patterns above leave, in the order nginx's fallback locations try it.
_FALLBACKS = (
    (re.compile(rf"^/v2/{_NAME}/manifests/[^/]*:"), "DIGEST_INVALID"),
    (re.compile(rf"^/v2/{_NAME}/manifests/"), "MANIFEST_UNKNOWN"),
    (re.compile(rf"^/v2/{_NAME}/blobs/"), "DIGEST_INVALID"),
    (re.compile(rf"^/v2/{_NAME}/referrers/"), "DIGEST_INVALID"),
)


def error_body(code: str, detail: JSON | None = None) -> bytes:
    error: JSON = {"code": code, "message": ERRORS[code][1]}
    if detail is not None:
        error["detail"] = detail
    return json.dumps({"errors": [error]}).encode()


@dataclass(frozen=True)
class Route:
    """How to answer a request: the first existing key of ``keys``, or an error.

    ``error`` answers at once. ``require`` names keys that must exist for the answer
    to be given (a blob's link, a repository's record); ``missing`` is the error
    when one does not, ``unknown`` the error when none of ``keys`` exists.
    ``search`` answers from the precomputed results for the query's term (an
    empty result when there are none, never an error). ``index`` is the page a
    folder's URL without its final '/' redirects to, as nginx's static module
    does; ``site`` marks pages of the browse site, which get ``SITE_HEADERS``.
    """

    keys: tuple[str, ...] = ()
    error: str | None = None
    require: tuple[str, ...] = ()
    missing: str = "NOT_FOUND"
    unknown: str = "NOT_FOUND"
    cache: str = SHORT
    digest: str | None = None
    page_field: str | None = None
    referrers: digestmod.Digest | None = None
    search: bool = False
    index: str | None = None
    site: bool = False


def route(method: str, path: str) -> Route:
    if method not in ("GET", "HEAD"):
        return Route(error="UNSUPPORTED")
    if path == "/v2":
        return Route(index=paths.API_ROOT)  # redirected to /v2/, as nginx does
    if path == "/v2/":
        return Route(keys=(paths.API_ROOT,), cache="no-cache")
    if path == "/v2/_catalog":
        return Route(keys=(paths.CATALOG,), page_field="repositories")
    for pattern, handler in (
        (_MANIFEST_RE, _manifest),
        (_BLOB_RE, _blob),
        (_TAGS_RE, _tags),
        (_REFERRERS_RE, _referrers),
    ):
        match = pattern.match(path)
        if match:
            return handler(match.group("name"), match.groupdict().get("ref"))
    for pattern, code in _FALLBACKS:
        if pattern.match(path):
            return Route(error=code)
    if path == "/v1/_ping":
        return Route(keys=(paths.PING,), cache="no-cache")
    if path == "/v1/search":
        return Route(search=True)
    if path.startswith(("/v1/", "/v2/")):
        return Route(error="NOT_FOUND")
    return _site(path)


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


def _referrers(name: str, ref: str | None) -> Route:
    # Any well-formed digest answers 200: an empty index when nothing refers to it.
    assert ref is not None
    if not digestmod.is_valid(ref):
        return Route(error="DIGEST_INVALID")
    found = digestmod.parse(ref)
    return Route(
        keys=(paths.referrers(name, found), paths.EMPTY_REFERRERS), referrers=found
    )


def _tags(name: str, _: str | None) -> Route:
    return Route(
        keys=(paths.tags_list(name),), unknown="NAME_UNKNOWN", page_field="tags"
    )


def page_size(text: str | None) -> int | None:
    """The ``n`` of a tags list or catalog query: None when absent or empty.

    Raises ValueError for anything but a non-negative decimal number, which the
    distribution registry answers with 400 ``PAGINATION_NUMBER_INVALID``.
    """
    if not text:
        return None
    if not _PAGE_SIZE_RE.fullmatch(text):
        raise ValueError(f"invalid n {text!r}: expected a number of 0 or more")
    return int(text)


def paginate(
    body: bytes, field: str, path: str, n: int | None, last: str | None
) -> tuple[bytes, str | None]:
    """Apply ``n`` and ``last`` to a tags list or catalog; return body and next link.

    ``field`` is the list to page through: 'tags' or 'repositories'. ``n`` comes
    from ``page_size``; 0 asks for an empty page, which has no next link, as in
    the distribution registry.
    """
    assert n is None or n >= 0, n
    doc = json.loads(body)
    items = sorted(doc[field])
    if last is not None:
        items = [item for item in items if item > last]
    link = None
    if n is not None and len(items) > n:
        items = items[:n]
        if items:
            link = f'<{path}?n={n}&last={items[-1]}>; rel="next"'
    doc[field] = items
    return json.dumps(doc).encode(), link


# The browse site and docker search ----------------------------------------------

# Headers of every page of the site: the pages load nothing from elsewhere (their
# own <meta> policy says so), and a browser must not guess another content type.
SITE_HEADERS = (("X-Content-Type-Options", "nosniff"),)
# Content-Type of the site's files by extension; JSON is UTF-8 by definition.
SITE_TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "json": "application/json",
}
SEARCH_LIMIT = 100
MAX_SEARCH_TERM = 200
# What a precomputed term can be: a prefix of a repository name (so no '..' part
# and no leading '/') or of a description word. nginx checks the same pattern.
SEARCH_TERM_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*/?$")


def _site(path: str) -> Route:
    if path.endswith("/"):
        return Route(keys=(f"{paths.SITE}{path}index.html",), site=True)
    key = f"{paths.SITE}{path}"
    return Route(keys=(key,), index=f"{key}/index.html", site=True)


def search_term(query: str) -> str:
    """The term of a ``/v1/search`` query string, read as nginx reads it.

    The raw first ``q`` argument (nginx's ``$arg_q``), with '%2F' decoded, as the
    Docker engine encodes '/', and lower-cased; '' when it cannot be a term.
    """
    raw = ""
    for argument in query.split("&"):
        name, _, value = argument.partition("=")
        if name.lower() == "q":
            raw = value
            break
    term = re.sub("%2f", "/", raw, flags=re.IGNORECASE).lower()
    if len(term) > MAX_SEARCH_TERM or not SEARCH_TERM_RE.match(term):
        return ""
    return term


def search_item(name: str, description: str) -> str:
    """One result of ``/v1/search``, as the Docker engine reads it (JSON text)."""
    return json.dumps(
        {
            "name": name,
            "description": description,
            "star_count": 0,
            "is_official": False,
            "is_automated": False,
        }
    )


def search_body(
    term: str, items: list[str], total: int, page_size: int = SEARCH_LIMIT
) -> bytes:
    """The answer to ``/v1/search``: Docker Hub's shape, ``items`` from
    ``search_item``. ``total`` counts every match, ``items`` the first of them."""
    head = json.dumps(
        {
            "query": term,
            "num_results": total,
            "num_pages": -(-total // page_size),
            "page_size": page_size,
            "page": 1,
        }
    )
    return f'{head[:-1]}, "results": [{", ".join(items)}]}}'.encode()


def search_page(body: bytes | None, term: str, n: int | None) -> bytes:
    """Cut a precomputed answer to ``n`` results (``staticreg serve`` only)."""
    if body is None:
        return search_body(term, [], 0)
    if n is None or not 0 < n < SEARCH_LIMIT:
        return body
    doc = json.loads(body)
    items = [json.dumps(item) for item in doc["results"][:n]]
    return search_body(doc["query"], items, doc["num_results"], n)
