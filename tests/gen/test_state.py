"""What a regeneration keeps for the next: which pages are current, and the
summaries that spare reading blobs; and that the site comes out the same without."""

from __future__ import annotations

import json

from gen import synthetic

from staticreg import digest as digestmod
from staticreg import paths
from staticreg.gen import indexjson, site, state


def _tree(count: int = 3, tags: int = 2) -> tuple[synthetic.CountingStore, list[str]]:
    store = synthetic.CountingStore()
    names = [f"team/app-{n}" for n in range(count)]
    for name in names:
        synthetic.repository(store, name, tags, f"The {name} service")
    synthetic.catalog_of(store, names)
    return store, names


def _site(store: synthetic.CountingStore) -> dict[str, bytes]:
    """Every file the site is made of, the private ones left out."""
    return {k: v for k, v in store.objects.items() if k.startswith(("site/", "v1/"))}


def _blob_reads(store: synthetic.CountingStore) -> list[str]:
    return [key for key in store.read if key.startswith("blobs/")]


def test_rebuild_of_an_unchanged_tree_reads_and_writes_nothing() -> None:
    store, names = _tree()
    site.regenerate(store)
    store.forget()
    report = site.regenerate(store)
    assert report.full and report.read == 0 and report.unchanged == len(names)
    assert report.written == 0 and store.written == []
    assert _blob_reads(store) == []


def test_rebuild_puts_back_a_missing_page_and_answer() -> None:
    store, _ = _tree()
    site.regenerate(store)
    before = _site(store)
    store.delete(paths.site_repository("team/app-1"))
    store.delete(paths.search_result("se"))
    report = site.regenerate(store)
    assert report.read == 1 and report.written == 2
    assert _site(store) == before


def test_new_host_renders_every_page_from_the_summaries() -> None:
    store, names = _tree()
    site.regenerate(store)
    store.forget()
    report = site.regenerate(store, base_url="registry.example.com")
    assert report.read == len(names) and _blob_reads(store) == []
    page = store.get(paths.site_repository("team/app-2")).decode()
    assert "<span data-host>registry.example.com</span>/team/app-2:1.0" in page


def test_site_without_the_private_state_comes_out_the_same() -> None:
    store, names = _tree(5)
    site.regenerate(store)
    synthetic.repository(store, "zeta/new", 1, "A brand new service")
    synthetic.repository(store, "team/app-1", 3, "A new description")
    synthetic.catalog_of(store, [*names[1:], "zeta/new"])
    site.regenerate(store, ["zeta/new", "team/app-1", names[0]])
    updated = _site(store)

    for key in [k for k in store.objects if k.startswith(("site/", "v1/", ".st"))]:
        store.delete(key)
    report = site.regenerate(store)
    assert report.read == 5 and _site(store) == updated


def test_publish_of_an_unchanged_record_reads_nothing_again() -> None:
    store, _ = _tree()
    site.regenerate(store)
    store.forget()
    report = site.regenerate(store, ["team/app-0"])
    assert not report.full and report.read == 0 and report.written == 0


def test_repository_with_a_missing_blob_is_read_again_next_time() -> None:
    store, _ = _tree(1, tags=1)
    record = json.loads(store.get(paths.repository_record("team/app-0")))
    config = next(iter(record["manifests"].values()))["config"]
    key = paths.blob(digestmod.parse(config))
    blob = store.objects.pop(key)
    site.regenerate(store)
    assert "RUN step 0" not in store.get(paths.site_repository("team/app-0")).decode()

    store.put(key, blob)  # as verify --fix would
    report = site.regenerate(store)
    assert report.read == 1
    assert "RUN step 0" in store.get(paths.site_repository("team/app-0")).decode()


def test_answers_are_checked_when_made_for_another_search_json() -> None:
    store, _ = _tree()
    site.regenerate(store)
    good = store.get(paths.search_result("se"))
    # As a copy of another tree's site would leave it: other answers, other search.
    store.put(paths.search_result("se"), b"{}")
    doc = indexjson.read_entries(store, paths.SEARCH_JSON)
    assert doc is not None
    store.put(paths.SEARCH_JSON, indexjson.render(doc.values()) + b"\n")
    site.regenerate(store)
    assert store.get(paths.search_result("se")) == good


def test_damaged_state_and_summaries_are_ignored() -> None:
    store, names = _tree()
    site.regenerate(store)
    before = _site(store)
    store.put(paths.SITE_STATE, b"{not json")
    for key in store.list(f"{paths.SITE_SUMMARIES}/"):
        store.put(key, indexjson.GENERATOR.encode() + b"\nteam/app-0\tx\t{")
    report = site.regenerate(store)
    assert report.read == len(names) and _site(store) == before
    assert state.parse(store.get(paths.SITE_STATE)).repositories
