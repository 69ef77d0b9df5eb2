"""Decide the names each input image is published under."""

from __future__ import annotations

from collections.abc import Sequence

from staticreg import reference
from staticreg.errors import Conflict, InvalidReference, SourceError
from staticreg.model import Image
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
    images: Sequence[Image], tags: Sequence[Reference]
) -> list[tuple[Image, list[Reference]]]:
    """Pair each image with its references: ``tags`` if given, else its RepoTags."""
    if tags:
        if len(images) != 1:
            # TODO(#4): several images under one --tag become a multi-platform
            # index; until then users must publish them one by one.
            raise Conflict(
                f"cannot give {len(images)} images the same --tag: one --tag names "
                "one image",
                hint="publish each image on its own, or drop --tag to keep the "
                "tags recorded in the tarball",
            )
        return [(images[0], list(tags))]
    targets = [(image, _recorded(image)) for image in images]
    _check_unique(targets)
    return targets


def _recorded(image: Image) -> list[Reference]:
    if not image.tags:
        raise SourceError(
            f"image {image.name} records no tags (RepoTags is empty)",
            hint="name it with --tag NAME:TAG",
        )
    refs = []
    for text in image.tags:
        try:
            refs.append(reference.parse(text))
        except InvalidReference as err:
            raise InvalidReference(
                f"image {image.name} records tag {text!r}, which is not valid: {err}",
                hint="name it with --tag NAME:TAG",
            ) from None
    return refs


def _check_unique(targets: Sequence[tuple[Image, list[Reference]]]) -> None:
    owner: dict[str, Image] = {}
    for image, refs in targets:
        for ref in refs:
            other = owner.setdefault(str(ref), image)
            if other is not image and other.config_digest != image.config_digest:
                raise Conflict(
                    f"{ref} is recorded for two different images, {other.name} and "
                    f"{image.name}",
                    hint="publish them one by one with --tag",
                )
