"""``docker search HOST/TERM`` with the real Docker engine, against nginx and serve."""

from __future__ import annotations

import pytest

from .conftest import Serve, Tree
from harness import daemons

pytestmark = pytest.mark.e2e


def _search(dockerd: daemons.Dockerd, host: str, term: str, *extra: str) -> list[str]:
    result = dockerd.docker("search", "--format", "{{.Name}}", *extra, f"{host}/{term}")
    return daemons.text(result).split()


@pytest.mark.parametrize("server_kind", ["nginx", "serve"])
def test_docker_search(
    server_kind: str,
    tree: Tree,
    nginx_session: daemons.Nginx,
    serve: Serve,
    dockerd: daemons.Dockerd,
) -> None:
    host = nginx_session.host if server_kind == "nginx" else serve.host
    assert _search(dockerd, host, "busy") == ["e2e/busybox"]
    assert _search(dockerd, host, "BusyBox") == ["e2e/busybox"]
    assert _search(dockerd, host, "e2e/g") == ["e2e/gzip"]
    everything = ["e2e/auto", "e2e/busybox", "e2e/gzip", "e2e/none", "e2e/zstd"]
    assert _search(dockerd, host, "e2e") == everything
    # A term that matches nothing answers 200 with no results: no error.
    assert _search(dockerd, host, "nothing-matches-this") == []
    table = daemons.text(dockerd.docker("search", f"{host}/zstd"))
    assert table.splitlines()[0].split()[:2] == ["NAME", "DESCRIPTION"]
    assert "e2e/zstd" in table
