"""Test harness: deterministic test images and real registry clients, no hub needed.

`images` writes `docker save` tarballs; `daemons` starts nginx, containerd, dockerd,
the CNCF registry, podman and skopeo on loopback. The fixtures below are
session-scoped (dockerd and containerd are slow to start and cheap to share) except
`nginx_factory`, which stops what a test started when that test ends. A test module
gets them with `pytest_plugins = ["<this package>"]`; tests/conftest.py may instead
define fixtures of the same names, which then take precedence.

PYTEST_DONT_REWRITE: this package asserts nothing, and the marker keeps pytest from
warning when a test module registers it as a plugin after importing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from . import daemons, images

__all__ = [
    "containerd",
    "daemons",
    "distribution_registry",
    "dockerd",
    "images",
    "nginx_factory",
    "podman",
    "skopeo",
    "NginxFactory",
]


class NginxFactory:
    """Starts nginx on a generated config; stops every one it started on `close`."""

    def __init__(self) -> None:
        self.started: list[daemons.Nginx] = []

    def __call__(
        self,
        conf: Path,
        prefix: Path,
        *,
        port: int | None = None,
        pid_path: Path | None = None,
    ) -> daemons.Nginx:
        server = daemons.Nginx(conf, prefix, port=port, pid_path=pid_path)
        self.started.append(server)
        return server.__enter__()

    def close(self) -> None:
        while self.started:
            self.started.pop().stop()


@pytest.fixture(scope="session")
def containerd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.Containerd]:
    with daemons.Containerd(tmp_path_factory.mktemp("containerd")) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def dockerd(
    tmp_path_factory: pytest.TempPathFactory, containerd: daemons.Containerd
) -> Iterator[daemons.Dockerd]:
    with daemons.Dockerd(tmp_path_factory.mktemp("dockerd"), containerd) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[daemons.Podman]:
    with daemons.Podman(tmp_path_factory.mktemp("podman")) as client:
        yield client


@pytest.fixture(scope="session")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[daemons.Skopeo]:
    with daemons.Skopeo(tmp_path_factory.mktemp("skopeo")) as client:
        yield client


@pytest.fixture(scope="session")
def distribution_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.DistributionRegistry]:
    state = tmp_path_factory.mktemp("distribution")
    with daemons.DistributionRegistry(state) as registry:
        yield registry


@pytest.fixture
def nginx_factory() -> Iterator[NginxFactory]:
    factory = NginxFactory()
    try:
        yield factory
    finally:
        factory.close()
