"""OCI and Docker media types, and what each kind of document is."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)

# Layer media types by compression, for each manifest family. zstd has no Docker
# type: podman, cri-o and skopeo reject zstd inside a Docker v2 manifest.
OCI_LAYERS = {"none": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}
DOCKER_LAYERS = {"none": DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP}


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFESTS


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_pullable(media_type: str) -> bool:
    """True for the documents a registry serves under ``/manifests/``."""
    return is_manifest(media_type) or is_index(media_type)


def layer_compression(media_type: str) -> str | None:
    """'none', 'gzip' or 'zstd' for a known layer type, None for anything else."""
    for table in (OCI_LAYERS, DOCKER_LAYERS):
        for compression, known in table.items():
            if known == media_type:
                return compression
    return None


def is_foreign_layer(media_type: str) -> bool:
    """Layers a registry does not serve (Windows base layers, fetched from the
    URLs their descriptor lists): Docker's foreign and OCI's non-distributable."""
    return ".foreign." in media_type or ".nondistributable." in media_type
