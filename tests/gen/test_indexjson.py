"""The index JSON, the search JSON and the precomputed docker search answers."""

from __future__ import annotations

import json

from gen import synthetic

from staticreg import api, paths
from staticreg.gen import indexjson, site, summary


def _entries(store: object) -> dict[str, dict[str, object]]:
    found = indexjson.read_entries(store, paths.INDEX_JSON)  # type: ignore[arg-type]
    assert found is not None
    return found


def test_index_entry_holds_tags_digests_platforms_sizes_and_labels() -> None:
    store = synthetic.tree(0, 0)
    labels = {
        "org.opencontainers.image.title": "Web",
        "org.opencontainers.image.source": "https://example.com/web",
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.version": "2.1",
        "maintainer": "ops",
    }
    synthetic.repository(store, "team/web", 2, "Serves pages", labels)
    synthetic.catalog_of(store, ["team/web"])
    site.regenerate(store)

    entry = _entries(store)["team/web"]
    assert entry["description"] == "Serves pages"
    assert entry["title"] == "Web" and entry["licenses"] == "MIT"
    assert entry["source"] == "https://example.com/web" and entry["version"] == "2.1"
    assert entry["labels"]["maintainer"] == "ops"  # type: ignore[index]
    tags = {t["name"]: t for t in entry["tags"]}  # type: ignore[attr-defined]
    assert sorted(tags) == ["1.0", "1.1"]
    record = json.loads(store.get(paths.repository_record("team/web")))
    for name, tag in tags.items():
        assert tag["digest"] == record["tags"][name]["digest"]
        assert tag["platforms"] == ["linux/amd64"]
        manifest = record["manifests"][tag["digest"]]
        # Compressed size: the manifest, its config and its layers.
        assert tag["size"] == manifest["size"] + sum(manifest["blobs"].values())
        assert tag["created"].endswith("T00:00:00Z")
        assert tag["referrers"] == []
    assert entry["updated"] == max(t["created"] for t in tags.values())


def test_search_json_is_small_and_lists_every_repository() -> None:
    store = synthetic.tree(30, 2)
    site.regenerate(store)
    found = indexjson.read_entries(store, paths.SEARCH_JSON)
    assert found is not None and len(found) == 30
    entry = next(iter(found.values()))
    assert set(entry) == {"name", "description", "tags", "updated"}
    assert entry["tags"] == 2


def test_long_descriptions_are_searched_whole_and_shown_short() -> None:
    store = synthetic.tree(0, 0)
    long = "x" * 250 + " \n needle"
    synthetic.repository(store, "team/long", 1, long)
    synthetic.repository(store, "team/huge", 1, "word " * 2000)
    synthetic.catalog_of(store, ["team/long", "team/huge"])
    site.regenerate(store)

    found = indexjson.read_entries(store, paths.SEARCH_JSON)
    assert found is not None
    assert found["team/long"]["description"] == "x" * 250 + " needle"
    huge = found["team/huge"]["description"]
    assert len(huge) == indexjson.SEARCH_DESCRIPTION  # kept small all the same
    # docker search finds the word past 200 characters, and shows a line.
    answer = json.loads(store.get(paths.search_result("ne")))
    assert [r["name"] for r in answer["results"]] == ["team/long"]
    assert answer["results"][0]["description"] == "x" * 199 + "\u2026"
    assert paths.search_result("needle") in store.objects
    home = store.get(paths.site_home(1)).decode()
    assert "x" * 199 + "\u2026" in home and "needle" not in home


def test_terms_cover_prefixes_of_names_parts_and_words() -> None:
    found = indexjson.terms("team/web-app", "Serves HTML pages, fast.")
    assert found["te"] == indexjson.NAME
    assert found["team/w"] == indexjson.NAME
    assert found["team/web-app"] == indexjson.NAME
    assert found["web-a"] == indexjson.PART
    assert found["ht"] == indexjson.WORD and found["pages"] == indexjson.WORD
    assert "t" not in found and "w" not in found  # two characters at least
    assert "html pages" not in found and "HTML" not in found
    assert all(api.SEARCH_TERM_RE.match(term) for term in found)


