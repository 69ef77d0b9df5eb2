"""The browse site: pages, escaping, incremental regeneration, and scale."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import markupsafe
import pytest
import sample_trees
from gen import synthetic

from staticreg import api, paths, resources
from staticreg.errors import StaticregError
from staticreg.gen import indexjson, pages, site
from staticreg.store import MemoryStore

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quoted"'


def _tree(store: MemoryStore, count: int, tags: int = 2) -> list[str]:
    names = [f"team/app-{n}" for n in range(count)]
    for name in names:
        synthetic.repository(store, name, tags, f"The {name} service")
    synthetic.catalog_of(store, names)
    return names


def test_site_has_home_repository_pages_assets_and_content_types() -> None:
    store = MemoryStore()
    _tree(store, 3)
    site.regenerate(store)
    home = store.get(paths.site_home(1)).decode()
    assert 'href="r/team/app-0/index.html"' in home
    assert 'href="assets/site.css"' in home and "search.json" in home
    page = store.get(paths.site_repository("team/app-1")).decode()
    assert 'href="../../../assets/site.css"' in page
    assert "docker pull <span data-host>HOST</span>/team/app-1:1.1" in page
    assert "RUN step 0 of team/app-1:1" in page  # history, created by
    assert "No signatures, SBOMs or other artifacts" in page
    assert store.content_types[paths.site_home(1)] == "text/html; charset=utf-8"
    assert store.content_types["site/assets/site.js"].startswith("text/javascript")
    assert store.content_types[paths.INDEX_JSON] == "application/json"
    for text in (home, page):  # nothing from another origin
        assert "http://" not in text and "https://" not in text


def test_labels_and_descriptions_are_escaped() -> None:
    store = MemoryStore()
    labels = {"org.opencontainers.image.source": "javascript:alert(1)", "x": MARKUP}
    synthetic.repository(store, "evil/app", 1, MARKUP, labels)
    synthetic.catalog_of(store, ["evil/app"])
    site.regenerate(store)
    for key in (paths.site_home(1), paths.site_repository("evil/app")):
        text = store.get(key).decode()
        assert "<script>alert" not in text and "<img src=x" not in text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
    page = store.get(paths.site_repository("evil/app")).decode()
    assert 'href="javascript:' not in page  # only http(s) sources become links


def test_referrers_from_the_record_are_listed() -> None:
    store = MemoryStore()
    _tree(store, 1, tags=1)
    record = store.get(paths.repository_record("team/app-0")).decode()
    digest = record.split('"digest": "')[1].split('"')[0]
    signature = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "5" * 64,
        "size": 500,
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
    }
    doc = json.loads(record)
    doc["referrers"] = {digest: [signature]}
    doc["tags"]["sha256-" + digest.split(":")[1]] = doc["tags"]["1.0"]
    store.put(paths.repository_record("team/app-0"), json.dumps(doc).encode())
    site.regenerate(store)
    page = store.get(paths.site_repository("team/app-0")).decode()
    assert "application/vnd.dev.cosign.artifact.sig.v1+json" in page
    assert "/team/app-0:sha256-" not in page  # the fallback tag is not listed


def test_publishing_one_repository_rewrites_only_what_changed() -> None:
    store = synthetic.CountingStore()
    names = _tree(store, 250)
    site.regenerate(store)
    answers = {k for k in store.objects if k.startswith("v1/search/")}
    store.written.clear()

    synthetic.repository(store, "zeta/new", 1, "A brand new service")
    synthetic.catalog_of(store, [*names, "zeta/new"])
    store.written.clear()
    report = site.regenerate(store, ["zeta/new"])

    assert not report.full and report.read == 1
    written = set(store.written)
    assert paths.site_repository("zeta/new") in written
    assert not any(k.startswith("site/r/team/") for k in written)
    # Only answers for the new repository's terms: its name, parts and words.
    changed = {k for k in written if k.startswith("v1/search/")}
    terms = indexjson.terms("zeta/new", "A brand new service")
    assert changed and changed <= {paths.search_result(t) for t in terms}
    assert len(changed) < len(answers) / 10
    assert paths.site_home(3) in written  # the new name sorts last, on page 3

    store.written.clear()
    assert site.regenerate(store, ["zeta/new"]).written == 0  # nothing differs


def test_a_publish_that_died_before_its_site_update_is_made_up_later() -> None:
    store = MemoryStore()
    names = _tree(store, 3)
    site.regenerate(store)

    # A publish noted its repository, moved its pointers, then died.
    site.mark_pending(store, ["zeta/lost"])
    synthetic.repository(store, "zeta/lost", 1, "Published, then killed")
    synthetic.catalog_of(store, [*names, "zeta/lost"])
    assert paths.site_repository("zeta/lost") not in store.objects

    # The next publish, into another repository, catches up on both.
    synthetic.repository(store, "zeta/next", 1, "The next publish")
    synthetic.catalog_of(store, [*names, "zeta/lost", "zeta/next"])
    report = site.regenerate(store, ["zeta/next"])
    assert not report.full and report.read == 2
    for name in ("zeta/lost", "zeta/next"):
        assert paths.site_repository(name) in store.objects
    assert paths.SITE_PENDING not in store.objects


def test_pending_everything_redoes_every_repository() -> None:
    store = MemoryStore()
    _tree(store, 3)
    site.regenerate(store)
    site.mark_pending(store, None)
    site.mark_pending(store, ["team/app-1"])  # still everything
    assert site.regenerate(store, ["team/app-1"]).full


def test_forced_rebuild_trusts_nothing_the_last_run_left() -> None:
    store = MemoryStore()
    _tree(store, 3)
    site.regenerate(store)
    page = paths.site_repository("team/app-2")
    store.put(page, b"damaged by hand")

    site.regenerate(store)  # an ordinary full run trusts its state
    assert store.get(page) == b"damaged by hand"
    site.regenerate(store, force=True)
    assert b"docker pull" in store.get(page)


def test_a_new_description_removes_answers_of_its_old_words() -> None:
    store = MemoryStore()
    synthetic.repository(store, "solo/app", 1, "uniqueword here")
    synthetic.catalog_of(store, ["solo/app"])
    site.regenerate(store)
    assert paths.search_result("uniqueword") in store.objects
    synthetic.repository(store, "solo/app", 1, "another text")
    site.regenerate(store, ["solo/app"])
    assert paths.search_result("uniqueword") not in store.objects
    assert paths.search_result("another") in store.objects


def test_home_pages_split_and_stale_ones_go() -> None:
    store = MemoryStore()
    names = _tree(store, site.PAGE_SIZE * 2 + 1, tags=1)
    site.regenerate(store)
    assert paths.site_home(3) in store.objects
    page3 = store.get(paths.site_home(3)).decode()
    assert 'href="../../page/2/index.html"' in page3 and "Page 3 of 3" in page3
    synthetic.catalog_of(store, names[: site.PAGE_SIZE + 1])
    site.regenerate(store, [])  # incremental: no listing of the store
    assert paths.site_home(3) not in store.objects
    assert paths.site_repository(names[-1]) not in store.objects
    assert paths.search_result(names[-1]) not in store.objects
    synthetic.catalog_of(store, names[: site.PAGE_SIZE])
    site.regenerate(store)
    assert paths.site_home(2) not in store.objects


def test_site_of_a_bucket_blob_copies_tree_lists_its_repositories(
    tmp_path: Path,
) -> None:
    store = synthetic.CountingStore()
    inputs = sample_trees.inputs(tmp_path)
    sample_trees.publish_into(store, inputs, layout="bucket-blob-copies")
    assert paths.CATALOG not in store.objects  # this layout's is v2/_catalog
    home = store.get(paths.site_home(1)).decode()
    assert f"{len(sample_trees.REPOSITORIES)} repositories" in home
    for name in sample_trees.REPOSITORIES:
        assert f'href="r/{name}/index.html"' in home
        assert paths.site_repository(name) in store.objects
    site_keys = [k for k in store.cache_controls if k.startswith(("site/", "v1/"))]
    assert site_keys and all(store.cache_controls[k] == api.SHORT for k in site_keys)

    # A rebuild finds the layout in the tree's settings, and nothing to do.
    report = site.regenerate(store)
    assert report.unchanged == len(sample_trees.REPOSITORIES) and report.written == 0


def test_base_url_sets_the_pull_host_and_is_kept() -> None:
    store = MemoryStore()
    _tree(store, 1)
    site.regenerate(store, base_url="https://registry.example.com:8443/")
    page = store.get(paths.site_repository("team/app-0")).decode()
    assert 'data-registry-host="registry.example.com:8443"' in page
    assert "<span data-host>registry.example.com:8443</span>/team/app-0:1.0" in page
    site.regenerate(store, ["team/app-0"])
    assert "registry.example.com:8443" in store.get(paths.site_home(1)).decode()
    site.regenerate(store, base_url="")
    assert "data-registry-host" not in store.get(paths.site_home(1)).decode()
    with pytest.raises(StaticregError, match="invalid base URL 'a b'"):
        site.regenerate(store, base_url="a b")


def test_pages_escape_exactly_as_markupsafe_does() -> None:
    values = [MARKUP, "it's <b>&amp;", "caf\u00e9 \U0001f40b", "", "plain"]
    for value in values:
        expected = str(markupsafe.escape(value))
        assert pages._escape(value) == pages._replace_specials(value) == expected
    assert pages._escape(markupsafe.Markup("<b>kept</b>")) == "<b>kept</b>"
    assert pages._escape(12) == "12"


def test_generation_at_5000_repositories_and_50000_tags() -> None:
    started = time.perf_counter()
    store = synthetic.tree(5000, 10)
    built = time.perf_counter() - started

    started = time.perf_counter()
    report = site.regenerate(store)
    full = time.perf_counter() - started
    names = sorted(k for k in store.objects if k.startswith("site/r/"))
    synthetic.repository(store, "team1/extra", 3, "One more service")
    synthetic.catalog_of(store, [*(n[7:-11] for n in names), "team1/extra"])
    started = time.perf_counter()
    again = site.regenerate(store, ["team1/extra"])
    incremental = time.perf_counter() - started

    home = len(store.get(paths.site_home(1)))
    answers = sum(1 for k in store.objects if k.startswith("v1/search/"))
    print(
        f"\nsynthetic tree {built:.1f}s; full generation {full:.1f}s "
        f"({report.written} files, {answers} search answers); after one publish "
        f"{incremental:.2f}s ({again.written} files); home page {home} bytes; "
        f"search.json {len(store.get(paths.SEARCH_JSON))} bytes"
    )
    # Times are printed, not asserted: bench/site.py measures them.
    assert report.read == 5000 and again.read == 1
    assert home < 64_000


# Contrast ------------------------------------------------------------------------

CSS = resources.folder("site") / "site.css"
_HEX = r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?"


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of '#rgb' or '#rrggbb'."""
    hex_ = colour.lstrip("#")
    if len(hex_) == 3:
        hex_ = "".join(c * 2 for c in hex_)
    channels = [int(hex_[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, other: str) -> float:
    light, dark = sorted([_luminance(one), _luminance(other)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _schemes(css: str) -> dict[str, dict[str, str]]:
    """The colour variables of the light scheme, and of the dark one (the light
    ones it does not override included), plus the buttons' text colour."""
    roots = re.findall(r":root\s*\{([^}]*)\}", css)
    buttons = re.findall(r"(?:^|\s)button\s*\{([^}]*)\}", css)
    assert len(roots) == 2 and len(buttons) == 2, "light, then dark"
    schemes = {}
    variables: dict[str, str] = {}
    for name, root, button in zip(("light", "dark"), roots, buttons, strict=True):
        variables = variables | dict(re.findall(rf"--([\w-]+):\s*({_HEX})", root))
        text = re.search(rf"(?<![\w-])color:\s*({_HEX})", button)
        assert text, "buttons set their text colour in each scheme"
        schemes[name] = {**variables, "button": text.group(1)}
    return schemes


def test_contrast_test_computes_the_wcag_ratio() -> None:
    assert contrast("#000", "#ffffff") == pytest.approx(21)
    assert contrast("#777777", "#fff") == pytest.approx(4.48, abs=0.01)


def test_text_colours_have_a_contrast_of_4_5_on_their_backgrounds() -> None:
    css = CSS.read_text()
    # Every text colour and background the stylesheet uses is one checked here.
    texts = set(re.findall(r"(?<![\w-])color:\s*([^;}]+?)\s*[;}]", css))
    backgrounds = set(re.findall(r"background:\s*([^;}]+?)\s*[;}]", css))
    assert texts <= {"var(--fg)", "var(--muted)", "var(--link)", "#fff", "#0d1117"}
    assert backgrounds <= {"var(--bg)", "var(--soft)", "var(--accent)"}
    for scheme, colours in _schemes(css).items():
        pairs = [(t, b) for t in ("fg", "muted", "link") for b in ("bg", "soft")]
        pairs.append(("button", "accent"))  # buttons: text on the accent colour
        for text, background in pairs:
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, f"{scheme}: {text} on {background} is {ratio:.2f}"
