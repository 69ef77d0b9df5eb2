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

    ``diff_id`` is the digest of the uncompressed tar, as the config records it;
    the source's bytes may be compressed, and their digest is only known once read.
    """

    opener: Opener
    diff_id: Digest
    name: str
    size: int


@dataclass(frozen=True)
class Image:
    """One platform's image: its config document and its layers, in order."""

    config: bytes
    layers: tuple[Layer, ...]
    name: str
    tags: tuple[str, ...] = ()
    config_digest: Digest = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config_digest", digestmod.of_bytes(self.config))

    @property
    def config_json(self) -> JSON:
        return json.loads(self.config)

    @property
    def platform(self) -> Platform:
        doc = self.config_json
        return Platform(
            os=str(doc.get("os") or "linux"),
            architecture=str(doc.get("architecture") or "amd64"),
            variant=doc.get("variant") or None,
        )
