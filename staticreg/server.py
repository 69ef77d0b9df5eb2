"""``staticreg serve``: the pull API from Python, for development and demos.

Threaded, read-only, and answering as the generated nginx config does (``api``
holds the rules both follow), plus ``n``/``last`` paging, which nginx cannot do.
"""

from __future__ import annotations

import contextlib
import io
import logging
import posixpath
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from staticreg import api, paths, referrers
from staticreg.store import Store

log = logging.getLogger(__name__)

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Store) -> None:
        super().__init__(address, _Handler)
        self.store = store


def content_type(key: str) -> str:
    media_type = paths.media_type_of(key)
    if media_type:
        return media_type
    return api.SITE_TYPES.get(key.rpartition(".")[2], "application/octet-stream")


class _Handler(BaseHTTPRequestHandler):
    server: RegistryServer
    protocol_version = "HTTP/1.1"
    server_version = "staticreg"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_POST(self) -> None:
        self._answer(send_body=True)

    do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _answer(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        path = _normalize(unquote(url.path))
        route = api.route(self.command, path)
        if route.error:
            return self._error(route.error, send_body)
        store = self.server.store
        if route.search:
            return self._search(route, url.query, send_body)
        if any(store.stat(key) is None for key in route.require):
            return self._error(route.missing, send_body)
        key = next((k for k in route.keys if store.stat(k) is not None), None)
        if key is None and route.index and store.stat(route.index) is not None:
            return self._redirect(path + "/")
        if key is None:
            return self._error(route.unknown, send_body)
        if route.page_field:
            return self._page(route, key, path, parse_qs(url.query), send_body)
        wanted_type = parse_qs(url.query).get("artifactType", [None])[0]
        if route.referrers is not None and wanted_type:
            return self._filtered(route, key, wanted_type, send_body)
        with store.open(key) as stream:
            self._send_file(stream, store.stat(key) or 0, key, route, send_body)

    def _send_file(
        self, stream: BinaryIO, size: int, key: str, route: api.Route, send_body: bool
    ) -> None:
        start, end = 0, size - 1
        status = 200
        wanted = _parse_range(self.headers.get("Range"), size)
        if wanted == "invalid":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if isinstance(wanted, tuple):
            start, end = wanted
            status = 206
        self.send_response(status)
        self._common_headers(route, content_type(key))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if send_body:
            stream.seek(start)
            _copy(stream, self.wfile, end - start + 1)

    def _page(
        self,
        route: api.Route,
        key: str,
        path: str,
        query: dict[str, list[str]],
        send_body: bool,
    ) -> None:
        wanted = query.get("n", [None])[0]
        try:
            n = api.page_size(wanted)
        except ValueError:
            return self._error("PAGINATION_NUMBER_INVALID", send_body, {"n": wanted})
        last = query.get("last", [None])[0]
        assert route.page_field is not None
        body, link = api.paginate(
            self.server.store.get(key), route.page_field, path, n, last
        )
        self.send_response(200)
        self._common_headers(route, "application/json")
        if link:
            self.send_header("Link", link)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _filtered(
        self, route: api.Route, key: str, artifact_type: str, send_body: bool
    ) -> None:
        body = referrers.filter_index(self.server.store.get(key), artifact_type)
        self.send_response(200)
        self._common_headers(route, content_type(key))
        self.send_header(api.FILTERS_HEADER, "artifactType")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _common_headers(self, route: api.Route, type_: str) -> None:
        self.send_header(*api.API_VERSION_HEADER)
        self.send_header("Content-Type", type_)
        self.send_header("Cache-Control", route.cache)
        if route.digest:
            self.send_header("Docker-Content-Digest", route.digest)
        for header in api.SITE_HEADERS if route.site else ():
            self.send_header(*header)

    def _search(self, route: api.Route, query: str, send_body: bool) -> None:
        term = api.search_term(query)
        stored = None
        with contextlib.suppress(KeyError):
            stored = self.server.store.get(paths.search_result(term)) if term else None
        try:
            n = int(parse_qs(query).get("n", [""])[0])
        except ValueError:
            n = None
        body = api.search_page(stored, term, n)
        self.send_response(200)
        self._common_headers(route, "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        # A page's folder without its final '/' would break the page's relative
        # links; nginx's static module answers the same redirect.
        self.send_response(301)
        self.send_header(*api.API_VERSION_HEADER)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _error(self, code: str, send_body: bool, detail: object = None) -> None:
        status = api.ERRORS[code][0]
        body = api.error_body(code, detail)
        self.send_response(status)
        self.send_header(*api.API_VERSION_HEADER)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        if status == 405:
            self.send_header("Allow", "GET, HEAD")
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def _normalize(path: str) -> str:
    """Resolve '.', '..' and repeated slashes as nginx does before routing."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    clean = "/" + clean.lstrip("/")
    return clean + "/" if path.endswith("/") and clean != "/" else clean


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) for a single satisfiable range, 'invalid', or None for all."""
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        return (max(0, size - length), size - 1) if length else "invalid"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return "invalid"
    return start, end


def _copy(source: BinaryIO, target: io.BufferedIOBase, length: int) -> None:
    while length > 0:
        chunk = source.read(min(length, 1 << 20))
        if not chunk:
            break
        target.write(chunk)
        length -= len(chunk)


def serve(store: Store, host: str, port: int) -> RegistryServer:
    """A server bound to ``host:port``; the caller runs ``serve_forever``."""
    return RegistryServer((host, port), store)
