"""Decide the names each input is published under, and assemble multi-platform
indexes from single-platform inputs that share a --tag."""

from __future__ import annotations

from collections.abc import Sequence

from staticreg import mediatypes, reference
from staticreg.errors import Conflict, InvalidReference, SourceError
from staticreg.model import Image, Index, Node
from staticreg.reference import Reference


def parse_tags(texts: Sequence[str]) -> list[Reference]:
    """Parse ``--tag`` values (``NAME[:TAG]``, a registry host is dropped)."""
    refs = []
    for text in texts:
        ref = reference.parse(text)
        if ref.digest is not None:
            raise InvalidReference(
                f"invalid --tag {text!r}: expected NAME:TAG without a digest"
            )
        refs.append(ref)
    return refs


def resolve(
    nodes: Sequence[Node], tags: Sequence[Reference]
) -> list[tuple[Node, list[Reference]]]:
    """Pair each input with its references: ``tags`` if given, else its own.

    Several single-platform images given one --tag become one OCI index.
    """
    if tags:
        if not nodes:
            raise SourceError(
                f"cannot tag {tags[0]}: the inputs hold only referrers (signatures, "
                "SBOMs), which are published beside their subjects",
                hint="drop --tag",
            )
        if len(nodes) == 1:
            return [(nodes[0], list(tags))]
        return [(assemble(nodes), list(tags))]
    targets = [(node, _recorded(node)) for node in nodes]
    _check_unique(targets)
    return targets


def assemble(nodes: Sequence[Node]) -> Index:
    """One OCI index over single-platform images, refusing a platform twice."""
    seen: dict[str, Image] = {}
    for node in nodes:
        if not isinstance(node, Image):
            raise Conflict(
                f"cannot put {node.name} under a --tag shared with other inputs: it "
                "is already a multi-platform index or an artifact",
                hint="give it a --tag of its own",
            )
        platform = str(node.platform)
        other = seen.setdefault(platform, node)
        if other is not node:
            raise Conflict(
                f"two inputs for platform {platform} under one --tag: {other.name} "
                f"and {node.name}",
                hint="an index holds one image per platform; publish one of them "
                "under another tag",
            )
    return Index(
        children=tuple(nodes),
        name="+".join(n.name for n in nodes),
        media_type=mediatypes.OCI_INDEX,
    )


def _recorded(node: Node) -> list[Reference]:
    names = [name for name in node.tags if ":" in name or "/" in name]
    if not names:
        recorded = (
            f" (it records only {', '.join(map(repr, node.tags))})" if node.tags else ""
        )
        raise SourceError(
            f"{node.name} has no name to publish it under{recorded}",
            hint="name it with --tag NAME:TAG",
        )
    refs = []
    for text in names:
        try:
            refs.append(reference.parse(text))
        except InvalidReference as err:
            raise InvalidReference(
                f"{node.name} records the name {text!r}, which is not valid: {err}",
                hint="name it with --tag NAME:TAG",
            ) from None
    return refs


def _check_unique(targets: Sequence[tuple[Node, list[Reference]]]) -> None:
    owner: dict[str, Node] = {}
    for node, refs in targets:
        for ref in refs:
            other = owner.setdefault(str(ref), node)
            if other is not node and _identity(other) != _identity(node):
                raise Conflict(
                    f"{ref} is recorded for two different images, {other.name} and "
                    f"{node.name}",
                    hint="publish them one by one with --tag",
                )


def _identity(node: Node) -> object:
    return node.config_digest if isinstance(node, Image) else node.name
