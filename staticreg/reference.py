"""Image references: repository names and tags, by the distribution grammar.

    name      := component ('/' component)*
    component := [a-z0-9]+ ((\\.|_|__|-+) [a-z0-9]+)*
    tag       := [a-zA-Z0-9_] [a-zA-Z0-9._-]{0,127}
    reference := [host '/'] name [':' tag] ['@' digest]

A leading registry host is dropped, because a published tree is served under
whatever host name the operator chooses. A first path part is a host when it holds
a '.' or a ':' or is 'localhost' (Docker's rule). Docker Hub's implicit 'library/'
namespace is dropped with its host, so 'docker.io/library/busybox:latest', as
podman and Docker 25 record it, and 'busybox:latest', as Docker 24 records it,
both name the repository 'busybox'; so does a tarball's hostless
'library/busybox:latest' (``recorded_name``).
(https://github.com/distribution/distribution/blob/main/reference/reference.go)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from staticreg import digest as digestmod
from staticreg.errors import InvalidDigest, InvalidReference

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

# Clients cap 'host/name' at 255 characters; leave room for a host name.
MAX_NAME_LENGTH = 200
DEFAULT_TAG = "latest"
_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Reference:
    """A repository plus a tag or a digest (at least one of them)."""

    repository: str
    tag: str | None = None
    digest: digestmod.Digest | None = None

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise naming it."""
    if not name:
        raise InvalidReference("invalid repository name '': expected a non-empty name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidReference(
            f"invalid repository name {name!r}: longer than {MAX_NAME_LENGTH} "
            "characters"
        )
    if not NAME_RE.match(name):
        raise InvalidReference(
            f"invalid repository name {name!r}: expected lower-case letters, digits "
            "and separators ('.', '_', '__', '-') in parts joined by '/'",
            hint=_name_hint(name),
        )
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise InvalidReference(
            f"invalid tag {tag!r}: expected up to 128 letters, digits, '_', '.' or "
            "'-', not starting with '.' or '-'"
        )
    return tag


def _name_hint(name: str) -> str | None:
    if name != name.lower() and NAME_RE.match(name.lower()):
        return f"repository names are lower case: try {name.lower()!r}"
    if "//" in name or name.startswith("/") or name.endswith("/"):
        return "a repository name has no empty parts"
    return None


def _split_host(text: str) -> str:
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _HOST_RE.match(first):
            raise InvalidReference(
                f"invalid reference {text!r}: {first!r} is neither a registry host "
                "nor a repository name part",
                hint="a host looks like registry.example.com or localhost:5000",
            )
        if first in _HUB_HOSTS and rest.startswith("library/"):
            return rest.removeprefix("library/")
        return rest
    return text


def recorded_name(text: str) -> str:
    """A name as a ``docker save`` tarball records it, without Hub's 'library/'.

    Docker records Docker Hub names without their host, so a hostless
    'library/busybox:1' there is 'docker.io/library/busybox:1' and publishes as
    'busybox', as ``parse`` reads the hosted form. A ``--tag`` is not passed
    through here: the user's 'library/x' is taken as written.
    """
    first, sep, rest = text.partition("/")
    return rest if sep and first == "library" else text


def parse(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse ``[host/]name[:tag][@digest]``, dropping the host.

    Without a tag or digest the reference gets ``default_tag``; with
    ``default_tag=None`` it names the repository alone.
    """
    rest, _, digest_text = text.partition("@")
    found_digest = None
    if digest_text:
        try:
            found_digest = digestmod.parse(digest_text)
        except InvalidDigest as err:
            raise InvalidReference(f"invalid reference {text!r}: {err}") from None

    rest = _split_host(rest)
    name, tag = rest, None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1 :]
        validate_tag(tag)
    validate_name(name)
    if tag is None and found_digest is None:
        tag = default_tag
    return Reference(name, tag, found_digest)
