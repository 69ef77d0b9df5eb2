"""OCI image layouts, as folders or tars -> Images, Indexes and Artifacts.

Reads ``oci-layout``, ``index.json`` and ``blobs/<algorithm>/<hex>``
(https://github.com/opencontainers/image-spec/blob/main/image-layout.md). Each
``index.json`` entry is an image or an index, named by its
``org.opencontainers.image.ref.name`` annotation (or ``io.containerd.image.name``,
which Docker 25 adds with the full reference). Entries whose manifest has a
``subject`` are referrers (signatures, SBOMs): they are published beside their
subject rather than chosen. Every manifest and config is checked against its
digest as it is read; layers are checked while they stream.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from staticreg import digest as digestmod
from staticreg import mediatypes
from staticreg.digest import Digest
from staticreg.errors import InvalidDigest, SourceError
from staticreg.model import (
    JSON,
    Artifact,
    Blob,
    Descriptor,
    Image,
    Index,
    Layer,
    Node,
    Platform,
)
from staticreg.sources.tarball import Tarball

log = logging.getLogger(__name__)

MAX_DOCUMENT_SIZE = 4 << 20
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
# BuildKit's annotations on the attestation manifests of an index
# (https://docs.docker.com/build/metadata/attestations/attestation-storage/).
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"


class Container(Protocol):
    """Where a layout's files are: a folder or a tar."""

    path: str

    def __contains__(self, name: str) -> bool: ...

    def open(self, name: str) -> BinaryIO: ...

    def read(self, name: str, limit: int) -> bytes: ...


class Folder:
    def __init__(self, path: str) -> None:
        self.path = path
        self._real = os.path.realpath(path)

    def _file(self, name: str) -> str:
        full = os.path.realpath(os.path.join(self._real, name))
        if not full.startswith(self._real + os.sep):
            raise SourceError(
                f"refusing {self.path!r}: {name!r} points outside the layout"
            )
        return full

    def __contains__(self, name: str) -> bool:
        return os.path.isfile(self._file(name))

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._file(name), "rb")
        except OSError as err:
            raise SourceError(
                f"cannot read {name!r} in {self.path!r}: {err.strerror}"
            ) from None

    def read(self, name: str, limit: int) -> bytes:
        with self.open(name) as file:
            data = file.read(limit + 1)
        if len(data) > limit:
            raise SourceError(
                f"cannot read {name!r} in {self.path!r}: larger than "
                f"the {limit} bytes expected of it"
            )
        return data


@dataclass
class Input:
    """What one input holds: nodes to tag, and referrers to publish beside them."""

    nodes: list[Node] = field(default_factory=list)
    referrers: list[Node] = field(default_factory=list)
    # For a layout from which no ref was picked: how to tell its images apart
    # (ref names, or digest and platform), one per node.
    choices: list[str] = field(default_factory=list)
    path: str = ""

    def check_single(self) -> None:
        """Refuse a layout of several images where the user named only one tag."""
        if len(self.nodes) > 1 and self.choices:
            raise SourceError(
                f"{self.path!r} holds {len(self.nodes)} images, and --tag names one",
                hint=f"its images: {'; '.join(self.choices)}; pick one with "
                f"{self.path}:REF or --ref REF (a ref name or a digest), or list "
                "them in one index in index.json to publish them together",
            )


def is_layout(container: Container) -> bool:
    return "oci-layout" in container and "index.json" in container


def open_container(path: str) -> Container:
    return Folder(path) if os.path.isdir(path) else Tarball(path)


