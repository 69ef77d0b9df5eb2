"""The browse site in a real browser: Debian's chromium driven by playwright.

Playwright drives the system chromium (``executable_path``); its own browser
downloads are never used, because the test machines have no internet.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from .conftest import Serve, Tree
from harness import NginxFactory, daemons, images

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MARKUP = '<img src=x onerror="window.__xss=1"><b>bold</b> & "quotes"'
# A word past the 200 characters lists show: found all the same.
LONG = "Small unix tools, " + "built for shells and scripts, " * 7 + "and a needle"
# What the page must get right for screen readers and keyboards: every control
# named (by a label, aria-label, aria-labelledby or its text), headings from h1
# without a skipped level, every image with an alt (empty when decorative).
A11Y_PROBLEMS = """() => {
  const problems = [];
  const text = (el) => (el ? el.textContent.trim() : "");
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  for (const el of document.querySelectorAll("input, button, select, textarea")) {
    if (el.type === "hidden") continue;
    const byIds = (el.getAttribute("aria-labelledby") || "").split(/\\s+/)
      .map((id) => text(document.getElementById(id))).join("");
    const named = Array.from(el.labels || []).map(text).join("") ||
      (el.getAttribute("aria-label") || "").trim() || byIds ||
      (el.tagName === "BUTTON" ? text(el) : "");
    if (!named) problems.push("unnamed control: " + el.outerHTML.slice(0, 100));
  }
  let previous = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const level = Number(h.tagName[1]);
    if (previous === 0 ? level !== 1 : level > previous + 1) {
      problems.push("h" + level + " after h" + previous + ": " + text(h));
    }
    previous = level;
  }
  if (previous === 0) problems.push("no heading");
  for (const img of document.querySelectorAll("img:not([alt])")) {
    problems.push("image without alt: " + img.outerHTML.slice(0, 100));
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def site_tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """Three repositories, one with labels that hold markup."""
    work = tmp_path_factory.mktemp("browse")
    published = Tree(work / "registry")
    labels = (
        (
            "org.opencontainers.image.description",
            "Greets the world from a static registry. " + MARKUP,
        ),
        ("org.opencontainers.image.source", "https://example.com/hello"),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
        ("com.example.note", MARKUP),
    )
    hello = dataclasses.replace(images.hello_image(("web/hello:1.0",)), labels=labels)
    published.publish(images.write_docker_save(work / "hello.tar", [hello]).path)
    published.publish(
        images.write_docker_save(work / "hello.tar", [hello]).path,
        "--tag",
        "web/hello:latest",
    )
    busybox = dataclasses.replace(
        images.busybox_image(("tools/busybox:1.36",)),
        labels=(("org.opencontainers.image.description", LONG),),
    )
    published.publish(images.write_docker_save(work / "bb.tar", [busybox]).path)
    plain = images.hello_image(("team/api-server:2",))
    published.publish(images.write_docker_save(work / "api.tar", [plain]).path)
    daemons.allow_traversal(published.root)
    return published


@pytest.fixture(scope="module")
def site_nginx(
    tmp_path_factory: pytest.TempPathFactory, site_tree: Tree
) -> Iterator[daemons.Nginx]:
    prefix = tmp_path_factory.mktemp("browse-nginx")
    conf = prefix / "nginx.conf"
    port = daemons.free_port()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "staticreg",
            "nginx",
            "--root",
            str(site_tree.root),
            "--listen",
            f"127.0.0.1:{port}",
            "-o",
            str(conf),
        ],
        check=True,
        capture_output=True,
    )
    factory = NginxFactory()
    try:
        yield factory(conf, prefix)
    finally:
        factory.close()


@pytest.fixture(scope="module")
def site_serve(
    tmp_path_factory: pytest.TempPathFactory, site_tree: Tree
) -> Iterator[Serve]:
    with Serve(tmp_path_factory.mktemp("browse-serve"), site_tree.root) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    daemons.require("chromium")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield found
        finally:
            found.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1100, "height": 900},
        permissions=["clipboard-read", "clipboard-write"],
    )
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda err: errors.append(str(err)))
    opened.on(
        "console", lambda msg: errors.append(msg.text) if msg.type == "error" else None
    )
    try:
        yield opened
        assert errors == []  # no script errors, no refused loads
    finally:
        context.close()


def _base(kind: str, nginx: daemons.Nginx, serve: Serve) -> str:
    return nginx.url if kind == "nginx" else serve.url


