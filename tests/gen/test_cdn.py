"""staticreg cdn: the generated CloudFront functions, run under node against
events shaped as CloudFront documents them, plus the error responses and the CLI.
https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from gen import synthetic

from staticreg import api, paths
from staticreg.cli import cli
from staticreg.errors import StaticregError
from staticreg.gen import cdn, site

from harness import cloudfront
from harness.cloudfront import request_event

JSON = Any
HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"
LONG_TAG = "v" + "1" * 127
NAMES = ("app", "team/sub/app", "a.b_c__d-e/x--y", "x/manifests/y", "x/tags")
TAGS = ("latest", "1.2.3-rc.1", "_under", "V1.0", LONG_TAG)
TARGETS = [
    cdn.Target(layout, prefix) for layout in cdn.LAYOUTS for prefix in ("", "reg/v1")
]

Run = Callable[[cdn.Target, str, list[JSON]], list[JSON]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Call a generated function's handler on each event; one node per call."""
    work = tmp_path_factory.mktemp("cdn")
    rendered: dict[cdn.Target, Path] = {}

    def call(target: cdn.Target, function: str, events: list[JSON]) -> list[JSON]:
        if target not in rendered:
            folder = work / f"{target.layout}-{target.prefix.replace('/', '_')}"
            folder.mkdir()
            for name, text in cdn.render(target).items():
                (folder / name).write_text(text)
            rendered[target] = folder
        return cloudfront.run_function(rendered[target] / function, events)

    return call


def response_event(status: int, headers: dict[str, str]) -> JSON:
    return cloudfront.response_event(status, headers, f"/v2/app/blobs/{DIGEST}")


def expected_keys(layout: str, name: str, tag: str) -> dict[str, str]:
    """The key each URL maps to in ``layout``, written out rather than computed."""
    urls = [
        "/v2/",
        "/v2/_catalog",
        f"/v2/{name}/tags/list",
        f"/v2/{name}/manifests/{tag}",
        f"/v2/{name}/manifests/{DIGEST}",
        f"/v2/{name}/blobs/{DIGEST}",
        f"/v2/{name}/referrers/{DIGEST}",
    ]
    if layout == "bucket-blob-copies":
        return {url: url[1:] for url in urls} | {"/v2": "v2/"}
    keys = [
        "v2/index.json",
        "v2/_catalog.json",
        f"repositories/{name}/_tags.json",
        f"repositories/{name}/_tags/{tag}",
        f"repositories/{name}/_manifests/sha256/{HEX}",
        f"blobs/sha256/{HEX}",
        f"repositories/{name}/_referrers/sha256/{HEX}",
    ]
    return dict(zip(urls, keys, strict=True)) | {"/v2": "v2/index.json"}


# Viewer request: URLs to keys ------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_viewer_request_maps_every_url_kind_to_its_key(
    run: Run, target: cdn.Target, method: str
) -> None:
    expected: dict[str, str] = {}
    for name, tag in zip(NAMES, TAGS, strict=True):
        expected |= expected_keys(target.layout, name, tag)
    urls = sorted(expected)
    results = run(target, "viewer-request.js", [request_event(method, u) for u in urls])
    prefix = f"/{target.prefix}" if target.prefix else ""
    assert {url: r.get("uri") for url, r in zip(urls, results, strict=True)} == {
        url: f"{prefix}/{key}" for url, key in expected.items()
    }
    assert all(r["method"] == method and "statusCode" not in r for r in results)


def test_viewer_request_leaves_range_alone_and_drops_the_query(run: Run) -> None:
    event = request_event(
        "GET",
        f"/v2/app/blobs/{DIGEST}",
        headers={"range": "bytes=100-", "accept": "*/*"},
        querystring={"acl": "", "versionId": "x"},
    )
    (result,) = run(cdn.Target("bucket"), "viewer-request.js", [event])
    assert result["uri"] == f"/blobs/sha256/{HEX}"
    assert result["headers"]["range"] == {"value": "bytes=100-"}
    assert result["headers"]["accept"] == {"value": "*/*"}
    assert result["querystring"] == {}


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_viewer_request_passes_the_error_page_through(
    run: Run, target: cdn.Target
) -> None:
    # CloudFront may fetch the custom error page through the function; its path is
    # already its key, so it must come out unchanged.
    path = cdn.error_page_path(target)
    (result,) = run(target, "viewer-request.js", [request_event("GET", path)])
    assert result["uri"] == path
    assert path.endswith("/errors/not-found.json")


