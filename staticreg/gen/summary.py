"""One repository as the browse site and the index JSON show it, read back.

The record (``catalog.read_repository``) says which manifest each tag names; the
manifest and config blobs say what each image holds: platform, creation time,
labels, layers and history. Records may hold more than this module knows
(indexes, referrers); a blob that is missing or not understood leaves its part
out with a debug line rather than failing the site of every repository.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import NamedTuple

from staticreg import catalog, mediatypes, paths
from staticreg import digest as digestmod
from staticreg.errors import InvalidDigest
from staticreg.model import JSON
from staticreg.store import Store

log = logging.getLogger(__name__)

# https://github.com/opencontainers/image-spec/blob/main/annotations.md
ANNOTATION_PREFIX = "org.opencontainers.image."
FIELDS = ("title", "description", "source", "licenses", "version")
CREATED = ANNOTATION_PREFIX + "created"
_IMAGE_CONFIGS = (mediatypes.OCI_CONFIG, mediatypes.DOCKER_CONFIG)
_FRACTION_RE = re.compile(r"(\.\d{1,6})\d*")


class Layer(NamedTuple):
    digest: str
    size: int
    media_type: str


class Step(NamedTuple):
    """One history entry of an image config and the layer it made (None for an
    empty step). Layers the history does not account for get a step of their own.
    """

    created_by: str
    created: str | None
    layer: Layer | None


@dataclass(frozen=True)
class Image:
    """One platform's image, or an artifact (signature, SBOM), under a manifest."""

    digest: str
    media_type: str
    platform: str
    size: int
    created: str | None
    labels: dict[str, str]
    layers: tuple[Layer, ...] = ()
    history: tuple[Step, ...] = ()
    artifact_type: str | None = None
    config: Layer | None = None


@dataclass(frozen=True)
class Referrer:
    """A manifest whose subject is a tag's manifest: a signature, an SBOM."""

    digest: str
    artifact_type: str
    media_type: str
    size: int
    annotations: dict[str, str]

    @property
    def created(self) -> str | None:
        return normalize_time(self.annotations.get(CREATED))


