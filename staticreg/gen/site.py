"""The browse site, the index and search JSON and the docker search answers.

``regenerate`` brings all of them up to date from what ``catalog`` and
``summary`` read back from the store, never from a publish's own state. After a
publish it reads again only the repositories named; the others come from the
previous index JSON. Every file is compared with what the tree holds and written
only when it differs, so a publish touches only what changed.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import jinja2

from staticreg import __version__, api, catalog, paths, resources
from staticreg.errors import StaticregError
from staticreg.gen import indexjson, summary
from staticreg.model import JSON
from staticreg.store import Store

log = logging.getLogger(__name__)

PAGE_SIZE = 100
ASSETS = ("site.css", "site.js", "favicon.svg")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


@dataclass
class Report:
    """What one regeneration did, for the log and the tests."""

    read: int = 0
    written: int = 0
    removed: int = 0
    full: bool = False

    def __str__(self) -> str:
        kind = "rebuilt" if self.full else "updated"
        return (
            f"site {kind}: {self.read} repositories read, {self.written} files "
            f"written, {self.removed} removed"
        )


# Settings ------------------------------------------------------------------------


def registry_host(base_url: str) -> str:
    """The 'HOST[:PORT]' of a --base-url, for the pull commands of the pages."""
    host = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", base_url.strip()).rstrip("/")
    if not _HOST_RE.match(host):
        raise StaticregError(
            f"invalid base URL {base_url!r}: expected HOST[:PORT], optionally "
            "after https://",
            hint="pass the address clients pull from, e.g. registry.example.com",
        )
    return host


def read_host(store: Store) -> str:
    """The registry host recorded by ``staticreg index --base-url``, or ''."""
    try:
        doc = json.loads(store.get(paths.SITE_SETTINGS))
    except (KeyError, ValueError):
        return ""
    return str(doc.get("host") or "") if isinstance(doc, dict) else ""


def save_host(store: Store, host: str) -> None:
    store.put(paths.SITE_SETTINGS, (json.dumps({"host": host}) + "\n").encode())


# Rendering -----------------------------------------------------------------------


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _short_digest(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.folder("templates"))),
        autoescape=True,  # labels and descriptions come from image authors
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = _human_size
    env.filters["short"] = _short_digest
    env.filters["anchor"] = lambda digest: digest.replace(":", "-")
    env.filters["day"] = lambda time: (time or "")[:10]
    env.filters["web"] = lambda url: url.startswith(("https://", "http://"))
    env.globals["version"] = __version__
    return env


class Renderer:
    """Renders pages with one jinja2 environment (templates compile once)."""

    def __init__(self, host: str) -> None:
        self.env = _environment()
        self.host = host

    def home(self, entries: Sequence[JSON], page: int, pages: int, total: int) -> bytes:
        base = "" if page == 1 else "../../"
        return self._render(
            "home.html.j2",
            base=base,
            repositories=entries,
            page=page,
            pages=pages,
            total=total,
            previous=_home_link(page - 1, base) if page > 1 else None,
            next=_home_link(page + 1, base) if page < pages else None,
        )

    def repository(self, repo: summary.Repository) -> bytes:
        base = "../" * (2 + repo.name.count("/"))
        tags = sorted(
            repo.tags, key=lambda t: (t.manifest.created or "", t.name), reverse=True
        )
        return self._render(
            "repository.html.j2",
            base=base,
            repo=repo,
            tags=tags,
            manifests=repo.manifests(),
            info={name: repo.field(name) for name in summary.FIELDS},
        )

    def _render(self, template: str, **values: object) -> bytes:
        page = self.env.get_template(template).render(host=self.host, **values)
        return page.encode()


def _home_link(page: int, base: str) -> str:
    return f"{base}{paths.site_home(page).removeprefix(paths.SITE + '/')}"


def page_key(name: str) -> str | None:
    """A repository's page, or None when the page of a shorter name would have
    to be its folder (a name with an 'index.html' part)."""
    if "index.html" in name.split("/")[1:]:
        return None
    return paths.site_repository(name)


# Writing -------------------------------------------------------------------------


class _Writer:
    """Puts files that differ from the tree's, and removes the ones asked."""

    def __init__(self, store: Store, report: Report) -> None:
        self.store = store
        self.report = report

    def put(self, key: str, data: bytes) -> None:
        try:
            if self.store.get(key) == data:
                return
        except KeyError:
            pass
        self.store.put(key, data, _content_type(key))
        self.report.written += 1

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.store.delete(key)
            self.report.removed += 1


def _content_type(key: str) -> str | None:
    return api.SITE_TYPES.get(key.rpartition(".")[2])


# Regeneration --------------------------------------------------------------------


