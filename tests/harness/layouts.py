"""OCI image layouts built by the tests: images, indexes, Docker manifest lists and
referrers (signature-like and SBOM-like artifacts), as folders or tars."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from . import images

JSON = Any
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES = {
    (False, "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    (False, "none"): "application/vnd.oci.image.layer.v1.tar",
    (True, "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    (True, "none"): "application/vnd.docker.image.rootfs.diff.tar",
}
SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
SBOM_TYPE = "application/spdx+json"
IN_TOTO = "application/vnd.in-toto+json"
REF_NAME = "org.opencontainers.image.ref.name"


def _json(doc: JSON) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True).encode()


@dataclasses.dataclass
class Layout:
    """Blobs and index entries; ``write`` lays them out as a folder or a tar."""

    blobs: dict[str, bytes] = dataclasses.field(default_factory=dict)
    entries: list[JSON] = dataclasses.field(default_factory=list)

    def blob(self, data: bytes, media_type: str, **extra: Any) -> JSON:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def image(
        self, spec: images.ImageSpec, compression: str = "gzip", docker: bool = False
    ) -> JSON:
        config = self.blob(spec.config_bytes(), DOCKER_CONFIG if docker else OCI_CONFIG)
        layers = []
        for layer in spec.layers:
            data = (
                gzip.compress(layer.data, mtime=0)
                if compression == "gzip"
                else layer.data
            )
            layers.append(self.blob(data, LAYER_TYPES[(docker, compression)]))
        media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        manifest = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config,
            "layers": layers,
        }
        platform = {"architecture": spec.architecture, "os": spec.os}
        return self.blob(_json(manifest), media_type, platform=platform)

    def index(self, manifests: list[JSON], docker: bool = False) -> JSON:
        media_type = DOCKER_LIST if docker else OCI_INDEX
        doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
        return self.blob(_json(doc), media_type)

    def artifact(
        self, subject: JSON, artifact_type: str, payload: bytes, payload_type: str
    ) -> JSON:
        empty = self.blob(b"{}", OCI_EMPTY)
        layer = self.blob(
            payload,
            payload_type,
            annotations={"org.opencontainers.image.title": "payload"},
        )
        subject_desc = {k: subject[k] for k in ("mediaType", "digest", "size")}
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty,
            "layers": [layer],
            "subject": subject_desc,
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"},
        }
        return self.blob(_json(doc), OCI_MANIFEST, artifactType=artifact_type)

    def attestation(self, subject: JSON) -> JSON:
        """What BuildKit attaches to each platform of a buildx build by default:
        an image manifest whose one layer is an in-toto statement, listed in the
        index under platform unknown/unknown."""
        statement = _json(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://slsa.dev/provenance/v0.2",
                "subject": [{"name": "_", "digest": {"sha256": subject["digest"][7:]}}],
                "predicate": {"builder": {"id": ""}},
            }
        )
        layer = self.blob(
            statement,
            IN_TOTO,
            annotations={
                "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"
            },
        )
        config = _json(
            {
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
            }
        )
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.blob(config, OCI_CONFIG),
            "layers": [layer],
        }
        return self.blob(
            _json(doc),
            OCI_MANIFEST,
            platform={"architecture": "unknown", "os": "unknown"},
            annotations={
                "vnd.docker.reference.digest": subject["digest"],
                "vnd.docker.reference.type": "attestation-manifest",
            },
        )

    def add(self, descriptor: JSON, ref: str | None = None) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        if ref is not None:
            entry["annotations"] = {REF_NAME: ref}
        self.entries.append(entry)

    def files(self, drop: set[str] = frozenset()) -> dict[str, bytes]:  # type: ignore[assignment]
        out = {
            "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
            "index.json": _json(
                {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}
            ),
        }
        for digest, data in self.blobs.items():
            if digest not in drop:
                out["blobs/sha256/" + digest.split(":")[1]] = data
        return out

    def write_dir(self, path: Path, drop: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
        for name, data in self.files(drop).items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        return path

    def write_tar(self, path: Path, drop: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in sorted(self.files(drop).items()):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        path.write_bytes(buffer.getvalue())
        return path


def platform_image(arch: str, text: bytes) -> images.ImageSpec:
    """busybox plus /hello.txt, labelled with an architecture."""
    spec = images.hello_image((), text=text)
    return dataclasses.replace(spec, architecture=arch)
