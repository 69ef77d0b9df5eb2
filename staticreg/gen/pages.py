"""The HTML pages of the browse site, rendered with jinja2 (autoescape on).

One environment per process compiles each template once and never looks at the
files again. ``fingerprint`` changes whenever a template or staticreg's version
does, so that a rebuild knows which pages to render again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, MutableMapping, Sequence
from types import CodeType
from typing import Any

import jinja2
import markupsafe

from staticreg import __version__, paths, resources, show
from staticreg.gen import indexjson, summary
from staticreg.model import JSON

TEMPLATES = ("base.html.j2", "home.html.j2", "repository.html.j2")


def _short_digest(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}"


def _replace_specials(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


_escape_text: Callable[[str], str] = _replace_specials
with contextlib.suppress(ImportError):
    # The C function markupsafe.escape calls; a private name, hence the fallback.
    from markupsafe._speedups import _escape_inner as _escape_text


def _escape(value: object) -> str:
    """``markupsafe.escape`` with the same result, less the ``Markup`` wrapper
    for plain strings: a page holds ~500 values, and making the wrapper took
    half of its rendering time. What a template outputs is joined into text
    straight away, so nothing looks at the wrapper; anything but a plain string
    (markup, numbers, undefined values) takes markupsafe's own way."""
    if type(value) is str:
        return _escape_text(value)
    return markupsafe.escape(value)


class _Template(jinja2.Template):
    """A template whose output statements escape with ``_escape``."""

    @classmethod
    def from_code(
        cls,
        environment: jinja2.Environment,
        code: CodeType,
        globals: MutableMapping[str, Any],
        uptodate: Callable[[], bool] | None = None,
    ) -> jinja2.Template:
        template = super().from_code(environment, code, globals, uptodate)
        # The compiled functions look 'escape' up in the module they share.
        template.root_render_func.__globals__["escape"] = _escape
        return template


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
    env.template_class = _Template
    env.filters["size"] = show.human_size
    env.filters["short"] = _short_digest
    env.filters["brief"] = indexjson.short_description
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