# Viewer request: answers without an origin trip ------------------------------------

ERROR_CASES = [
    ("POST", "/v2/app/blobs/uploads/", "UNSUPPORTED"),
    ("PUT", "/v2/app/manifests/v1", "UNSUPPORTED"),
    ("DELETE", f"/v2/app/manifests/{DIGEST}", "UNSUPPORTED"),
    ("PATCH", "/v2/app/blobs/uploads/x", "UNSUPPORTED"),
    ("OPTIONS", "/v2/", "UNSUPPORTED"),
    ("GET", "/v2/app/manifests/sha256:xyz", "DIGEST_INVALID"),
    ("GET", f"/v2/app/manifests/sha256:{HEX[:-1]}", "DIGEST_INVALID"),
    ("GET", f"/v2/app/blobs/sha256:{HEX.upper()}", "DIGEST_INVALID"),
    ("GET", "/v2/app/blobs/notadigest", "DIGEST_INVALID"),
    ("GET", f"/v2/app/blobs/{DIGEST}/extra", "DIGEST_INVALID"),
    ("GET", f"/v2/team/app/referrers/sha512:{HEX * 2}", "DIGEST_INVALID"),
    ("GET", "/v2/app/referrers/latest", "DIGEST_INVALID"),
    ("GET", "/v2/app/manifests/a:b/c", "DIGEST_INVALID"),
    ("GET", "/v2/app/manifests/-bad", "MANIFEST_UNKNOWN"),
    ("GET", f"/v2/app/manifests/{LONG_TAG}x", "MANIFEST_UNKNOWN"),
    ("GET", "/v2/app/manifests/v1/extra", "MANIFEST_UNKNOWN"),
    ("GET", "/v2/App/manifests/v1", "NOT_FOUND"),
    ("GET", "/v2/app/_tags.json", "NOT_FOUND"),
    ("GET", "/v2/../staticreg.json", "NOT_FOUND"),
    ("GET", "/v2//app/tags/list", "NOT_FOUND"),
    ("GET", "/v1/", "NOT_FOUND"),
    ("GET", "/v1/_ping.json", "NOT_FOUND"),
    ("GET", "/v1/search/", "NOT_FOUND"),
    ("GET", "/v1/search/app.json", "NOT_FOUND"),
    ("GET", "/v1/search/..%2F..%2Fstaticreg.json", "NOT_FOUND"),
    ("HEAD", "/v1/repositories/app/images", "NOT_FOUND"),
    # Site URLs that could leave site/ or name a private key: refused before S3.
    ("GET", "/.staticreg/lock", "NOT_FOUND"),
    ("GET", "/r/../../staticreg.json", "NOT_FOUND"),
    ("GET", "/r/./app/", "NOT_FOUND"),
    ("GET", "/r/app/..", "NOT_FOUND"),
    ("GET", "/%2e%2e/staticreg.json", "NOT_FOUND"),
    ("GET", "/r/%2E%2E%2Fstaticreg.json", "NOT_FOUND"),
    ("GET", "/r/app%2F..%2F..%2Fblobs", "NOT_FOUND"),
    ("GET", "//evil.example/", "NOT_FOUND"),
    ("GET", "//evil.example", "NOT_FOUND"),
    ("GET", "/r//app/", "NOT_FOUND"),
    ("GET", "/r/app\\..\\x", "NOT_FOUND"),
    ("HEAD", "/assets/.hidden", "NOT_FOUND"),
]


@pytest.mark.parametrize("layout", cdn.LAYOUTS)
def test_viewer_request_answers_errors_with_the_json_body(
    run: Run, layout: str
) -> None:
    target = cdn.Target(layout, "reg")
    events = [request_event(method, uri) for method, uri, _ in ERROR_CASES]
    results = run(target, "viewer-request.js", events)
    for (method, uri, code), result in zip(ERROR_CASES, results, strict=True):
        status = api.ERRORS[code][0]
        assert result["statusCode"] == status, (method, uri, result)
        headers = {k: v["value"] for k, v in result["headers"].items()}
        assert headers["content-type"] == "application/json"
        assert headers["docker-distribution-api-version"] == "registry/2.0"
        assert (headers.get("allow") == "GET, HEAD") == (status == 405)
        if method == "HEAD":
            assert "body" not in result  # a HEAD answer has no body
        else:
            assert result["body"] == {
                "encoding": "text",
                "data": api.error_body(code).decode(),
            }, (method, uri)