def read(container: Container, ref: str | None, platforms: Sequence[str] = ()) -> Input:
    """Read the images of a layout; ``ref`` picks one by its ref name or digest.

    A layout of referrers only is no error: their subjects may be published.
    """
    reader = _Reader(container, platforms)
    entries = reader.entries()
    found = Input(path=container.path)
    chosen = []
    for entry in entries:
        if _has_subject(reader.document(entry)):
            found.referrers.append(reader.node(entry, names=_names(entry)))
        elif ref is None or ref in _names(entry) or ref == entry["digest"]:
            chosen.append(entry)
    if not chosen and ref is not None:
        raise SourceError(
            f"{container.path!r} has no image with ref {ref!r}",
            hint=_refs_hint(entries),
        )
    found.nodes = [reader.node(entry, names=_names(entry)) for entry in chosen]
    for node in found.nodes:
        _check_platform(node, platforms)
    found.referrers = _picked_referrers(reader, entries, found)
    if ref is None:
        found.choices = [
            _choice(entry, node)
            for entry, node in zip(chosen, found.nodes, strict=True)
        ]
    return found


def _picked_referrers(
    reader: _Reader, entries: Sequence[JSON], found: Input
) -> list[Node]:
    """Drop the referrers of manifests the layout holds but --ref or --platform
    left out: they are not published, so neither is what refers to them."""
    published = {d for node in found.nodes + found.referrers for d in _digests(node)}
    left_out = {
        d for entry in entries for d in reader.listed(entry) if d not in published
    }
    kept = []
    for node in found.referrers:
        if node.subject is not None and str(node.subject) in left_out:
            log.info(
                "skipped referrer %s: its subject %s was not picked",
                node.name,
                node.subject,
            )
        else:
            kept.append(node)
    return kept


def _digests(node: Node) -> set[str]:
    """The digests a node and its children have in the layout (an index that
    --platform rebuilt has none of its own)."""
    if isinstance(node, Index):
        own = {str(digestmod.of_bytes(node.raw))} if node.raw is not None else set()
        return own.union(*(_digests(c) for c in node.children))
    raw = node.manifest
    return {str(digestmod.of_bytes(raw))} if raw is not None else set()


def _check_platform(node: Node, platforms: Sequence[str]) -> None:
    """--platform picks among an index's platforms; a lone image must match."""
    if not platforms or isinstance(node, Index):
        return
    if isinstance(node, Artifact):
        raise SourceError(
            f"cannot pick platform {', '.join(platforms)} of {node.name}: it is an "
            "artifact, with no platform",
            hint="drop --platform",
        )
    own = str(node.platform)
    if own not in platforms:
        raise SourceError(
            f"{node.name} is a single-platform image for {own}, not "
            f"{', '.join(platforms)}",
            hint="drop --platform, or give the layout of that platform",
        )


def _choice(entry: JSON, node: Node) -> str:
    names = _names(entry)
    if names:
        return ", ".join(names)
    if isinstance(node, Image):
        kind = str(node.platform)
    else:
        kind = "index" if isinstance(node, Index) else "artifact"
    return f"{entry['digest']} ({kind})"


def _has_subject(raw: bytes) -> bool:
    try:
        doc = json.loads(raw)
    except ValueError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("subject"), dict)


def has_index_entries(container: Container) -> bool:
    """True when index.json names a multi-platform index (not plain manifests)."""
    return any(
        mediatypes.is_index(e["mediaType"]) for e in _Reader(container, ()).entries()
    )


def _names(entry: JSON) -> tuple[str, ...]:
    annotations = entry.get("annotations") or {}
    names = [annotations.get(CONTAINERD_NAME), annotations.get(REF_NAME)]
    return tuple(str(n) for n in names if n)


def _refs_hint(entries: Sequence[JSON]) -> str:
    refs = sorted({name for entry in entries for name in _names(entry)})
    if not refs:
        return "its images carry no ref names; pick none"
    return f"its refs: {', '.join(refs)}; pick one with FILE:REF or --ref REF"


