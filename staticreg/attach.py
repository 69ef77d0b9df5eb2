"""Build an OCI artifact from files, attached to a published image as a referrer.

The artifact follows the OCI image spec's guidance for artifacts: the empty
config, one layer per file titled with the file's name, ``artifactType`` set and
``subject`` naming the image
(https://github.com/opencontainers/image-spec/blob/main/manifest.md
#guidelines-for-artifact-usage).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from staticreg import digest as digestmod
from staticreg import mediatypes
from staticreg.errors import SourceError
from staticreg.model import JSON, Artifact, Blob, Descriptor

EMPTY_CONFIG = b"{}"
TITLE = "org.opencontainers.image.title"


def _file_descriptor(path: str, media_type: str) -> Descriptor:
    hasher = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                hasher.update(chunk)
                size += len(chunk)
    except OSError as err:
        raise SourceError(f"cannot attach {path!r}: {err.strerror}") from None
    return Descriptor(
        media_type,
        digestmod.Digest("sha256", hasher.hexdigest()),
        size,
        {TITLE: os.path.basename(path)},
    )


def _opener(path: str):  # type: ignore[no-untyped-def]
    def open_file() -> BinaryIO:
        return open(path, "rb")

    return open_file


def build(
    subject: JSON,
    artifact_type: str,
    files: Sequence[str],
    media_type: str,
    annotations: Mapping[str, str],
) -> Artifact:
    """An artifact of ``files`` whose subject is the descriptor ``subject``."""
    if "/" not in artifact_type:
        raise SourceError(
            f"invalid --artifact-type {artifact_type!r}: expected a media type such "
            "as application/spdx+json"
        )
    empty = Descriptor(
        mediatypes.OCI_EMPTY, digestmod.of_bytes(EMPTY_CONFIG), len(EMPTY_CONFIG)
    )
    layers = [_file_descriptor(path, media_type) for path in files]
    doc: JSON = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.to_json(),
        "layers": [layer.to_json() for layer in layers],
        "subject": subject,
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    blobs = [Blob(empty, lambda: io.BytesIO(EMPTY_CONFIG), "empty config")]
    blobs += [
        Blob(desc, _opener(path), path)
        for desc, path in zip(layers, files, strict=True)
    ]
    return Artifact(
        manifest=json.dumps(doc, indent=2).encode(),
        media_type=mediatypes.OCI_MANIFEST,
        blobs=tuple(blobs),
        name=f"artifact of {', '.join(files)}",
    )