def test_answers_rank_name_matches_first_and_cap_at_100() -> None:
    entries = {
        f"lib/redis-{n:03d}": {"name": f"lib/redis-{n:03d}", "description": ""}
        for n in range(120)
    }
    entries["cache"] = {"name": "cache", "description": "A redis cache"}
    entries["redis"] = {"name": "redis", "description": ""}
    answers = indexjson.search_answers(entries)
    doc = json.loads(answers["redis"])
    assert doc["query"] == "redis" and doc["num_results"] == 122
    assert len(doc["results"]) == 100 and doc["num_pages"] == 2
    assert doc["results"][0] == {
        "name": "redis",
        "description": "",
        "star_count": 0,
        "is_official": False,
        "is_automated": False,
    }
    assert doc["results"][1]["name"] == "lib/redis-000"
    assert "cache" not in {r["name"] for r in doc["results"]}  # ranked last, cut
    assert [r["name"] for r in json.loads(answers["ca"])["results"]] == ["cache"]
    assert "zz" not in answers


def test_answer_files_use_tilde_for_slash_and_hold_no_other_terms() -> None:
    store = synthetic.tree(0, 0)
    synthetic.repository(store, "team/web", 1, "Serves pages")
    synthetic.catalog_of(store, ["team/web"])
    site.regenerate(store)
    keys = sorted(k for k in store.objects if k.startswith("v1/search/"))
    assert "v1/search/team~w.json" in keys and "v1/search/team~.json" in keys
    assert json.loads(store.get("v1/search/team~w.json"))["query"] == "team/w"
    assert "v1/search/se.json" in keys and "v1/search/pages.json" in keys
    assert all("/" not in k.removeprefix("v1/search/") for k in keys)
    assert store.get(paths.PING) == b"{}\n"


def test_read_entries_ignores_files_of_another_generator() -> None:
    store = synthetic.tree(2, 1)
    site.regenerate(store)
    doc = json.loads(store.get(paths.INDEX_JSON))
    doc["generator"] = "staticreg 0.0.1"
    store.put(paths.INDEX_JSON, json.dumps(doc).encode())
    assert indexjson.read_entries(store, paths.INDEX_JSON) is None
    assert site.regenerate(store, ["anything"]).full


def test_changed_terms_only_when_the_description_changed() -> None:
    old = {"a/b": {"name": "a/b", "description": "old words"}}
    same = {"a/b": {"name": "a/b", "description": "old words"}}
    new = {"a/b": {"name": "a/b", "description": "new text"}}
    assert indexjson.changed_terms(old, same, ["a/b"]) == set()
    changed = indexjson.changed_terms(old, new, ["a/b"])
    assert {"ol", "old", "ne", "text", "a/b"} <= changed
    assert indexjson.changed_terms({}, new, ["a/b"]) >= {"a/", "te"}


def test_normalize_time_gives_one_utc_form() -> None:
    assert summary.normalize_time("2024-05-01T12:00:00.123456789Z") == (
        "2024-05-01T12:00:00Z"
    )
    assert summary.normalize_time("2024-05-01T14:00:00+02:00") == "2024-05-01T12:00:00Z"
    assert summary.normalize_time("yesterday") is None
    assert summary.normalize_time(None) is None


def test_matches_name_or_description_in_any_case() -> None:
    entries = [
        {"name": "team/web", "description": "Serves PAGES"},
        {"name": "tools/cli", "description": ""},
    ]
    assert [e["name"] for e in indexjson.matches(entries, "pages")] == ["team/web"]
    assert [e["name"] for e in indexjson.matches(entries, "T")] == [
        "team/web",
        "tools/cli",
    ]
    assert indexjson.matches(entries, "zzz") == []