def test_viewer_request_errors_agree_with_the_api(run: Run) -> None:
    """The function refuses what ``api.route`` refuses, with the same code (sha512
    digests aside: a bucket holds sha256 keys only)."""
    cases = [
        (method, uri, code)
        for method, uri, code in ERROR_CASES
        if method != "HEAD" and "sha512" not in uri and "errors" not in uri
    ]
    results = run(
        cdn.Target("bucket"),
        "viewer-request.js",
        [request_event(method, uri) for method, uri, _ in cases],
    )
    for (method, uri, code), result in zip(cases, results, strict=True):
        api_error = api.route(method, uri).error
        if api_error is not None:
            assert api_error == code, (method, uri)
        assert json.loads(result["body"]["data"])["errors"][0]["code"] == code


# Viewer request: the browse site and docker search ------------------------------

# URL -> key, as nginx's `location /` (root site/, index index.html) answers them.
SITE_KEYS = {
    "/": "site/index.html",
    "/index.html": "site/index.html",
    "/page/2/": "site/page/2/index.html",
    "/page/2/index.html": "site/page/2/index.html",
    "/r/app/": "site/r/app/index.html",
    "/r/team/sub/app/index.html": "site/r/team/sub/app/index.html",
    "/r/a.b_c__d-e/x--y/": "site/r/a.b_c__d-e/x--y/index.html",
    "/r/x/manifests/y/": "site/r/x/manifests/y/index.html",
    "/r/index.html/": "site/r/index.html/index.html",
    "/assets/site.css": "site/assets/site.css",
    "/assets/site.js": "site/assets/site.js",
    "/assets/favicon.svg": "site/assets/favicon.svg",
    "/index.json": "site/index.json",
    "/search.json": "site/search.json",
    # Other keys of the tree, asked for by their own path, stay under site/.
    "/staticreg.json": "site/staticreg.json",
    "/repositories/app/_tags.json": "site/repositories/app/_tags.json",
    "/site/index.html": "site/site/index.html",
    "/v1.json": "site/v1.json",
}
# URLs of folders without their final '/': redirected, as nginx redirects them.
SITE_FOLDERS = [
    "/r/app",
    "/r/team/sub/app",
    "/r/my.app",
    "/r/index.html",
    "/r/x/manifests/y",
    "/page/2",
    "/assets",
    "/r",
    f"/blobs/sha256/{HEX}",
]


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_viewer_request_maps_site_urls_and_ping_to_their_keys(
    run: Run, target: cdn.Target, method: str
) -> None:
    expected = SITE_KEYS | {"/v1/_ping": "v1/_ping.json"}
    urls = sorted(expected)
    # The home page's search box sends ?q=; it must not reach the bucket.
    events = [request_event(method, url, querystring={"q": "app"}) for url in urls]
    results = run(target, "viewer-request.js", events)
    prefix = f"/{target.prefix}" if target.prefix else ""
    assert {url: r.get("uri") for url, r in zip(urls, results, strict=True)} == {
        url: f"{prefix}/{key}" for url, key in expected.items()
    }
    assert all(r["method"] == method and r["querystring"] == {} for r in results)


def test_viewer_request_site_keys_agree_with_the_api() -> None:
    for url, key in SITE_KEYS.items():
        route = api.route("GET", url)
        assert route.site and route.keys == (key,), url
    for url in SITE_FOLDERS:
        assert api.route("GET", url).index == f"site{url}/index.html", url


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_viewer_request_redirects_a_folder_without_its_slash(
    run: Run, target: cdn.Target, method: str
) -> None:
    events = [request_event(method, url) for url in SITE_FOLDERS]
    results = run(target, "viewer-request.js", events)
    for url, result in zip(SITE_FOLDERS, results, strict=True):
        assert result["statusCode"] == 301, (url, result)
        assert "body" not in result
        # The viewer's path: the key prefix is no part of the URL.
        assert {k: v["value"] for k, v in result["headers"].items()} == {
            "location": f"{url}/",
            "cache-control": api.SHORT,
            "docker-distribution-api-version": "registry/2.0",
            "x-content-type-options": "nosniff",
        }
    # Where the redirect leads is the folder's page.
    (followed,) = run(target, "viewer-request.js", [request_event("GET", "/r/my.app/")])
    assert followed["uri"].endswith("/site/r/my.app/index.html")