class _Reader:
    def __init__(self, container: Container, platforms: Sequence[str]) -> None:
        self.container = container
        self.platforms = tuple(platforms)

    def entries(self) -> list[JSON]:
        self._check_layout_file()
        doc = self._json("index.json")
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(manifests, list) or not manifests:
            raise SourceError(
                f"cannot read index.json in {self.container.path!r}: expected a "
                "non-empty 'manifests' list"
            )
        return [self._checked_descriptor(entry, "index.json") for entry in manifests]

    def _check_layout_file(self) -> None:
        doc = self._json("oci-layout")
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise SourceError(
                f"cannot read {self.container.path!r}: oci-layout has version "
                f"{version!r}, expected 1.x"
            )

    def _json(self, name: str) -> JSON:
        raw = self.container.read(name, MAX_DOCUMENT_SIZE)
        try:
            return json.loads(raw)
        except ValueError as err:
            raise SourceError(
                f"cannot read {name!r} in {self.container.path!r}: invalid JSON ({err})"
            ) from None

    def _checked_descriptor(self, entry: JSON, where: str) -> JSON:
        try:
            ok = (
                isinstance(entry, dict)
                and isinstance(entry["mediaType"], str)
                and isinstance(entry["size"], int)
                and entry["size"] >= 0
            )
            digestmod.parse(entry["digest"])
        except (KeyError, TypeError, InvalidDigest):
            ok = False
        if not ok:
            raise SourceError(
                f"cannot read {where} in {self.container.path!r}: a descriptor lacks "
                f"a valid mediaType, digest or size: {json.dumps(entry)[:200]}"
            )
        return entry

    def _blob_name(self, found: Digest) -> str:
        return f"blobs/{found.algorithm}/{found.hex}"

    def listed(self, entry: JSON) -> list[str]:
        """An index.json entry's digest and, for an index, its manifests'."""
        found = [str(entry["digest"])]
        if mediatypes.is_index(entry["mediaType"]) and self.has_blob(entry):
            doc = json.loads(self.document(entry))
            found += [str(d.get("digest")) for d in doc.get("manifests") or []]
        return found

    def has_blob(self, desc: JSON) -> bool:
        return self._blob_name(digestmod.parse(desc["digest"])) in self.container

    def document(self, desc: JSON) -> bytes:
        """A manifest, index or config blob, checked against its descriptor."""
        found = digestmod.parse(desc["digest"])
        name = self._blob_name(found)
        if name not in self.container:
            raise SourceError(
                f"{self.container.path!r} lacks blob {found} ({desc['mediaType']})",
                hint="the layout is incomplete; export it again",
            )
        raw = self.container.read(name, MAX_DOCUMENT_SIZE)
        actual = digestmod.of_bytes(raw)
        if actual != found or len(raw) != desc["size"]:
            raise SourceError(
                f"blob {found} in {self.container.path!r} has digest {actual} and "
                f"size {len(raw)}, expected {found} and size {desc['size']}",
                hint="the layout is corrupt; export it again",
            )
        return raw

    def node(self, desc: JSON, names: tuple[str, ...] = ()) -> Node:
        media_type = desc["mediaType"]
        raw = self.document(desc)
        doc = json.loads(raw)
        label = f"{self.container.path}@{desc['digest'][:19]}"
        if mediatypes.is_index(media_type):
            return self._index(raw, doc, media_type, label, names)
        if media_type in (mediatypes.DOCKER_SCHEMA1, mediatypes.DOCKER_SCHEMA1_SIGNED):
            raise SourceError(
                f"cannot publish {label}: Docker schema 1 manifests are deprecated "
                "and refused by current clients",
                hint="convert it with 'skopeo copy --format v2s2'",
            )
        if not mediatypes.is_manifest(media_type):
            raise SourceError(
                f"cannot publish {label}: unsupported manifest media type "
                f"{media_type!r}"
            )
        if _is_image(doc, label):
            return self._image(raw, doc, label, names)
        # Anything else is published byte for byte with its blobs: OCI artifacts,
        # and manifests with an image config whose layers are no filesystem, such
        # as the in-toto attestations buildx adds to every build.
        return self._artifact(raw, doc, media_type, label, names)

    def _index(
        self, raw: bytes, doc: JSON, media_type: str, label: str, names: tuple[str, ...]
    ) -> Index:
        entries = [self._checked_descriptor(e, label) for e in doc.get("manifests", [])]
        if self.platforms:
            entries = self._pick_platforms(entries, label)
        else:
            self._check_complete(entries, label)
        children = tuple(self.node(e) for e in entries)
        unchanged = len(entries) == len(doc.get("manifests", []))
        return Index(
            children=children,
            name=label,
            media_type=media_type,
            tags=names,
            raw=raw if unchanged else None,
            descriptors=tuple(entries),
        )

    def _check_complete(self, entries: list[JSON], label: str) -> None:
        """Refuse an index whose platform images lack blobs, as Docker's
        containerd image store exports them (moby#49473)."""
        images = [e for e in entries if not _is_attestation(e)]
        missing = [e for e in images if not self.has_blob(e)]
        if not missing:
            return
        complete = sorted({_platform(e) for e in images if e not in missing})
        message = (
            f"index {label} lists {len(missing)} manifests whose blobs are "
            f"missing, for platforms {_platform_list(missing)}"
        )
        if not complete:
            raise SourceError(
                message + "; no platform of it is complete",
                hint="the layout is incomplete; export it again with the blobs of "
                "at least one platform",
            )
        raise SourceError(
            message,
            hint="publish only the complete platforms with "
            + " ".join(f"--platform {p}" for p in complete),
        )

    def _pick_platforms(self, entries: list[JSON], label: str) -> list[JSON]:
        """The entries of the chosen platforms, and the attestations attached to
        them whose blobs are all there; an index's own order is kept."""
        images = [e for e in entries if not _is_attestation(e)]
        picked = [e for e in images if _platform(e) in self.platforms]
        found = {_platform(e) for e in picked}
        absent = [p for p in self.platforms if p not in found]
        if absent:
            raise SourceError(
                f"index {label} has no platform {', '.join(absent)}",
                hint=f"its platforms: {_platform_list(images)}",
            )
        for entry in picked:
            if not self.has_blob(entry):
                raise SourceError(
                    f"index {label}: the blobs of platform {_platform(entry)} are "
                    "missing from the layout",
                    hint=f"its complete platforms: {self._complete_list(images)}",
                )
        chosen = {str(e["digest"]) for e in picked}
        return [
            e
            for e in entries
            if e in picked
            or (_attached_to(e) in chosen and self._has_all_blobs(e, label))
        ]

    def _complete_list(self, images: list[JSON]) -> str:
        return _platform_list([e for e in images if self.has_blob(e)]) or "none"

    def _has_all_blobs(self, desc: JSON, label: str) -> bool:
        """True when a manifest and every blob it names are in the layout."""
        if not self.has_blob(desc):
            return False
        doc = json.loads(self.document(desc))
        named = [doc["config"]] if isinstance(doc.get("config"), dict) else []
        named += list(doc.get("layers") or [])
        return all(self.has_blob(self._checked_descriptor(d, label)) for d in named)

    def _image(
        self, raw: bytes, doc: JSON, label: str, names: tuple[str, ...]
    ) -> Image:
        config_desc = self._checked_descriptor(doc["config"], label)
        config = self.document(config_desc)
        layer_descs = [
            self._checked_descriptor(e, label) for e in doc.get("layers", [])
        ]
        diff_ids = _diff_ids(config, label)
        if len(diff_ids) != len(layer_descs):
            raise SourceError(
                f"manifest {label} lists {len(layer_descs)} layers but its config "
                f"lists {len(diff_ids)} diff_ids",
                hint="Docker 25.0 wrote such manifests (moby#47065); upgrade Docker "
                "and save again",
            )
        layers = tuple(
            self._layer(d, diff_id, label)
            for d, diff_id in zip(layer_descs, diff_ids, strict=True)
        )
        return Image(config=config, layers=layers, name=label, tags=names, manifest=raw)

    def _layer(self, desc: JSON, diff_id: Digest, label: str) -> Layer:
        found = digestmod.parse(desc["digest"])
        name = self._blob_name(found)
        if name not in self.container:
            raise SourceError(
                f"{self.container.path!r} lacks layer blob {found}",
                hint="the layout is incomplete; export it again",
            )
        stored = _descriptor(desc)
        return Layer(
            opener=lambda: self.container.open(name),
            diff_id=diff_id,
            name=f"{self.container.path}:{name}",
            size=desc["size"],
            stored=stored,
        )

    def _artifact(
        self, raw: bytes, doc: JSON, media_type: str, label: str, names: tuple[str, ...]
    ) -> Artifact:
        descs = [doc["config"]] if isinstance(doc.get("config"), dict) else []
        descs += list(doc.get("layers") or [])
        blobs = []
        for desc in descs:
            desc = self._checked_descriptor(desc, label)
            name = self._blob_name(digestmod.parse(desc["digest"]))
            if name not in self.container:
                raise SourceError(
                    f"{self.container.path!r} lacks blob {desc['digest']} of {label}",
                    hint="the layout is incomplete; export it again",
                )
            blobs.append(
                Blob(
                    _descriptor(desc),
                    _opener(self.container, name),
                    f"{self.container.path}:{name}",
                )
            )
        return Artifact(
            manifest=raw,
            media_type=media_type,
            blobs=tuple(blobs),
            name=label,
            tags=names,
        )


