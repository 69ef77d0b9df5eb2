"""Render the CloudFront functions and settings that serve a bucket tree: the pull
API, the browse site and ``docker search``.

A bucket cannot route URLs or set response headers beyond each object's own, so a
CDN in front of it does that work: a viewer-request function maps URLs to keys
(``templates/cdn/viewer-request.js.j2``), a viewer-response function turns the
digest metadata into ``Docker-Content-Digest``, and custom error responses give
origin misses a JSON error body. The routes follow ``api.route``; what a CDN
cannot do is listed in the README this module writes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import jinja2

from staticreg import __version__, api, paths, reference, resources
from staticreg.digest import Digest
from staticreg.errors import StaticregError
from staticreg.gen import indexjson
from staticreg.model import JSON

LAYOUTS = ("bucket", "bucket-blob-copies")
# The one object a missing key is answered with (CloudFront maps the origin's 403
# and 404 to it). One page serves every miss, so it carries the code of the
# commonest one: `docker pull` of a tag that does not exist.
ERROR_PAGE = paths.LAYOUTS["bucket"].error_page or "errors/not-found.json"
ERROR_PAGE_CODE = "MANIFEST_UNKNOWN"
ERROR_PAGE_BODY_FILE = "not-found.json"
# S3 stores user metadata as x-amz-meta-<name>; store/s3.py writes the digest
# under the name 'docker-content-digest'.
DIGEST_METADATA_HEADER = "x-amz-meta-docker-content-digest"
# CloudFront rejects function code over 10 KB (the tests hold the templates to it).
MAX_FUNCTION_SIZE = 10 * 1024
# CloudFront caches a miss this long: a tag published a moment later shows up soon.
ERROR_CACHING_SECONDS = 10

# Keys hold sha256 digests only; anything else in a digest URL is DIGEST_INVALID.
_DIGEST_RE = r"^sha256:[a-f0-9]{64}$"
_NAME_RE = reference.NAME_RE.pattern.strip("^$")
_TAG_RE = reference.TAG_RE.pattern
# Errors the viewer-request function answers itself, without an origin trip.
_GENERATED = ("UNSUPPORTED", "DIGEST_INVALID", "MANIFEST_UNKNOWN", "NOT_FOUND")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*$")
# Placeholders the functions fill in with the parts of a URL.
_NAME, _TAG, _HEX, _TERM = "{name}", "{tag}", "{hex}", "{term}"
# What a site URL may be: parts that start with no '.', so that no '.', '..' or
# '.staticreg' part and no '//' (a redirect to another host) get through. Site
# keys hold repository names, page numbers and asset names: all of this form.
_SITE_PART = "[A-Za-z0-9_-][A-Za-z0-9._-]*"
_SITE_PATH_RE = f"^/(?:{_SITE_PART}/)*(?:{_SITE_PART})?$"


@dataclass(frozen=True)
class Target:
    """What the functions serve: a bucket layout, under a key prefix ('' for none)."""

    layout: str
    prefix: str = ""


def normalize_prefix(prefix: str) -> str:
    """``prefix`` without slashes at the ends; raise if it cannot be a URL path."""
    stripped = prefix.strip("/")
    parts = stripped.split("/")
    if stripped and (not _PREFIX_RE.match(stripped) or {".", ".."} & set(parts)):
        raise StaticregError(
            f"invalid prefix {prefix!r}: expected path parts of letters, digits, "
            "'.', '_', '~' or '-', joined by '/'",
            hint="give the PREFIX of s3://BUCKET/PREFIX",
        )
    return stripped


def choose(
    settings: JSON | None,
    root_prefix: str | None,
    layout: str | None,
    prefix: str | None,
) -> Target:
    """The target from a tree's settings and root URL, else from the flags.

    ``settings`` and ``root_prefix`` describe the tree when one could be read;
    ``layout`` and ``prefix`` are the flags (None when not given). A flag that
    contradicts the tree is an error rather than silently ignored.
    """
    recorded = None if settings is None else str(settings.get("layout", "directory"))
    if recorded is not None and recorded not in LAYOUTS:
        raise StaticregError(
            f"cannot write CDN functions for a tree with layout {recorded!r}: "
            f"they serve the {' and '.join(LAYOUTS)} layouts of an S3 tree",
            hint="serve a directory tree with staticreg nginx, or publish to "
            "s3://BUCKET/PREFIX",
        )
    found = _agree("layout", recorded, layout)
    if found is None:
        raise StaticregError(
            "cannot tell the tree's layout: --root is not a readable tree",
            hint=f"give --layout ({' or '.join(LAYOUTS)}) or --root s3://BUCKET/PREFIX",
        )
    # The settings may record the prefix; else the root URL holds it, also for a
    # tree not published yet.
    tree_prefix = root_prefix
    if settings is not None and "prefix" in settings:
        tree_prefix = settings["prefix"]
    if tree_prefix is not None:
        tree_prefix = normalize_prefix(str(tree_prefix))
    given = None if prefix is None else normalize_prefix(prefix)
    return Target(found, _agree("prefix", tree_prefix, given) or "")


def _agree(what: str, recorded: str | None, given: str | None) -> str | None:
    if recorded is not None and given is not None and recorded != given:
        raise StaticregError(
            f"--{what} {given!r} contradicts the tree, whose {what} is {recorded!r}",
            hint=f"drop --{what}",
        )
    return recorded if recorded is not None else given


def render(target: Target) -> dict[str, str]:
    """Every file of the CDN set-up, by file name."""
    if target.layout not in LAYOUTS:
        raise ValueError(f"unknown bucket layout {target.layout!r}")
    files = {
        "viewer-request.js": _render_template("viewer-request.js.j2", target),
        "viewer-response.js": _render_template("viewer-response.js.j2", target),
        "error-responses.json": render_error_responses(target),
        ERROR_PAGE_BODY_FILE: error_page_body().decode() + "\n",
        "README.md": _render_template("README.md.j2", target),
    }
    return files


def error_page_body() -> bytes:
    """The body of ``ERROR_PAGE``, the object every missing key answers with."""
    return api.error_body(ERROR_PAGE_CODE)


def error_page_path(target: Target) -> str:
    """The URL path CloudFront fetches the error page from: its key, prefixed."""
    return f"{_prefix_path(target)}/{ERROR_PAGE}"


def render_error_responses(target: Target) -> str:
    """The distribution's ``CustomErrorResponses``: S3 answers a missing key with
    403 (no s3:ListBucket, as with Origin Access Control) or 404; both become a
    404 with the JSON error page."""
    items = [
        {
            "ErrorCode": code,
            "ResponsePagePath": error_page_path(target),
            "ResponseCode": "404",
            "ErrorCachingMinTTL": ERROR_CACHING_SECONDS,
        }
        for code in (403, 404)
    ]
    return json.dumps({"Quantity": len(items), "Items": items}, indent=2) + "\n"


def key_templates(layout_name: str) -> dict[str, str]:
    """The key answering each kind of URL, relative to the prefix, with
    ``{name}``, ``{tag}`` and ``{hex}`` where the URL's parts go."""
    layout = paths.layout_named(layout_name)
    digest = Digest("sha256", _HEX)
    # With blob copies each repository holds its own copy under the URL's path;
    # otherwise every repository answers from the one shared key.
    blob = (
        layout.blob_link(_NAME, digest) if layout.copies_blobs else layout.blob(digest)
    )
    return {
        "root": layout.api_root,
        "catalog": layout.catalog,
        "tags": layout.tags_list(_NAME),
        "tag": layout.tag(_NAME, _TAG, ""),
        "manifest": layout.manifest(_NAME, digest, ""),
        "blob": blob,
        "referrers": layout.referrers(_NAME, digest),
    }


