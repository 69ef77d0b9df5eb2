"""Turn model nodes and their staged layers into the manifests a tree serves.

A manifest the source holds is kept byte for byte whenever every layer it names is
stored as it was, so digests users saw before publishing are the digests clients
see afterwards. Otherwise (layers compressed now) the manifest is rebuilt from the
source's own document, replacing only layer descriptors, and an index over it is
rebuilt in turn.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from staticreg import digest as digestmod
from staticreg import mediatypes
from staticreg.digest import Digest
from staticreg.model import JSON, Artifact, Image, Index, Node, Platform, subject_of
from staticreg.pipeline import StagedLayer

LayerKey = tuple[Digest, Digest | None]


@dataclass
class Built:
    """A manifest or index ready to publish, with what it references."""

    raw: bytes
    media_type: str
    blobs: dict[str, int] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)
    children: list[Built] = field(default_factory=list)
    platform: str | None = None
    digest: Digest = field(init=False)

    def __post_init__(self) -> None:
        self.digest = digestmod.of_bytes(self.raw)

    @property
    def doc(self) -> JSON:
        return json.loads(self.raw)

    @property
    def subject(self) -> Digest | None:
        return subject_of(self.doc)

    @property
    def artifact_type(self) -> str | None:
        """The spec's rule: ``artifactType``, else the config's media type."""
        doc = self.doc
        if doc.get("artifactType"):
            return str(doc["artifactType"])
        config = doc.get("config")
        return str(config["mediaType"]) if isinstance(config, dict) else None

    def walk(self) -> Iterator[Built]:
        """Children before parents: the order in which they may be published."""
        for child in self.children:
            yield from child.walk()
        yield self

    def descriptor(self) -> JSON:
        out: JSON = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": len(self.raw),
        }
        return out

    def record_entry(self) -> JSON:
        entry: JSON = {
            "mediaType": self.media_type,
            "size": len(self.raw),
            "blobs": dict(self.blobs),
        }
        if self.children:
            entry["manifests"] = [str(c.digest) for c in self.children]
            entry["platforms"] = [c.platform for c in self.children if c.platform]
        if self.platform:
            entry["platform"] = self.platform
        config = self.doc.get("config")
        if isinstance(config, dict):
            entry["config"] = config.get("digest")
        if self.subject is not None:
            entry["subject"] = str(self.subject)
            entry["artifactType"] = self.artifact_type
        return entry


def _dump(doc: JSON) -> bytes:
    return json.dumps(doc, indent=2).encode()


def build(node: Node, layers: dict[LayerKey, StagedLayer]) -> Built:
    if isinstance(node, Index):
        return _index(node, layers)
    if isinstance(node, Artifact):
        return _artifact(node)
    return _image(node, layers)


def _artifact(node: Artifact) -> Built:
    blobs = {str(b.descriptor.digest): b.descriptor.size for b in node.blobs}
    platform = None
    return Built(node.manifest, node.media_type, blobs=blobs, platform=platform)


def _image(image: Image, layers: dict[LayerKey, StagedLayer]) -> Built:
    staged = [
        layers[(layer.diff_id, layer.stored.digest if layer.stored else None)]
        for layer in image.layers
    ]
    unchanged = image.manifest is not None and all(
        layer.stored is not None and layer.stored.digest == s.digest
        for layer, s in zip(image.layers, staged, strict=True)
    )
    if unchanged:
        assert image.manifest is not None
        raw = image.manifest
        media_type = image.manifest_json.get("mediaType") or mediatypes.OCI_MANIFEST
    else:
        doc = _manifest_doc(image, staged)
        raw, media_type = _dump(doc), doc["mediaType"]
    blobs = {str(image.config_digest): len(image.config)}
    blobs.update({str(s.digest): s.size for s in staged})
    return Built(
        raw,
        media_type,
        blobs=blobs,
        documents={str(image.config_digest): image.config},
        platform=str(image.platform),
    )


def _manifest_doc(image: Image, staged: list[StagedLayer]) -> JSON:
    """The source's manifest with new layer descriptors, or a new OCI manifest."""
    source = image.manifest_json or {}
    media_type = source.get("mediaType") or mediatypes.OCI_MANIFEST
    docker = media_type == mediatypes.DOCKER_MANIFEST
    if docker and any(s.kind not in mediatypes.DOCKER_LAYERS for s in staged):
        # zstd has no Docker media type; clients reject it in a Docker manifest.
        docker = False
    table = mediatypes.DOCKER_LAYERS if docker else mediatypes.OCI_LAYERS
    old_layers = source.get("layers") or [{} for _ in staged]
    doc: JSON = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_MANIFEST if docker else mediatypes.OCI_MANIFEST,
        "config": {
            "mediaType": mediatypes.DOCKER_CONFIG if docker else mediatypes.OCI_CONFIG,
            "digest": str(image.config_digest),
            "size": len(image.config),
        },
        "layers": [
            {
                **_extra(old),
                "mediaType": table[s.kind],
                "digest": str(s.digest),
                "size": s.size,
            }
            for old, s in zip(old_layers, staged, strict=True)
        ],
    }
    for key in ("annotations", "subject", "artifactType"):
        if key in source and not docker:
            doc[key] = source[key]
    return doc


def _extra(descriptor: JSON) -> JSON:
    return {
        k: v for k, v in descriptor.items() if k not in ("mediaType", "digest", "size")
    }


def _index(index: Index, layers: dict[LayerKey, StagedLayer]) -> Built:
    children = [build(child, layers) for child in index.children]
    if index.raw is not None:
        source = json.loads(index.raw)
        old = source.get("manifests", [])
        if [c.digest for c in children] == [digestmod.parse(d["digest"]) for d in old]:
            return Built(index.raw, index.media_type, children=children)
    else:
        source, old = {}, list(index.descriptors) or [{} for _ in children]
    docker = index.media_type == mediatypes.DOCKER_LIST and all(
        c.media_type == mediatypes.DOCKER_MANIFEST for c in children
    )
    doc: JSON = {
        "schemaVersion": 2,
        "mediaType": mediatypes.DOCKER_LIST if docker else mediatypes.OCI_INDEX,
        "manifests": [
            {**_extra(desc), **child.descriptor(), **_platform(child, desc)}
            for desc, child in zip(old, children, strict=True)
        ],
    }
    if "annotations" in source and not docker:
        doc["annotations"] = source["annotations"]
    return Built(_dump(doc), doc["mediaType"], children=children)


def _platform(child: Built, desc: JSON) -> JSON:
    if "platform" in desc:
        return {"platform": desc["platform"]}
    if child.platform:
        parts = child.platform.split("/")
        platform = Platform(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        return {"platform": platform.to_json()}
    return {}
