"""The image model: descriptors, layers, images, independent of where they live.

Sources build these values; ``publish`` writes them to a store. Nothing here knows
about files, tarballs or buckets: a layer's bytes come from an ``opener`` callback,
called once per read, so sources can stream from wherever they keep them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from staticreg import digest as digestmod
from staticreg.digest import Digest
from staticreg.errors import InvalidDigest

JSON = Any
Opener = Callable[[], BinaryIO]


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about a blob it references."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] | None = None
    platform: Platform | None = None

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        return out


@dataclass(frozen=True)
class Layer:
    """A filesystem diff as a source holds it.

    ``diff_id`` is the digest of the uncompressed tar, as the config records it.
    ``stored`` is the source's own descriptor when it holds the layer as a blob
    (an OCI layout): its digest is then checked while reading, and the blob can be
    kept byte for byte. Otherwise the stored digest is known only once read.
    """

    opener: Opener
    diff_id: Digest
    name: str
    size: int
    stored: Descriptor | None = None


@dataclass(frozen=True)
class Blob:
    """Bytes a manifest references and that are published as they are."""

    descriptor: Descriptor
    opener: Opener
    name: str


@dataclass(frozen=True)
class Image:
    """One platform's image: its config document and its layers, in order.

    ``manifest`` holds the source's manifest bytes when it has them (OCI layouts):
    they are published unchanged whenever every layer is kept as it is.
    ``subject`` is set on an image that refers to another (OCI 1.1 referrers).
    """

    config: bytes
    layers: tuple[Layer, ...]
    name: str
    tags: tuple[str, ...] = ()
    manifest: bytes | None = None
    config_digest: Digest = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config_digest", digestmod.of_bytes(self.config))

    @property
    def config_json(self) -> JSON:
        return json.loads(self.config)

    @property
    def manifest_json(self) -> JSON:
        return json.loads(self.manifest) if self.manifest is not None else None

    @property
    def subject(self) -> Digest | None:
        return subject_of(self.manifest_json)

    @property
    def platform(self) -> Platform:
        doc = self.config_json
        return Platform(
            os=str(doc.get("os") or "linux"),
            architecture=str(doc.get("architecture") or "amd64"),
            variant=doc.get("variant") or None,
        )


@dataclass(frozen=True)
class Artifact:
    """A manifest published byte for byte with its blobs: signatures, SBOMs and
    other OCI artifacts, whose content staticreg does not interpret."""

    manifest: bytes
    media_type: str
    blobs: tuple[Blob, ...]
    name: str
    tags: tuple[str, ...] = ()

    @property
    def manifest_json(self) -> JSON:
        return json.loads(self.manifest)

    @property
    def subject(self) -> Digest | None:
        return subject_of(self.manifest_json)


@dataclass(frozen=True)
class Index:
    """Several manifests under one name: a multi-platform image.

    ``raw`` holds the source's index bytes, published unchanged when no child
    changed; an index assembled by staticreg has none. ``descriptors`` are the
    source's entries for the children (platform and annotations kept from them).
    """

    children: tuple[Image | Artifact | Index, ...]
    name: str
    media_type: str
    tags: tuple[str, ...] = ()
    raw: bytes | None = None
    descriptors: tuple[JSON, ...] = ()

    @property
    def subject(self) -> Digest | None:
        return subject_of(json.loads(self.raw)) if self.raw is not None else None


Node = Image | Artifact | Index


def subject_of(doc: JSON) -> Digest | None:
    """The digest a manifest's ``subject`` names, if it has one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("subject"), dict):
        return None
    try:
        return digestmod.parse(str(doc["subject"].get("digest")))
    except InvalidDigest:
        return None
