"""Shared fixtures: small images written as docker save tarballs, and trees."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import images

# The real servers and clients (nginx, containerd, dockerd, podman, skopeo).
pytest_plugins = ["harness"]


@pytest.fixture
def hello_tar(tmp_path: Path) -> images.SavedTarball:
    """A classic docker save tarball holding test/img:v1 (busybox plus hello.txt)."""
    return images.write_docker_save(tmp_path / "hello.tar", [images.hello_image()])


@pytest.fixture
def docker25_tar(tmp_path: Path) -> images.SavedTarball:
    spec = images.hello_image(("docker.io/test/img25:v1",))
    return images.write_docker25_save(tmp_path / "hello25.tar", [spec])


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, tuple[int, bytes]]]:
    """Everything under a folder: path -> (mode, bytes), to prove nothing changed."""

    def take(root: Path) -> dict[str, tuple[int, bytes]]:
        found: dict[str, tuple[int, bytes]] = {}
        if not root.exists():
            return found
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder, name)
                rel = str(path.relative_to(root))
                data = path.read_bytes() if path.is_file() else b""
                found[rel] = (path.stat().st_mode, data)
        return found

    return take
