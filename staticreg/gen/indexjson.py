"""The index JSON, the search JSON and the precomputed ``docker search`` answers.

``site/index.json`` lists every repository with its tags, digests, platforms,
sizes, creation times, description and labels: a data export for other tools.
``site/search.json`` is its small part, names and descriptions, which the home
page's search box fetches and ``staticreg search`` reads. Its descriptions are
whole (on one line, up to ``SEARCH_DESCRIPTION`` characters) because every
search matches against them; only what is shown is shortened
(``short_description``). ``v1/search/<term>.json`` holds the answer to ``docker
search HOST/<term>`` for every lower-case prefix of two characters or more of
each repository name, of its path parts and of its description's words. Both
JSON files hold one repository per line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from staticreg import __version__, api
from staticreg.gen import summary
from staticreg.model import JSON
from staticreg.store import Store

# 2: search entries hold the whole description, not its shortened form.
FORMAT = 2
GENERATOR = f"staticreg {__version__}"
# Ranks of a match, best first: the whole name, a path part, a description word.
NAME, PART, WORD = 0, 1, 2
# Description words that become docker search terms: each adds an answer file
# per prefix, and past the first few dozen words a description is mostly prose.
MAX_WORDS = 64
FEW_TERMS = 200
# What pages, tables and docker search answers show of a description.
SHORT_DESCRIPTION = 200
# What search.json keeps of one, to match against: a README pasted into a label
# would otherwise make the file every home page search fetches megabytes.
SEARCH_DESCRIPTION = 4096
_WORD_RE = re.compile(r"[a-z0-9]+")


def repository_entry(repo: summary.Repository) -> JSON:
    """One repository of the index JSON."""
    manifest = repo.representative
    entry: JSON = {"name": repo.name}
    entry.update({name: repo.field(name) for name in summary.FIELDS})
    entry["updated"] = repo.updated
    entry["labels"] = manifest.labels if manifest else {}
    entry["tags"] = [_tag_entry(tag) for tag in repo.tags]
    return entry


def _tag_entry(tag: summary.Tag) -> JSON:
    manifest = tag.manifest
    return {
        "name": tag.name,
        "digest": manifest.digest,
        "mediaType": manifest.media_type,
        "size": manifest.size,
        "platforms": manifest.platforms,
        "created": manifest.created,
        "labels": manifest.labels,
        "referrers": [
            {"digest": r.digest, "artifactType": r.artifact_type, "size": r.size}
            for r in manifest.referrers
        ],
    }


def search_entry(entry: JSON) -> JSON:
    """The part of an index entry that search needs."""
    text = " ".join((entry.get("description") or "").split())
    return {
        "name": entry["name"],
        "description": text[:SEARCH_DESCRIPTION],
        "tags": len(entry.get("tags") or []),
        "updated": entry.get("updated"),
    }


def short_description(text: str) -> str:
    """A description as lists show it: on one line, at most 200 characters."""
    flat = " ".join(text.split())
    if len(flat) <= SHORT_DESCRIPTION:
        return flat
    return flat[: SHORT_DESCRIPTION - 1].rstrip() + "\u2026"


_HEAD = f'{{"format":{FORMAT},"generator":{json.dumps(GENERATOR)},"repositories":['
_TAIL = "\n]}\n"


def render(entries: Iterable[JSON]) -> bytes:
    """The index JSON or the search JSON: a header and one repository per line."""
    return render_lines(entry_line(e) for e in entries)


def entry_line(entry: JSON) -> str:
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def render_lines(lines: Iterable[str]) -> bytes:
    """``render`` of entries already turned into lines (``entry_line``)."""
    return (_HEAD + "\n" + ",\n".join(lines) + _TAIL).encode()


def split_lines(raw: bytes | None, names: Sequence[str]) -> dict[str, str] | None:
    """The lines of a file ``render`` wrote, by name, when it holds the entries of
    ``names`` in that order; None when it does not (or another staticreg wrote
    it). Each line starts with its name, so this reads no JSON."""
    try:
        text = (raw or b"").decode()
    except UnicodeDecodeError:
        return None
    if not text.startswith(_HEAD + "\n") or not text.endswith(_TAIL):
        return None
    body = text[len(_HEAD) + 1 : -len(_TAIL)]
    lines = body.split(",\n") if body else []
    if len(lines) != len(names):
        return None
    found = {}
    for name, line in zip(names, lines, strict=True):
        if not line.startswith(f'{{"name":{json.dumps(name, ensure_ascii=False)},'):
            return None
        found[name] = line
    return found


def read_entries(store: Store, key: str) -> dict[str, JSON] | None:
    """The repositories of an index or search JSON by name; None when the file is
    missing, damaged, or written by another staticreg (so that all is redone)."""
    try:
        return parse_entries(store.get(key))
    except KeyError:
        return None


def parse_entries(raw: bytes) -> dict[str, JSON] | None:
    """``read_entries`` of the file's bytes."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("generator") != GENERATOR:
        return None
    found = doc.get("repositories")
    if not isinstance(found, list):
        return None
    return {str(e["name"]): e for e in found if isinstance(e, dict) and "name" in e}