# `q` as CloudFront hands it over (raw, or already decoded) -> the stored term, or
# None when the function answers the empty result itself.
SEARCH_CASES: list[tuple[dict[str, str], str | None]] = [
    ({"q": "busy", "n": "25"}, "busy"),
    ({"n": "25", "q": "e2e%2Fbu"}, "e2e/bu"),
    ({"q": "E2E%2fBU"}, "e2e/bu"),
    ({"Q": "App"}, "app"),
    ({"q": "web/"}, "web/"),
    ({"q": "team/sub/app"}, "team/sub/app"),
    ({"q": "a.b_c__d-e"}, "a.b_c__d-e"),
    ({"q": "ab"}, "ab"),
    ({"q": "a" * api.MAX_SEARCH_TERM}, "a" * api.MAX_SEARCH_TERM),
    ({"q": "a"}, None),
    ({"q": "../../staticreg"}, None),
    ({"q": "..%2F..%2Fstaticreg"}, None),
    ({"q": "..%2f..%2fstaticreg"}, None),
    ({"q": "app%2F..%2F..%2Fstaticreg"}, None),
    ({"q": "%2e%2e"}, None),
    ({"q": ".."}, None),
    ({"q": "%2Fapp"}, None),
    ({"q": "a~b"}, None),
    ({"q": "a%22b"}, None),
    ({"q": 'a"b'}, None),
    ({"q": "a+b"}, None),
    ({"q": "a b"}, None),
    ({"q": "app%00"}, None),
    ({"q": "a" * (api.MAX_SEARCH_TERM + 1)}, None),
    ({"q": "ab" * 4000}, None),
    ({"q": ""}, None),
    ({"n": "1"}, None),
    ({}, None),
]


def search_event(method: str, query: dict[str, str]) -> JSON:
    return request_event(method, "/v1/search", querystring=query)


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_viewer_request_maps_search_terms_to_answers_or_answers_empty(
    run: Run, target: cdn.Target, method: str
) -> None:
    events = [search_event(method, query) for query, _ in SEARCH_CASES]
    results = run(target, "viewer-request.js", events)
    prefix = f"/{target.prefix}" if target.prefix else ""
    for (query, term), result in zip(SEARCH_CASES, results, strict=True):
        if term is not None:
            key = "v1/search/" + term.replace("/", "~") + ".json"
            assert result.get("uri") == f"{prefix}/{key}", (query, result)
            assert result["querystring"] == {}
            continue
        assert result["statusCode"] == 200, (query, result)
        headers = {k: v["value"] for k, v in result["headers"].items()}
        assert headers == {
            "content-type": "application/json",
            "cache-control": api.SHORT,
            "docker-distribution-api-version": "registry/2.0",
        }
        if method == "HEAD":
            assert "body" not in result
            continue
        # The term is echoed only when it is well formed (here: too short).
        echoed = query.get("q", "") if query.get("q") == "a" else ""
        assert result["body"] == {
            "encoding": "text",
            "data": api.search_body(echoed, [], 0).decode(),
        }
        assert json.loads(result["body"]["data"])["results"] == []


def test_viewer_request_search_terms_agree_with_the_api(run: Run) -> None:
    """The function reads q as ``api.search_term`` does (nginx and serve)."""
    cases = [(query, term) for query, term in SEARCH_CASES if "Q" not in query]
    results = run(
        cdn.Target("bucket"),
        "viewer-request.js",
        [search_event("GET", query) for query, _ in cases],
    )
    for (query, term), result in zip(cases, results, strict=True):
        raw = "&".join(f"{name}={value}" for name, value in query.items())
        expected = api.search_term(raw)
        if term is None:
            # No answer is stored for a term shorter than those indexjson writes.
            assert expected == "" or len(expected) < 2, query
            assert "statusCode" in result
        else:
            assert expected == term, query
            assert result["uri"] == "/" + paths.search_result(expected)