def regenerate(
    store: Store, names: Iterable[str] | None = None, base_url: str | None = None
) -> Report:
    """Bring the site, the JSON files and the docker search answers up to date.

    With ``names``, only those repositories are read again (the ones a publish
    changed); without, or when the previous index JSON cannot be used, every one
    is. ``base_url`` records the registry host the pull commands show (and so
    redoes every page); '' goes back to the address the page was loaded from.
    """
    if base_url is not None:
        save_host(store, registry_host(base_url) if base_url else "")
        names = None
    old_index = indexjson.read_entries(store, paths.INDEX_JSON)
    old_search = indexjson.read_entries(store, paths.SEARCH_JSON)
    listed = set(catalog.read_names(store))
    index: dict[str, JSON] = {}
    if names is None or old_index is None or old_search is None:
        report, changed, old_search = Report(full=True), listed, {}
    else:
        report = Report()
        index = {n: e for n, e in old_index.items() if n in listed}
        # Also what an interrupted run left out of the index, or took out late.
        changed = set(names) & listed | listed - set(index) | set(old_index) - listed
    writer = _Writer(store, report)
    renderer = Renderer(read_host(store))

    _write_assets(writer)  # before the first page that links them
    index.update(_read_repositories(store, renderer, writer, changed & listed))
    search = {name: indexjson.search_entry(index[name]) for name in sorted(index)}
    _remove_pages(store, writer, listed, report.full, set(old_index or ()))

    writer.put(paths.INDEX_JSON, indexjson.render(index[n] for n in sorted(index)))
    writer.put(paths.SEARCH_JSON, indexjson.render(search.values()))
    before = None if report.full else len(old_search)
    _write_home(store, renderer, writer, list(search.values()), before)
    if report.full:
        _write_all_answers(store, writer, search)
    else:
        _write_answers(
            writer, search, indexjson.changed_terms(old_search, search, changed)
        )
    writer.put(paths.PING, b"{}\n")
    log.debug("%s", report)
    return report


def _read_repositories(
    store: Store, renderer: Renderer, writer: _Writer, names: set[str]
) -> dict[str, JSON]:
    entries = {}
    reader = summary.Reader(store)
    for name in sorted(names):
        repo = reader.repository(name)
        if repo is None:
            continue
        writer.report.read += 1
        entries[name] = indexjson.repository_entry(repo)
        key = page_key(name)
        if key is None:
            log.warning(
                "warning: no page for repository %s: its 'index.html' part would be "
                "the page of another repository",
                name,
            )
            continue
        writer.put(key, renderer.repository(repo))
    return entries


def _remove_pages(
    store: Store, writer: _Writer, listed: set[str], full: bool, before: set[str]
) -> None:
    """Remove the pages of repositories that left the catalog."""
    if full:
        prefix = f"{paths.SITE}/r/"
        wanted = {page_key(name) for name in listed}
        writer.remove(k for k in list(store.list(prefix)) if k not in wanted)
    else:
        gone = [page_key(name) for name in sorted(before - listed)]
        writer.remove(key for key in gone if key is not None)


def _write_assets(writer: _Writer) -> None:
    folder = resources.folder("site")
    for name in ASSETS:
        writer.put(f"{paths.SITE_ASSETS}/{name}", (folder / name).read_bytes())


def _write_home(
    store: Store,
    renderer: Renderer,
    writer: _Writer,
    entries: list[JSON],
    before: int | None,
) -> None:
    """The home pages; ``before`` is the previous number of repositories, which
    says which pages are stale without listing the store (unknown: list it)."""
    pages = _page_count(len(entries))
    for page in range(1, pages + 1):
        chunk = entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        writer.put(
            paths.site_home(page), renderer.home(chunk, page, pages, len(entries))
        )
    if before is not None:
        stale = [paths.site_home(p) for p in range(pages + 1, _page_count(before) + 1)]
    else:
        wanted = {paths.site_home(page) for page in range(2, pages + 1)}
        stale = [k for k in store.list(f"{paths.SITE}/page/") if k not in wanted]
    writer.remove(stale)


def _page_count(repositories: int) -> int:
    return max(1, -(-repositories // PAGE_SIZE))


def _write_all_answers(
    store: Store, writer: _Writer, search: Mapping[str, JSON]
) -> None:
    answers = indexjson.search_answers(search)
    wanted = {paths.search_result(term): body for term, body in answers.items()}
    for key, body in wanted.items():
        writer.put(key, body)
    writer.remove(
        [k for k in store.list(f"{paths.SEARCH_RESULTS}/") if k not in wanted]
    )


def _write_answers(
    writer: _Writer, search: Mapping[str, JSON], terms: set[str]
) -> None:
    answers = indexjson.search_answers(search, terms)
    for term in sorted(terms):
        key = paths.search_result(term)
        if term in answers:
            writer.put(key, answers[term])
        elif writer.store.stat(key) is not None:
            writer.remove([key])
