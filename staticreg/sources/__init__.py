"""Inputs to publish: detect what a path holds and read it into the image model."""

from __future__ import annotations

import os

from staticreg.errors import SourceError
from staticreg.model import Image
from staticreg.sources import tarball


def read(path: str) -> list[Image]:
    """Read every image the input at ``path`` holds, in the order it lists them."""
    if os.path.isdir(path):
        # TODO(#4): publish OCI image layout directories; users must pack them
        # with 'skopeo copy oci:DIR docker-archive:OUT.tar' first.
        raise SourceError(
            f"cannot publish {path!r}: it is a directory, expected a docker save "
            "tarball",
            hint="OCI layout directories are not supported yet",
        )
    if not os.path.exists(path):
        raise SourceError(f"cannot publish {path!r}: no such file")
    return tarball.read(path)
