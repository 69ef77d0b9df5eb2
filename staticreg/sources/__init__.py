"""Inputs to publish: detect what a path holds and read it into the image model.

A path is a ``docker save`` tarball, an OCI layout tar or an OCI layout folder;
``PATH:REF`` picks one image of a layout by its ref name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from staticreg.errors import SourceError
from staticreg.sources import layout, tarball
from staticreg.sources.layout import Input

__all__ = ["Input", "read"]


def split_ref(spec: str) -> tuple[str, str | None]:
    """Split ``PATH:REF`` when PATH exists and PATH:REF does not.

    Ref names hold colons of their own (``docker.io/team/app:1.0``), and paths
    may too: the longest existing PATH wins.
    """
    if os.path.exists(spec):
        return spec, None
    for at in reversed([i for i, char in enumerate(spec) if char == ":"]):
        if at and os.path.exists(spec[:at]):
            return spec[:at], spec[at + 1 :]
    return spec, None


def read(spec: str, ref: str | None = None, platforms: Sequence[str] = ()) -> Input:
    """Read every image the input holds (or the one ``ref`` names)."""
    path, spec_ref = split_ref(spec)
    ref = spec_ref or ref
    if not os.path.exists(path):
        raise SourceError(f"cannot publish {path!r}: no such file or directory")
    if os.path.isdir(path):
        folder = layout.Folder(path)
        if not layout.is_layout(folder):
            raise SourceError(
                f"cannot publish {path!r}: the folder is not an OCI image layout "
                "(it lacks oci-layout or index.json)",
            )
        return layout.read(folder, ref, platforms)
    archive = tarball.Tarball(path)
    if _read_as_layout(archive, ref, platforms):
        return layout.read(archive, ref, platforms)
    if ref is not None or platforms:
        raise SourceError(
            f"cannot pick {ref or ', '.join(platforms)!r} in {path!r}: refs and "
            "platforms select images of OCI layouts, and this is a docker save "
            "archive"
        )
    return Input(nodes=list(tarball.read_archive(archive)))


def _read_as_layout(
    archive: tarball.Tarball, ref: str | None, platforms: Sequence[str]
) -> bool:
    if not layout.is_layout(archive):
        return False
    if "manifest.json" not in archive:
        return True
    # Docker 25 and later write both; manifest.json carries the names docker
    # shows, and is read unless the user picks by ref or platform, or index.json
    # holds a multi-platform index (Docker's containerd image store), whose
    # platforms manifest.json would silently drop (moby#49473).
    return ref is not None or bool(platforms) or layout.has_index_entries(archive)