def _is_image(doc: JSON, label: str) -> bool:
    """True for a manifest of a container image: an image config, and layers
    that are all filesystem tars staticreg can read (and so recompress)."""
    config_type = (doc.get("config") or {}).get("mediaType")
    if config_type not in (mediatypes.OCI_CONFIG, mediatypes.DOCKER_CONFIG):
        return False
    types = [str(d.get("mediaType")) for d in doc.get("layers") or []]
    foreign = [t for t in types if mediatypes.is_foreign_layer(t)]
    if foreign:
        # Their blobs live elsewhere (the descriptor's URLs), so a static tree
        # cannot carry them; see docs/limitations.md.
        raise SourceError(
            f"cannot publish {label}: its layer media type {foreign[0]!r} is not "
            "distributable, and a static registry serves only the blobs it holds",
            hint="rebuild the image on a distributable base",
        )
    return all(mediatypes.layer_compression(t) is not None for t in types)


def _opener(container: Container, name: str):  # type: ignore[no-untyped-def]
    return lambda: container.open(name)


def _descriptor(desc: JSON) -> Descriptor:
    return Descriptor(
        desc["mediaType"],
        digestmod.parse(desc["digest"]),
        int(desc["size"]),
        desc.get("annotations"),
    )


def _is_attestation(desc: JSON) -> bool:
    """True for the attestation manifests buildx lists beside each platform
    (platform unknown/unknown): attachments, not platforms to pick."""
    annotations = desc.get("annotations") or {}
    return annotations.get(REFERENCE_TYPE) == "attestation-manifest"


def _attached_to(desc: JSON) -> str | None:
    annotations = desc.get("annotations") or {}
    found = annotations.get(REFERENCE_DIGEST)
    return str(found) if found else None


def _platform_list(entries: Sequence[JSON]) -> str:
    return ", ".join(sorted({_platform(e) for e in entries}))


def _platform(desc: JSON) -> str:
    platform = desc.get("platform")
    if not isinstance(platform, dict):
        return "unknown"
    return str(
        Platform(
            str(platform.get("os", "")),
            str(platform.get("architecture", "")),
            platform.get("variant") or None,
        )
    )


def _diff_ids(config: bytes, label: str) -> list[Digest]:
    try:
        return [digestmod.parse(x) for x in json.loads(config)["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, TypeError, InvalidDigest) as err:
        raise SourceError(
            f"cannot read the config of {label}: expected JSON with rootfs.diff_ids "
            f"({err})"
        ) from None
