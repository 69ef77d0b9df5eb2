"""The index JSON, the search JSON and the precomputed ``docker search`` answers.

``site/index.json`` lists every repository with its tags, digests, platforms,
sizes, creation times, description and labels: a data export for other tools.
``site/search.json`` is its small part, names and descriptions, which the home
page's search box fetches and ``staticreg search`` reads. ``v1/search/<term>.json``
holds the answer to ``docker search HOST/<term>`` for every lower-case prefix of
two characters or more of each repository name, of its path parts and of its
description's words. Both JSON files hold one repository per line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from staticreg import __version__, api
from staticreg.gen import summary
from staticreg.model import JSON
from staticreg.store import Store

FORMAT = 1
GENERATOR = f"staticreg {__version__}"
# Ranks of a match, best first: the whole name, a path part, a description word.
NAME, PART, WORD = 0, 1, 2
MAX_WORDS = 64
SHORT_DESCRIPTION = 200
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
    return {
        "name": entry["name"],
        "description": short_description(entry.get("description") or ""),
        "tags": len(entry.get("tags") or []),
        "updated": entry.get("updated"),
    }


def short_description(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) <= SHORT_DESCRIPTION:
        return flat
    return flat[: SHORT_DESCRIPTION - 1].rstrip() + "\u2026"


def render(entries: Iterable[JSON]) -> bytes:
    """The index JSON or the search JSON: a header and one repository per line."""
    lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in entries]
    head = f'{{"format":{FORMAT},"generator":{json.dumps(GENERATOR)},"repositories":['
    return (head + "\n" + ",\n".join(lines) + "\n]}\n").encode()


def read_entries(store: Store, key: str) -> dict[str, JSON] | None:
    """The repositories of an index or search JSON by name; None when the file is
    missing, damaged, or written by another staticreg (so that all is redone)."""
    try:
        doc = json.loads(store.get(key))
    except (KeyError, ValueError, UnicodeDecodeError):
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


def terms(name: str, description: str) -> dict[str, int]:
    """Every search term that finds a repository, with the rank of its best match."""
    found: dict[str, int] = {}
    words = [(name, NAME)] + [(part, PART) for part in name.split("/")]
    unique = dict.fromkeys(_WORD_RE.findall(description.lower()))
    words += [(word, WORD) for word in list(unique)[:MAX_WORDS]]
    for word, rank in words:
        for end in range(2, min(len(word), api.MAX_SEARCH_TERM) + 1):
            term = word[:end]
            if found.get(term, WORD + 1) > rank:
                found[term] = rank
    return found


def search_answers(
    entries: Mapping[str, JSON], only: set[str] | None = None
) -> dict[str, bytes]:
    """The ``/v1/search`` answer of every term (or of the terms in ``only``) that
    finds at least one of the search ``entries``: best matches first, then by
    name."""
    by_term: dict[str, list[tuple[int, str]]] = {}
    for name, entry in entries.items():
        for term, rank in terms(name, entry.get("description") or "").items():
            if only is None or term in only:
                by_term.setdefault(term, []).append((rank, name))
    items: dict[str, str] = {}
    answers = {}
    for term, found in by_term.items():
        found.sort()
        best = []
        for _, name in found[: api.SEARCH_LIMIT]:
            if name not in items:
                items[name] = api.search_item(name, entries[name]["description"])
            best.append(items[name])
        answers[term] = api.search_body(term, best, len(found))
    return answers


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
