"""The HTML pages of the browse site, rendered with jinja2 (autoescape on).

One environment per process compiles each template once and never looks at the
files again. ``fingerprint`` changes whenever a template or staticreg's version
does, so that a rebuild knows which pages to render again.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import jinja2

from staticreg import __version__, paths, resources
from staticreg.gen import summary
from staticreg.model import JSON

TEMPLATES = ("base.html.j2", "home.html.j2", "repository.html.j2")


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


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.folder("templates"))),
        autoescape=True,  # labels and descriptions come from image authors
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # a stat of every template per page costs ~10%
    )
    env.filters["size"] = _human_size
    env.filters["short"] = _short_digest
    env.filters["anchor"] = lambda digest: digest.replace(":", "-")
    env.filters["day"] = lambda time: (time or "")[:10]
    env.filters["web"] = lambda url: url.startswith(("https://", "http://"))
    env.globals["version"] = __version__
    return env


@functools.cache
def fingerprint() -> str:
    """A digest of the page templates and staticreg's version."""
    folder = resources.folder("templates")
    hasher = hashlib.sha256(__version__.encode())
    for name in TEMPLATES:
        hasher.update((folder / name).read_bytes())
    return hasher.hexdigest()


class Renderer:
    """Renders the pages of one registry host."""

    def __init__(self, host: str) -> None:
        self.env = _environment()
        self.host = host
        self._home = self.env.get_template("home.html.j2")
        self._repository = self.env.get_template("repository.html.j2")

    def home(self, entries: Sequence[JSON], page: int, pages: int, total: int) -> bytes:
        base = "" if page == 1 else "../../"
        return self._render(
            self._home,
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
            self._repository,
            base=base,
            repo=repo,
            tags=tags,
            manifests=repo.manifests(),
            info={name: repo.field(name) for name in summary.FIELDS},
        )

    def _render(self, template: jinja2.Template, **values: object) -> bytes:
        return template.render(host=self.host, **values).encode()


def _home_link(page: int, base: str) -> str:
    return f"{base}{paths.site_home(page).removeprefix(paths.SITE + '/')}"


def page_key(name: str) -> str | None:
    """A repository's page, or None when the page of a shorter name would have
    to be its folder (a name with an 'index.html' part)."""
    if "index.html" in name.split("/")[1:]:
        return None
    return paths.site_repository(name)