def test_viewer_request_search_takes_the_first_of_repeated_terms(run: Run) -> None:
    event = search_event("GET", {})
    event["request"]["querystring"] = {
        "q": {"value": "app", "multiValue": [{"value": "app"}, {"value": "zz"}]}
    }
    (result,) = run(
        cdn.Target("bucket-blob-copies", "reg"), "viewer-request.js", [event]
    )
    assert result["uri"] == "/reg/v1/search/app.json"


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_viewer_request_reaches_every_key_the_site_generator_writes(
    run: Run, target: cdn.Target
) -> None:
    """Round trip: generate the site and the search answers, then ask for each
    page and answer by the URL a browser or docker uses."""
    store = synthetic.tree(0, 0)
    names = ["app", "team/sub/app", "web.app", "x/manifests/y"]
    for name in names:
        synthetic.repository(store, name, 1, f"Serves {name} pages")
    synthetic.catalog_of(store, names)
    site.regenerate(store)
    written = {k for k in store.list("") if k.startswith(("site/", "v1/"))}
    pages = [k.removeprefix("site") for k in written if k.startswith("site/")]
    urls = ["/v1/_ping"] + [p.removesuffix("index.html") for p in pages]
    answers = [k for k in written if k.startswith("v1/search/")]
    # As docker sends a term: '/' percent-encoded, here in upper case too.
    terms = [k[len("v1/search/") : -len(".json")] for k in answers]
    queries = [{"q": term.replace("~", "%2F").upper()} for term in terms]
    events = [request_event("GET", url) for url in urls]
    events += [search_event("GET", query) for query in queries]
    results = run(target, "viewer-request.js", events)
    prefix = f"/{target.prefix}/" if target.prefix else "/"
    reached = {r["uri"].removeprefix(prefix) for r in results}
    assert reached == written
    assert "site/r/web.app/index.html" in reached and "v1/search/web.json" in reached


# Viewer response --------------------------------------------------------------------

S3_HEADERS = {
    "content-type": "application/vnd.oci.image.manifest.v1+json",
    "content-length": "1234",
    "cache-control": api.IMMUTABLE,
    "etag": '"abc"',
    "accept-ranges": "bytes",
    "last-modified": "Tue, 01 Apr 2025 10:00:00 GMT",
    "server": "AmazonS3",
    "x-amz-meta-docker-content-digest": DIGEST,
    "x-amz-meta-other": "x",
    "x-amz-request-id": "REQ",
    "x-amz-id-2": "ID2",
    "x-amz-version-id": "null",
    "x-amz-server-side-encryption": "AES256",
    "x-amz-storage-class": "STANDARD",
}


@pytest.mark.parametrize("status", [200, 206, 304])
def test_viewer_response_copies_the_digest_and_strips_s3_headers(
    run: Run, status: int
) -> None:
    (result,) = run(
        cdn.Target("bucket"), "viewer-response.js", [response_event(status, S3_HEADERS)]
    )
    headers = {k: v["value"] for k, v in result["headers"].items()}
    kept = {
        k: v for k, v in S3_HEADERS.items() if not k.startswith(("x-amz-", "server"))
    }
    expected = kept | {
        "docker-distribution-api-version": "registry/2.0",
        "x-content-type-options": "nosniff",
    }
    if status in (200, 206):
        expected["docker-content-digest"] = DIGEST
    assert headers == expected
    assert result["statusCode"] == status


def test_viewer_response_without_digest_metadata_adds_no_digest(run: Run) -> None:
    event = response_event(200, {"content-type": "application/json", "server": "nginx"})
    (result,) = run(cdn.Target("bucket-blob-copies"), "viewer-response.js", [event])
    assert {k: v["value"] for k, v in result["headers"].items()} == {
        "content-type": "application/json",
        "server": "nginx",
        "docker-distribution-api-version": "registry/2.0",
        "x-content-type-options": "nosniff",
    }


# The rendered files -------------------------------------------------------------------

# Beyond ES5.1, CloudFront's runtime has only some ES6+ features; the templates keep
# to ES5 so that no feature question arises. (The harness already loads them in
# strict mode with no require.)
NOT_ES5 = re.compile(r"\b(?:let|const|class|async|await|import|export|require)\b|=>|`")


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_functions_are_small_es5_and_define_handler(target: cdn.Target) -> None:
    files = cdn.render(target)
    for name in ("viewer-request.js", "viewer-response.js"):
        code = "\n".join(
            line for line in files[name].splitlines() if not line.startswith("//")
        )
        assert len(files[name].encode()) <= cdn.MAX_FUNCTION_SIZE
        assert "function handler(event)" in code
        assert not NOT_ES5.findall(code), name


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_error_responses_map_403_and_404_to_the_json_page(target: cdn.Target) -> None:
    files = cdn.render(target)
    config = json.loads(files["error-responses.json"])
    prefix = f"/{target.prefix}" if target.prefix else ""
    page = f"{prefix}/errors/not-found.json"
    assert config == {
        "Quantity": 2,
        "Items": [
            {
                "ErrorCode": code,
                "ResponsePagePath": page,
                "ResponseCode": "404",
                "ErrorCachingMinTTL": cdn.ERROR_CACHING_SECONDS,
            }
            for code in (403, 404)
        ],
    }
    body = json.loads(files["not-found.json"])
    assert body == {
        "errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]
    }
    assert cdn.error_page_body() == api.error_body("MANIFEST_UNKNOWN")


