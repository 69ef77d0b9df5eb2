"""The browse site, the index and search JSON and the docker search answers.

``regenerate`` brings all of them up to date from what ``catalog`` and
``summary`` read back from the store, never from a publish's own state. After a
publish it looks only at the repositories named; a rebuild looks at every record.
Either way, a repository whose record, registry host and templates are those of
the previous run (``state``) is neither read nor rendered again unless its page
is missing: its index entry comes from the previous index JSON. A file is
written only when it differs from the tree's, so a run touches only what changed.

Data before pointers: pages, then the docker search answers, then the JSON
files, then the home pages that link them, and the state last, so that the next
run redoes whatever an interrupted one left undone.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from staticreg import api, catalog, paths, resources
from staticreg.errors import StaticregError
from staticreg.gen import indexjson, pages, state, summary
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
    unchanged: int = 0
    written: int = 0
    removed: int = 0
    full: bool = False

    def __str__(self) -> str:
        kind = "rebuilt" if self.full else "updated"
        return (
            f"site {kind}: {self.read} repositories read, {self.unchanged} "
            f"unchanged, {self.written} files written, {self.removed} removed"
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


# Writing -------------------------------------------------------------------------


class _Writer:
    """Puts site files that differ from the tree's, and removes the ones asked.

    A rebuild lists the keys under ``LISTED`` first (``existing``): a key there
    that the listing lacks is written without being read first.
    """

    LISTED = (f"{paths.SITE}/", f"{paths.SEARCH_RESULTS}/")

    def __init__(self, store: Store, report: Report, listing: bool) -> None:
        self.store = store
        self.report = report
        self.existing: set[str] | None = None
        if listing:
            self.existing = {k for p in self.LISTED for k in store.list(p)}

    def exists(self, key: str) -> bool:
        if self.existing is not None and key.startswith(self.LISTED):
            return key in self.existing
        return self.store.stat(key) is not None

    def put(self, key: str, data: bytes) -> None:
        if self.exists(key):
            try:
                if self.store.get(key) == data:
                    return
            except KeyError:
                pass
        content_type = api.SITE_TYPES.get(key.rpartition(".")[2])
        self.store.put(key, data, content_type, cache_control=api.SHORT)
        if self.existing is not None:
            self.existing.add(key)
        self.report.written += 1

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.store.delete(key)
            if self.existing is not None:
                self.existing.discard(key)
            self.report.removed += 1

    def listed(self, prefix: str) -> Iterable[str]:
        """The keys under ``prefix``, from the run's listing if it made one."""
        if self.existing is None or not prefix.startswith(self.LISTED):
            return self.store.list(prefix)
        return [key for key in self.existing if key.startswith(prefix)]


# Regeneration --------------------------------------------------------------------


def mark_pending(store: Store, names: Iterable[str] | None) -> None:
    """Note, before their pointers change, the repositories the next
    regeneration must look at (None: all), on top of any noted before: a
    regeneration that never ran or failed is then made up by the next one."""
    pending = _pending(store)
    if pending is not None and names is not None:
        pending |= set(names)
    doc = {"all": True} if names is None or pending is None else sorted(pending)
    store.put(paths.SITE_PENDING, (json.dumps(doc) + "\n").encode())


def _pending(store: Store) -> set[str] | None:
    """The repositories noted by ``mark_pending`` (None: all of them)."""
    raw = _get(store, paths.SITE_PENDING)
    if raw is None:
        return set()
    try:
        doc = json.loads(raw)
        return {str(name) for name in doc} if isinstance(doc, list) else None
    except (ValueError, TypeError):
        return None


def regenerate(
    store: Store,
    names: Iterable[str] | None = None,
    base_url: str | None = None,
    layout: paths.Layout | None = None,
    force: bool = False,
) -> Report:
    """Bring the site, the JSON files and the docker search answers up to date.

    With ``names``, only those repositories are looked at (the ones a publish
    changed), with those an unfinished run left pending; without, or when the
    previous index JSON cannot be used, every one is. ``base_url`` records the
    registry host the pull commands show (and so redoes every page); '' goes back
    to the address the page was loaded from. ``force`` trusts nothing the last run
    left: every record and blob is read and every file made again (and written
    where it differs). ``layout`` is the tree's (read from its settings when not
    given).
    """
    if base_url is not None:
        save_host(store, registry_host(base_url) if base_url else "")
        names = None
    if names is not None:
        pending = _pending(store)
        names = None if pending is None else pending | set(names)
    run = _Run(store, layout or _tree_layout(store), None if force else names, force)
    run.write_assets()  # before the first page that links them
    for name in run.todo:
        run.update_repository(name)
    search = {name: run.search[name] for name in sorted(run.search)}
    run.write_answers(search)
    run.write_json(search)
    run.write_home(list(search.values()))
    run.remove_pages()
    run.finish()
    log.debug("%s", run.report)
    return run.report