@dataclass(frozen=True)
class Manifest:
    """What a tag names: one image manifest, or an index of several."""

    digest: str
    media_type: str
    size: int
    images: tuple[Image, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    referrers: tuple[Referrer, ...] = ()

    @cached_property
    def platforms(self) -> list[str]:
        return sorted({i.platform for i in self.images if i.platform})

    @cached_property
    def created(self) -> str | None:
        return max((i.created for i in self.images if i.created), default=None)

    @cached_property
    def labels(self) -> dict[str, str]:
        """The first image's labels under the manifest's own annotations."""
        first = self.images[0].labels if self.images else {}
        return {**first, **self.annotations}

    @property
    def is_index(self) -> bool:
        return mediatypes.is_index(self.media_type)


@dataclass(frozen=True)
class Tag:
    name: str
    manifest: Manifest


@dataclass(frozen=True)
class Repository:
    """A repository as the site shows it. ``complete`` is False when a blob it
    needs was missing: then it is read again next time rather than cached."""

    name: str
    tags: tuple[Tag, ...]
    complete: bool = True

    @cached_property
    def representative(self) -> Manifest | None:
        """The manifest whose labels describe the repository: 'latest', else the
        newest tag (by creation time, then by name)."""
        by_name = {t.name: t.manifest for t in self.tags}
        if "latest" in by_name:
            return by_name["latest"]
        newest = max(
            self.tags, key=lambda t: (t.manifest.created or "", t.name), default=None
        )
        return newest.manifest if newest else None

    def field(self, name: str) -> str:
        """An ``org.opencontainers.image.<name>`` value, or ''."""
        manifest = self.representative
        return manifest.labels.get(ANNOTATION_PREFIX + name, "") if manifest else ""

    @cached_property
    def updated(self) -> str | None:
        return max(
            (t.manifest.created for t in self.tags if t.manifest.created), default=None
        )

    def manifests(self) -> list[tuple[Manifest, list[str]]]:
        """Each distinct manifest with the tags naming it, newest first."""
        tags: dict[str, list[str]] = {}
        found: dict[str, Manifest] = {}
        for tag in self.tags:
            tags.setdefault(tag.manifest.digest, []).append(tag.name)
            found[tag.manifest.digest] = tag.manifest
        order = sorted(
            found.values(), key=lambda m: (m.created or "", m.digest), reverse=True
        )
        return [(m, sorted(tags[m.digest])) for m in order]


@lru_cache(maxsize=4096)
def normalize_time(value: object) -> str | None:
    """An RFC 3339 time as 'YYYY-MM-DDTHH:MM:SSZ' in UTC, or None.

    Configs carry nanoseconds and offsets; one form keeps comparisons and the
    generated files stable.
    """
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION_RE.sub(r"\1", value.strip().replace("z", "Z"), count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reader:
    """Reads repositories from one store, each blob at most once per reader."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._docs: dict[str, JSON] = {}
        self._sizes: dict[str, int] = {}
        self._missing = 0

    def repository(self, name: str) -> Repository | None:
        record = catalog.read_repository(self.store, name)
        return None if record is None else self.summarize(record)

    def summarize(self, record: catalog.RepositoryRecord) -> Repository:
        """The repository a record describes, read from its blobs."""
        name = record.name
        self._docs.clear()  # a blob is rarely shared across repositories
        self._missing = 0
        referrers = _referrers_of(record)
        hidden = {_fallback_tag(subject) for subject in referrers}
        tags = []
        for tag, entry in sorted(record.tags.items()):
            if tag in hidden:
                continue
            manifest = self.manifest(entry.digest, entry.media_type, referrers)
            if manifest is not None:
                tags.append(Tag(tag, manifest))
        return Repository(name, tuple(tags), complete=not self._missing)

    def manifest(
        self, digest: str, media_type: str, referrers: dict[str, list[JSON]]
    ) -> Manifest | None:
        doc = self._json(digest)
        if doc is None:
            return None
        media_type = str(doc.get("mediaType") or media_type)
        if isinstance(doc.get("manifests"), list):
            images = self._children(doc["manifests"])
            children = [i.digest for i in images]
        else:
            image = self._image(digest, doc, media_type, "")
            images = (image,) if image else ()
            children = []
        size = sum(self._sizes.get(d, 0) for d in [digest, *children])
        size += _unique_size(images)
        found = [
            _referrer(d)
            for subject in [digest, *children]
            for d in referrers.get(subject, [])
        ]
        return Manifest(
            digest,
            media_type,
            size,
            images,
            _strings(doc.get("annotations")),
            tuple(r for r in found if r is not None),
        )

    def _children(self, descriptors: list[JSON]) -> tuple[Image, ...]:
        images = []
        for descriptor in descriptors:
            if not isinstance(descriptor, dict):
                continue
            platform = _platform(descriptor.get("platform"))
            # buildx attestations ride in indexes as 'unknown/unknown' images.
            if platform.startswith("unknown"):
                continue
            digest = str(descriptor.get("digest"))
            doc = self._json(digest)
            if doc is None:
                continue
            image = self._image(digest, doc, str(descriptor.get("mediaType")), platform)
            if image is not None:
                images.append(image)
        return tuple(images)

    def _image(
        self, digest: str, doc: JSON, media_type: str, platform: str
    ) -> Image | None:
        config_ref = doc.get("config")
        if not isinstance(config_ref, dict):
            return None
        layers = tuple(_layers(doc.get("layers")))
        blob = _layers([config_ref])[0]
        size = blob.size + sum(x.size for x in layers)
        annotations = _strings(doc.get("annotations"))
        config_type = blob.media_type
        if config_type not in _IMAGE_CONFIGS:
            artifact = str(doc.get("artifactType") or config_type)
            return Image(
                digest,
                media_type,
                platform,
                size,
                normalize_time(annotations.get(CREATED)),
                annotations,
                layers,
                artifact_type=artifact,
                config=blob,
            )
        config = self._json(blob.digest)
        if not isinstance(config, dict):
            config = {}
        inner = config.get("config")
        labels = {
            **_strings(inner.get("Labels") if isinstance(inner, dict) else None),
            **annotations,
        }
        return Image(
            digest,
            media_type,
            platform or _platform(config),
            size,
            normalize_time(config.get("created")),
            labels,
            layers,
            tuple(_history(config.get("history"), layers)),
            config=blob,
        )

    def _json(self, digest: str) -> JSON:
        if digest in self._docs:
            return self._docs[digest]
        doc = None
        try:
            raw = self.store.get(paths.blob(digestmod.parse(digest)))
            self._sizes[digest] = len(raw)
            doc = json.loads(raw)
        except KeyError as err:
            # Unlike a damaged blob, a missing one may be put back (verify --fix).
            self._missing += 1
            log.debug("cannot read blob %s for the site: %s", digest, err)
        except (InvalidDigest, ValueError, UnicodeDecodeError) as err:
            log.debug("cannot read blob %s for the site: %s", digest, err)
        self._docs[digest] = doc if isinstance(doc, dict) else None
        return self._docs[digest]


def _unique_size(images: tuple[Image, ...]) -> int:
    """Config and layer sizes, each blob counted once across platforms."""
    sizes = {}
    for image in images:
        for blob in (image.config, *image.layers):
            if blob is not None:
                sizes[blob.digest] = blob.size
    return sum(sizes.values())


def _referrers_of(record: catalog.RepositoryRecord) -> dict[str, list[JSON]]:
    # Records gained referrers with OCI 1.1 support (#4); older ones have none.
    found = getattr(record, "referrers", None)
    return found if isinstance(found, dict) else {}


def _fallback_tag(subject: str) -> str:
    """The 'sha256-<hex>' tag that holds a subject's referrers for old clients."""
    return subject.replace(":", "-", 1)


def _referrer(descriptor: JSON) -> Referrer | None:
    if not isinstance(descriptor, dict) or "digest" not in descriptor:
        return None
    return Referrer(
        str(descriptor["digest"]),
        str(descriptor.get("artifactType") or descriptor.get("mediaType") or ""),
        str(descriptor.get("mediaType") or ""),
        int(descriptor.get("size") or 0),
        _strings(descriptor.get("annotations")),
    )


def _platform(doc: JSON) -> str:
    if not isinstance(doc, dict):
        return ""
    parts = [doc.get("os"), doc.get("architecture"), doc.get("variant")]
    return "/".join(str(p) for p in parts if p)


def _layers(items: JSON) -> list[Layer]:
    if not isinstance(items, list):
        return []
    return [
        Layer(str(x.get("digest")), int(x.get("size") or 0), str(x.get("mediaType")))
        for x in items
        if isinstance(x, dict)
    ]


def _history(items: JSON, layers: tuple[Layer, ...]) -> list[Step]:
    """History entries, each non-empty one paired with its layer, in order."""
    steps = []
    remaining = iter(layers)
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        layer = None if item.get("empty_layer") else next(remaining, None)
        text = item.get("created_by") or item.get("comment") or ""
        steps.append(Step(str(text), normalize_time(item.get("created")), layer))
    steps += [Step("", None, layer) for layer in remaining]
    return steps


def _strings(value: JSON) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in sorted(value.items())}