def matches(entries: Iterable[JSON], text: str) -> list[JSON]:
    """Search entries whose name or description contains ``text``, any case."""
    wanted = text.casefold()
    return [
        e
        for e in entries
        if wanted in e["name"].casefold()
        or wanted in (e.get("description") or "").casefold()
    ]


# docker search ------------------------------------------------------------------


def _words(name: str, description: str) -> list[tuple[str, int]]:
    """What a term may be a prefix of, with the rank of such a match."""
    words = [(name, NAME)] + [(part, PART) for part in name.split("/")]
    unique = dict.fromkeys(_WORD_RE.findall(description.lower()))
    return words + [(word, WORD) for word in list(unique)[:MAX_WORDS]]


def terms(name: str, description: str) -> dict[str, int]:
    """Every search term that finds a repository, with the rank of its best match."""
    found: dict[str, int] = {}
    for word, rank in _words(name, description):
        for end in range(2, min(len(word), api.MAX_SEARCH_TERM) + 1):
            term = word[:end]
            if found.get(term, WORD + 1) > rank:
                found[term] = rank
    return found


Matches = dict[str, list[tuple[int, str]]]


def all_terms(entries: Mapping[str, JSON]) -> set[str]:
    """Every term that finds at least one of the search ``entries`` (``terms``
    without the ranks, at half the cost)."""
    found: set[str] = set()
    for name, entry in entries.items():
        for word, _ in _words(name, entry.get("description") or ""):
            end = min(len(word), api.MAX_SEARCH_TERM)
            found.update([word[:n] for n in range(2, end + 1)])
    return found


def matches_by_term(
    entries: Mapping[str, JSON], only: Iterable[str] | None = None
) -> Matches:
    """Every term (or every term in ``only``) that finds one of the search
    ``entries``, with the rank and name of each repository it finds."""
    wanted = None if only is None else set(only)
    # Matching word by word costs about as much as the whole at ~300 terms.
    if wanted is not None and len(wanted) <= FEW_TERMS:
        return _matches_of(entries, wanted)
    by_term: Matches = {}
    for name, entry in entries.items():
        for term, rank in terms(name, entry.get("description") or "").items():
            if wanted is not None and term not in wanted:
                continue
            found = by_term.get(term)
            if found is None:
                by_term[term] = [(rank, name)]
            else:
                found.append((rank, name))
    return by_term


def _matches_of(entries: Mapping[str, JSON], wanted: Iterable[str]) -> Matches:
    """``matches_by_term`` of a few terms: rather than every prefix of every
    word, only the words that start as one of the terms are looked at."""
    by_start: dict[str, list[str]] = {}
    for term in wanted:
        if 2 <= len(term) <= api.MAX_SEARCH_TERM:
            by_start.setdefault(term[:2], []).append(term)
    by_term: Matches = {}
    for name, entry in entries.items():
        best: dict[str, int] = {}
        for word, rank in _words(name, entry.get("description") or ""):
            for term in by_start.get(word[:2], ()):
                if word.startswith(term) and best.get(term, WORD + 1) > rank:
                    best[term] = rank
        for term, rank in best.items():
            by_term.setdefault(term, []).append((rank, name))
    return by_term


def search_answers(
    entries: Mapping[str, JSON], only: set[str] | None = None
) -> dict[str, bytes]:
    """The ``/v1/search`` answer of every term (or of the terms in ``only``) that
    finds at least one of the search ``entries``: best matches first, then by
    name."""
    by_term = matches_by_term(entries, only)
    return answers(entries, by_term, by_term.keys())


def answers(
    entries: Mapping[str, JSON], by_term: Matches, wanted: Iterable[str]
) -> dict[str, bytes]:
    """``search_answers`` of the ``wanted`` terms, from ``matches_by_term``."""
    items: dict[str, str] = {}
    found_answers = {}
    for term in wanted:
        found = by_term.get(term)
        if not found:
            continue
        best = []
        for _, name in sorted(found)[: api.SEARCH_LIMIT]:
            if name not in items:
                text = short_description(entries[name]["description"])
                items[name] = api.search_item(name, text)
            best.append(items[name])
        found_answers[term] = api.search_body(term, best, len(found))
    return found_answers


def changed_terms(
    old: Mapping[str, JSON], new: Mapping[str, JSON], names: Iterable[str]
) -> set[str]:
    """Terms whose answer may differ after the search entries of ``names``
    changed from ``old`` to ``new``: the terms of both descriptions, when the
    description changed or the repository came or went."""
    found: set[str] = set()
    for name in names:
        before, after = old.get(name), new.get(name)
        if before and after and before["description"] == after["description"]:
            continue
        for entry in (before, after):
            if entry is not None:
                found.update(terms(name, entry["description"]))
    return found


def ping() -> bytes:
    """The answer to ``GET /v1/_ping``, which ``docker search`` sends first."""
    return b"{}\n"