@pytest.mark.parametrize("kind", ["nginx", "serve"])
def test_home_lists_repositories_and_search_filters(
    kind: str, page: Page, site_nginx: daemons.Nginx, site_serve: Serve
) -> None:
    base = _base(kind, site_nginx, site_serve)
    page.goto(base + "/")
    listing = page.locator("#listing .repos .name")
    assert listing.all_inner_texts() == [
        "team/api-server",
        "tools/busybox",
        "web/hello",
    ]
    host = base.removeprefix("http://")
    assert page.locator(".lead [data-host]").inner_text() == host
    assert page.evaluate(A11Y_PROBLEMS) == []

    page.get_by_label("Search repositories").fill("UNIX")
    results = page.locator("#results .name")
    results.first.wait_for()
    assert results.all_inner_texts() == ["tools/busybox"]
    assert page.locator("#listing").is_hidden()
    assert "1 repository matches" in page.locator("#search-status").inner_text()

    page.get_by_label("Search repositories").fill("nothing-like-this")
    page.locator("#search-status", has_text="0 repositories match").wait_for()
    assert results.count() == 0
    # The whole description is searched; the list shows its first 200 characters.
    page.get_by_label("Search repositories").fill("Needle")
    results.first.wait_for()
    assert results.all_inner_texts() == ["tools/busybox"]
    shown = page.locator("#results .description").inner_text()
    assert shown == LONG[:199].rstrip() + "\u2026"
    assert page.evaluate(A11Y_PROBLEMS) == []
    page.get_by_label("Search repositories").fill("")
    page.locator("#listing").wait_for()
    if kind == "nginx":
        ARTIFACTS.mkdir(exist_ok=True)
        page.get_by_label("Search repositories").fill("e")
        results.first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "browse-home.png"), full_page=True)


@pytest.mark.parametrize("kind", ["nginx", "serve"])
def test_repository_page_shows_tags_and_copies_the_pull_command(
    kind: str,
    page: Page,
    site_tree: Tree,
    site_nginx: daemons.Nginx,
    site_serve: Serve,
) -> None:
    base = _base(kind, site_nginx, site_serve)
    page.goto(base + "/")
    page.get_by_role("link", name="web/hello").click()
    page.wait_for_url("**/r/web/hello/index.html")
    assert page.locator("h1").inner_text() == "web/hello"
    assert page.evaluate(A11Y_PROBLEMS) == []

    host = base.removeprefix("http://")
    rows = page.locator("table.tags tbody tr")
    assert sorted(rows.locator("th").all_inner_texts()) == ["1.0", "latest"]
    commands = rows.locator("td.pull code").all_inner_texts()
    assert sorted(commands) == [
        f"docker pull {host}/web/hello:1.0",
        f"docker pull {host}/web/hello:latest",
    ]
    digest = site_tree.digests["web/hello:1.0"]
    assert rows.first.locator("code[title]").get_attribute("title") == digest
    assert "linux/amd64" in rows.first.inner_text()

    page.get_by_role("button", name="Copy the pull command of web/hello:1.0").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"docker pull {host}/web/hello:1.0"
    assert page.locator("table.tags").get_by_text("Copied").count() == 1

    details = page.locator("section.image details").first
    assert "staticreg test layer 0" in details.inner_text()  # history
    assert details.locator("table.history tbody tr").count() == 2  # layers
    assert "No signatures, SBOMs" in page.locator("section.image").first.inner_text()
    if kind == "nginx":
        page.screenshot(path=str(ARTIFACTS / "browse-repository.png"), full_page=True)


def test_markup_in_labels_shows_as_text(page: Page, site_nginx: daemons.Nginx) -> None:
    page.goto(site_nginx.url + "/r/web/hello/index.html")
    assert MARKUP in page.locator("p.description").inner_text()
    assert MARKUP in page.locator("dl.labels").first.inner_text()
    assert page.locator("main img, main b").count() == 0
    page.goto(site_nginx.url + "/?q=bold")
    page.locator("#results .name").first.wait_for()
    assert MARKUP in page.locator("#results .description").inner_text()
    assert page.locator("#results img, #results b").count() == 0
    assert page.evaluate("window.__xss") is None
    link = page.get_by_role("link", name="https://example.com/hello")
    assert link.count() == 0  # on the repository page only
    page.goto(site_nginx.url + "/r/web/hello/index.html")
    assert page.get_by_role("link", name="https://example.com/hello").count() == 1


def test_site_works_without_javascript(
    browser: Browser, site_nginx: daemons.Nginx
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(site_nginx.url + "/")
        names = page.locator("#listing .repos .name").all_inner_texts()
        assert names == ["team/api-server", "tools/busybox", "web/hello"]
        page.goto(site_nginx.url + "/r/tools/busybox/")
        assert (
            "docker pull HOST/tools/busybox:1.36"
            in page.locator("table.tags").inner_text()
        )
    finally:
        context.close()
