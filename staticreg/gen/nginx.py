"""Render the nginx configuration that serves a tree's pull API."""

from __future__ import annotations

import os
import shlex
import stat
import string

import jinja2

from staticreg import __version__, api, paths, reference, resources

_TAG_RE = reference.TAG_RE.pattern.strip("^$")
_NAME_RE = reference.NAME_RE.pattern.strip("^$")
# How many '%2F' and how many of each upper-case letter nginx rewrites in a search
# term: names rarely nest deeper, and terms are typed in lower case.
SEARCH_FOLD_PASSES = 4


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.folder("templates"))),
        autoescape=False,  # nginx syntax, not HTML; every value is checked below
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def _headers(cache: str) -> str:
    lines = [
        "add_header Docker-Distribution-API-Version registry/2.0 always;",
        f'add_header Cache-Control "{cache}" always;',
    ]
    return "\n        ".join(lines)


def render_server(root: str, listen: str, server_name: str = "_") -> str:
    """The ``server { ... }`` block, for inclusion in an existing nginx."""
    _check_value("root", root)
    _check_value("listen", listen)
    _check_value("server name", server_name)
    errors = [
        (code, (status, api.error_body(code).decode()))
        for code, (status, _) in api.ERRORS.items()
        if code not in api.SERVE_ONLY_ERRORS
    ]
    return (
        _environment()
        .get_template("nginx-server.conf.j2")
        .render(
            root=os.path.abspath(root),
            listen=listen,
            server_name=server_name,
            version=__version__,
            extensions=[(ext, mt) for mt, ext in paths.MANIFEST_EXTENSIONS.items()],
            name_re=_NAME_RE,
            tag_re=_TAG_RE,
            errors=errors,
            headers=_headers,
            short=api.SHORT,
            immutable=api.IMMUTABLE,
            search=_search_settings(),
            site_headers=api.SITE_HEADERS,
        )
    )


def _search_settings() -> dict[str, object]:
    """What the /v1/search location needs: its term pattern and fixed answers."""
    return {
        "passes": SEARCH_FOLD_PASSES,
        "letters": [(c, c.lower()) for c in string.ascii_uppercase],
        "term_re": api.SEARCH_TERM_RE.pattern,
        "max": api.MAX_SEARCH_TERM,
        "invalid": api.search_body("", [], 0).decode(),
        # nginx fills in $term, which the pattern above has proved safe in JSON.
        "none": api.search_body("$term", [], 0).decode(),
    }


def render_full(root: str, listen: str, conf_path: str, server_name: str = "_") -> str:
    """A complete nginx.conf that ``nginx -c FILE -p PREFIX`` runs as it is.

    Its header names ``conf_path`` as ``run_command`` does.
    """
    server_block = render_server(root, listen, server_name)
    return (
        _environment()
        .get_template("nginx.conf.j2")
        .render(
            root=os.path.abspath(root),
            conf_path=_shell_path(conf_path),
            server_block=server_block,
        )
    )


def run_command(conf_path: str) -> str:
    """The command that runs the config written to ``conf_path``."""
    return f"nginx -c {_shell_path(conf_path)} -p PREFIX"


def _shell_path(path: str) -> str:
    # Absolute: nginx reads a relative -c against the -p prefix, not the
    # current folder. No line breaks: the path goes into a comment line.
    if any(c in path for c in "\n\r"):
        raise ValueError(f"cannot write config path {path!r} into an nginx config")
    return shlex.quote(os.path.abspath(path))


def _check_value(what: str, value: str) -> None:
    if any(c in value for c in ";{}'\"\n\r#") or not value.strip():
        raise ValueError(f"cannot write {what} {value!r} into an nginx config")


def unreadable_for_workers(root: str) -> list[str]:
    """Paths that nginx workers, running as an unprivileged user, could not read.

    Checks each folder from / down to the tree (each needs o+x) and the tree's
    top-level entries (o+r for files, o+rx for folders).
    """
    problems = []
    path = os.path.abspath(root)
    parts = path.split(os.sep)
    for depth in range(1, len(parts) + 1):
        folder = os.sep.join(parts[:depth]) or os.sep
        if os.path.isdir(folder) and not os.stat(folder).st_mode & stat.S_IXOTH:
            problems.append(folder)
    if os.path.isdir(path):
        for entry in os.scandir(path):
            if entry.name.startswith("."):
                continue
            mode = entry.stat().st_mode
            need = stat.S_IROTH | (stat.S_IXOTH if entry.is_dir() else 0)
            if mode & need != need:
                problems.append(entry.path)
    return problems