def test_readme_says_how_to_deploy_and_what_is_lost() -> None:
    shared = cdn.render(cdn.Target("bucket", "reg"))["README.md"]
    copies = cdn.render(cdn.Target("bucket-blob-copies"))["README.md"]
    for text in (shared, copies):
        assert "aws cloudfront create-function" in text
        assert "Runtime=cloudfront-js-2.0" in text
        assert "Origin Access Control" in text
        assert "OCI-Filters-Applied" in text
        # The site and docker search work, and the README says how, and what not.
        assert "## 5. The browse site and docker search" in text
        assert "| `/` | `site/index.html` |" in text
        assert "| `/v1/search?q=TERM` | `v1/search/TERM.json` |" in text
        assert "`n` (`docker search --limit`) is ignored" in text
        assert "a well-formed term that finds nothing" in text
        assert '"DefaultTTL": 60' in text
        assert "browse site answer 404" not in text
    assert "shared across repositories" in shared
    assert "arn:aws:s3:::BUCKET/reg/*" in shared
    assert "shared across repositories" not in copies


# Choosing the target ----------------------------------------------------------------


def test_choose_reads_the_tree_and_its_url() -> None:
    settings = {"format": 1, "layout": "bucket-blob-copies"}
    assert cdn.choose(settings, "reg/v1", None, None) == cdn.Target(
        "bucket-blob-copies", "reg/v1"
    )
    assert cdn.choose(None, None, "bucket", "/p/q/") == cdn.Target("bucket", "p/q")
    assert cdn.choose(None, "from-url", "bucket", None) == cdn.Target(
        "bucket", "from-url"
    )
    recorded = settings | {"prefix": "kept"}
    assert cdn.choose(recorded, None, "bucket-blob-copies", "kept").prefix == "kept"


@pytest.mark.parametrize(
    ("settings", "layout", "prefix", "message"),
    [
        ({"layout": "directory"}, None, None, "layout 'directory'"),
        ({"layout": "bucket"}, "bucket-blob-copies", None, "--layout"),
        ({"layout": "bucket", "prefix": "a"}, None, "b", "--prefix 'b' contradicts"),
        (None, None, None, "cannot tell the tree's layout"),
        (None, "bucket", "../up", "invalid prefix"),
        (None, "bucket", "a b", "invalid prefix"),
    ],
)
def test_choose_refuses(
    settings: JSON, layout: str | None, prefix: str | None, message: str
) -> None:
    with pytest.raises(StaticregError, match=re.escape(message)):
        cdn.choose(settings, None, layout, prefix)


# The command ------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["cdn", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_writes_every_file_from_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = invoke("-o", "out", "--layout", "bucket", "--prefix", "reg")
    assert code == 0, err
    assert out == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "README.md",
        "error-responses.json",
        "not-found.json",
        "viewer-request.js",
        "viewer-response.js",
    ]
    assert 'var PREFIX = "/reg";' in (tmp_path / "out/viewer-request.js").read_text()


def test_cli_reads_layout_and_prefix_from_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    settings = {"format": 1, "layout": "bucket-blob-copies", "prefix": "mirror"}
    (tree / "staticreg.json").write_text(json.dumps(settings))
    code, _, err = invoke("--root", str(tree), "-o", str(tmp_path / "out"))
    assert code == 0, err
    text = (tmp_path / "out/viewer-request.js").read_text()
    assert '"bucket-blob-copies" layout' in text
    assert 'var PREFIX = "/mirror";' in text


def test_cli_refuses_a_directory_tree_and_a_missing_layout(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "staticreg.json").write_text('{"format": 1, "layout": "directory"}')
    code, _, err = invoke("--root", str(tree), "-o", str(tmp_path / "out"))
    assert code == 1
    assert "layout 'directory'" in err and "staticreg nginx" in err
    code, _, err = invoke("--root", str(tmp_path / "none"), "-o", str(tmp_path / "out"))
    assert code == 1
    assert "give --layout" in err
    assert not (tmp_path / "out").exists()