def site_settings() -> dict[str, str]:
    """How the function maps a site URL: ``/PATH/`` to ``site/PATH/index.html``,
    a file's URL to its key. A bucket cannot tell a folder, so a URL without its
    final '/' is a folder (redirected, as nginx does) when it is a repository's
    (``/r/NAME``, which may hold a '.') or its last part has no '.' (every
    file of the site has an extension)."""
    page = paths.site_repository(_NAME)[len(paths.SITE) :]
    before, _, after = page.partition(_NAME)
    return {
        "folder": paths.SITE,
        "index": paths.site_home(1)[len(paths.SITE) + 1 :],
        "repositories": before,
        "repository_page": f"^{re.escape(before)}.+{re.escape(after)}$",
        "path": _SITE_PATH_RE,
    }


def search_settings() -> dict[str, str | int]:
    """How the function answers ``/v1/search``: the key of a term's answer, the
    character '/' is written as there, the term's form, and the empty answer it
    gives itself to a term that cannot have one."""
    head, _, tail = paths.search_result(_TERM).partition(_TERM)
    return {
        "key": paths.search_result(_TERM),
        "slash": paths.search_result("/").removeprefix(head).removesuffix(tail),
        "term": api.SEARCH_TERM_RE.pattern,
        "max": api.MAX_SEARCH_TERM,
        # indexjson.terms decides the shortest term answered; ask it, not a copy.
        "shortest": min(map(len, indexjson.terms("a" * api.MAX_SEARCH_TERM, ""))),
        "empty": api.search_body(_TERM, [], 0).decode(),
    }


def _prefix_path(target: Target) -> str:
    return f"/{target.prefix}" if target.prefix else ""


def _max_age(cache_control: str) -> int:
    found = re.search(r"max-age=(\d+)", cache_control)
    if found is None:
        raise ValueError(f"no max-age in Cache-Control {cache_control!r}")
    return int(found.group(1))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.folder("templates") / "cdn")),
        # JavaScript and Markdown, not HTML: values reach the JS through tojson.
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _render_template(template: str, target: Target) -> str:
    errors = {
        code: [api.ERRORS[code][0], api.error_body(code).decode()]
        for code in _GENERATED
    }
    return (
        _environment()
        .get_template(template)
        .render(
            version=__version__,
            layout=target.layout,
            prefix=target.prefix,
            prefix_path=_prefix_path(target),
            keys=key_templates(target.layout),
            name_re=_NAME_RE,
            tag_re=_TAG_RE,
            digest_re=_DIGEST_RE,
            errors=errors,
            api_version=api.API_VERSION_HEADER[1],
            digest_header=DIGEST_METADATA_HEADER,
            error_page=ERROR_PAGE,
            error_page_path=error_page_path(target),
            error_page_body=error_page_body().decode(),
            error_caching=ERROR_CACHING_SECONDS,
            short=api.SHORT,
            short_max_age=api.SHORT_MAX_AGE,
            ping=paths.PING,
            site=site_settings(),
            site_headers={name.lower(): value for name, value in api.SITE_HEADERS},
            search=search_settings(),
            search_limit=api.SEARCH_LIMIT,
            search_results=paths.SEARCH_RESULTS,
            immutable_max_age=_max_age(api.IMMUTABLE),
        )
    )