def _tree_layout(store: Store) -> paths.Layout:
    from staticreg import tree

    return tree.tree_layout(store)


class _Run:
    """One regeneration: what the previous run left, and what this one makes."""

    def __init__(
        self,
        store: Store,
        layout: paths.Layout,
        names: Iterable[str] | None,
        force: bool = False,
    ) -> None:
        self.store = store
        self.listed = set(catalog.read_names(store, layout))
        self.state_raw = _get(store, paths.SITE_STATE)
        self.old_state = state.parse(None if force else self.state_raw)
        if self.old_state.templates != pages.fingerprint():
            names = None  # every page is made with other templates now
        self.search_raw = _get(store, paths.SEARCH_JSON)
        self.old_search = indexjson.parse_entries(self.search_raw or b"")
        # The index JSON's entries stay lines of text: most are written back as
        # they are, and parsing them all would cost more than the rest of a run.
        old_lines = None
        if self.old_search is not None:
            index_raw = _get(store, paths.INDEX_JSON)
            old_lines = indexjson.split_lines(index_raw, sorted(self.old_search))
        full = names is None or old_lines is None
        self.report = Report(full=full)
        self.old_lines = old_lines or {}
        self.index_usable = old_lines is not None
        # This run's index lines and search entries, by repository.
        self.lines: dict[str, str] = {}
        self.search: dict[str, JSON] = {}
        self.changed: set[str] = set()  # repositories whose entry was made again
        if full:
            self.todo = sorted(self.listed)
            before = set(self.old_state.repositories) | set(self.old_lines)
        else:
            for name in self.listed & set(self.old_lines):
                self._keep_entry(name)
            wanted = set(names or ()) & self.listed | self.listed - set(self.lines)
            self.todo = sorted(wanted)
            before = set(self.old_lines)
        self.gone = before - self.listed
        self.writer = _Writer(store, self.report, listing=full)
        self.renderer = pages.Renderer(read_host(store))
        self.fingerprints = {
            n: fp for n, fp in self.old_state.repositories.items() if n in self.listed
        }
        self.summaries = state.Summaries(store, trusted=not force)
        self.reader = summary.Reader(store)
        self.search_digest = state.digest_of(self.search_raw or b"")

    # Repositories

    def update_repository(self, name: str) -> None:
        """Make the repository's entry and page again, unless both are current."""
        self.fingerprints.pop(name, None)
        try:
            raw = self.store.get(paths.repository_record(name))
        except KeyError:
            return  # listed, but not (or no longer) published
        record = state.digest_of(raw)
        page = state.page_fingerprint(record, self.renderer.host, pages.fingerprint())
        before = self.old_state.repositories.get(name)
        if before is not None and before.record == record:
            current = name in self.old_lines and before.page == page
            if current and self._has_page(name):
                self._keep_entry(name)
                self.fingerprints[name] = before
                self.report.unchanged += 1
                return
        repo = self.summaries.get(name, record) or self._read(name, raw, record)
        self.report.read += 1
        entry = indexjson.repository_entry(repo)
        self.lines[name] = indexjson.entry_line(entry)
        self.search[name] = indexjson.search_entry(entry)
        self.changed.add(name)
        self._write_page(repo)
        self.fingerprints[name] = state.Fingerprint(
            record, page if repo.complete else None
        )

    def _keep_entry(self, name: str) -> None:
        assert self.old_search is not None, "old lines come with a search JSON"
        self.lines[name] = self.old_lines[name]
        self.search[name] = self.old_search[name]

    def _has_page(self, name: str) -> bool:
        key = pages.page_key(name)
        return key is None or self.writer.exists(key)

    def _read(self, name: str, raw: bytes, record: str) -> summary.Repository:
        repo = self.reader.summarize(catalog.parse_repository(self.store, name, raw))
        if repo.complete:
            self.summaries.put(name, record, repo)
        return repo

    def _write_page(self, repo: summary.Repository) -> None:
        key = pages.page_key(repo.name)
        if key is None:
            log.warning(
                "warning: no page for repository %s: its 'index.html' part would be "
                "the page of another repository",
                repo.name,
            )
            return
        self.writer.put(key, self.renderer.repository(repo))

    # Files the whole tree shares

    def write_assets(self) -> None:
        folder = resources.folder("site")
        for name in ASSETS:
            key = f"{paths.SITE_ASSETS}/{name}"
            self.writer.put(key, (folder / name).read_bytes())

    def write_answers(self, search: Mapping[str, JSON]) -> None:
        """The docker search answers. A rebuild makes again the answers whose
        terms the search entries' changes touch and those missing; all of them
        when it cannot tell what the answer files were made for."""
        if not self.report.full:
            assert self.old_search is not None, "an update has the previous search"
            changed = [*self.todo, *self.gone]
            terms = indexjson.changed_terms(self.old_search, search, changed)
            self._put_answers(search, terms)
            return
        prefix = f"{paths.SEARCH_RESULTS}/"
        existing = set(self.writer.listed(prefix))
        wanted = {paths.search_result(t): t for t in indexjson.all_terms(search)}
        if self._answers_trusted():
            assert self.old_search is not None, "trusted answers have a search"
            names = set(self.old_search) | set(search)
            todo = indexjson.changed_terms(self.old_search, search, names)
            todo |= {term for key, term in wanted.items() if key not in existing}
        else:
            todo = set(wanted.values())
        self._put_answers(search, todo)
        self.writer.remove(sorted(existing - set(wanted)))

    def _answers_trusted(self) -> bool:
        # The state names the search JSON the answers were last made for.
        return self.old_search is not None and (
            self.old_state.search == state.digest_of(self.search_raw or b"")
        )

    def _put_answers(self, search: Mapping[str, JSON], terms: set[str]) -> None:
        if not terms:
            return
        by_term = indexjson.matches_by_term(search, terms)
        answers = indexjson.answers(search, by_term, terms)
        for term in sorted(terms):
            key = paths.search_result(term)
            if term in answers:
                self.writer.put(key, answers[term])
            elif self.writer.exists(key):
                self.writer.remove([key])

    def write_json(self, search: Mapping[str, JSON]) -> None:
        """The index and search JSON, when an entry changed or the files were
        unusable."""
        same = self.lines.keys() == self.old_lines.keys()
        if not self.changed and same and self.index_usable:
            return
        body = indexjson.render_lines(self.lines[n] for n in sorted(self.lines))
        self.writer.put(paths.INDEX_JSON, body)
        body = indexjson.render(search.values())
        self.writer.put(paths.SEARCH_JSON, body)
        self.search_digest = state.digest_of(body)

    def write_home(self, entries: list[JSON]) -> None:
        """The home pages; in an update, the previous number of repositories
        says which pages are stale without listing the store."""
        count = _page_count(len(entries))
        for page in range(1, count + 1):
            chunk = entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
            body = self.renderer.home(chunk, page, count, len(entries))
            self.writer.put(paths.site_home(page), body)
        if not self.report.full:
            assert self.old_search is not None, "an update has the previous search"
            last = _page_count(len(self.old_search))
            stale = [paths.site_home(p) for p in range(count + 1, last + 1)]
        else:
            wanted = {paths.site_home(page) for page in range(2, count + 1)}
            listed = self.writer.listed(f"{paths.SITE}/page/")
            stale = sorted(key for key in listed if key not in wanted)
        self.writer.remove(stale)

    def remove_pages(self) -> None:
        """Remove the pages of repositories that left the catalog."""
        if self.report.full:
            wanted = {pages.page_key(name) for name in self.listed}
            listed = self.writer.listed(f"{paths.SITE}/r/")
            self.writer.remove(sorted(key for key in listed if key not in wanted))
        else:
            gone = [pages.page_key(name) for name in sorted(self.gone)]
            self.writer.remove(key for key in gone if key is not None)

    def finish(self) -> None:
        """The ping answer, then the run's private files: summaries and state."""
        self.writer.put(paths.PING, indexjson.ping())
        self.summaries.remove(self.gone)
        self.summaries.save()
        made = state.State(self.fingerprints, self.search_digest, pages.fingerprint())
        body = state.render(made)
        if body != self.state_raw:
            self.store.put(paths.SITE_STATE, body)
        self.store.delete(paths.SITE_PENDING)


def _get(store: Store, key: str) -> bytes | None:
    try:
        return store.get(key)
    except KeyError:
        return None


def _page_count(repositories: int) -> int:
    return max(1, -(-repositories // PAGE_SIZE))
