"""``staticreg search``: the repositories whose name or description holds a term.

Reads the search JSON the site generator keeps in the tree; a tree published
before it existed (or never indexed) is read repository by repository instead.
"""

from __future__ import annotations

import json

from staticreg import catalog, paths, tree
from staticreg.gen import indexjson, summary
from staticreg.model import JSON
from staticreg.store import Store


def entries(store: Store) -> list[JSON]:
    """Every repository's search entry: name, description, tag count, update."""
    layout = tree.read_layout(store, "search")
    found = indexjson.read_entries(store, paths.SEARCH_JSON)
    if found is not None:
        return [found[name] for name in sorted(found)]
    reader = summary.Reader(store)
    names = sorted(catalog.read_names(store, layout))
    repos = (reader.repository(name) for name in names)
    return [
        indexjson.search_entry(indexjson.repository_entry(repo))
        for repo in repos
        if repo is not None
    ]


def find(store: Store, term: str) -> list[JSON]:
    """The entries whose name or whole description holds ``term``, any case."""
    return indexjson.matches(entries(store), term)


def render(found: list[JSON], as_json: bool) -> str:
    """A table (NAME, TAGS, UPDATED, DESCRIPTION) or JSON; '' for no match. The
    table shortens descriptions to a line; the JSON has them as search.json does."""
    if as_json:
        return json.dumps(found, indent=2, ensure_ascii=False)
    if not found:
        return ""
    rows = [["NAME", "TAGS", "UPDATED", "DESCRIPTION"]] + [
        [
            e["name"],
            str(e["tags"]),
            (e.get("updated") or "-")[:10],
            indexjson.short_description(e.get("description") or ""),
        ]
        for e in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    return "\n".join(lines)
