"""The air-gapped workflow with real clients: publish, sync the tree to a new
folder, verify the copy, serve it with nginx, pull with skopeo and docker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sample_trees

from .conftest import HELLO
from harness import NginxFactory, daemons

pytestmark = pytest.mark.e2e


def staticreg(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "staticreg", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_synced_copy_verifies_and_serves(
    tmp_path: Path,
    nginx_factory: NginxFactory,
    skopeo: daemons.Skopeo,
    dockerd: daemons.Dockerd,
) -> None:
    origin, copy = tmp_path / "origin", tmp_path / "air-gapped" / "registry"
    published = staticreg("publish", "--root", origin, *sample_trees.inputs(tmp_path))
    digests = dict(line.split("@") for line in published.stdout.splitlines())

    staticreg("sync", origin, copy)
    verified = staticreg("verify", "--root", copy)
    assert verified.stdout == "" and "0 problems left" in verified.stderr

    daemons.allow_traversal(copy)
    port = daemons.free_port()
    conf = tmp_path / "nginx" / "nginx.conf"
    conf.parent.mkdir()
    staticreg("nginx", "--root", copy, "--listen", f"127.0.0.1:{port}", "-o", conf)
    server = nginx_factory(conf, conf.parent)

    hello = f"{server.host}/test/img:v1"
    assert skopeo.manifest_digest(f"docker://{hello}") == digests["test/img:v1"]
    multi = f"docker://{server.host}/lay/multi:1"
    out = tmp_path / "out"
    skopeo.copy(multi, f"oci:{out}:all", "--all", "--preserve-digests")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digests["lay/multi:1"]

    subject = digests["lay/signed:1"]
    status, _, body = daemons.http_get(
        f"{server.url}/v2/lay/signed/referrers/{subject}"
    )
    assert status == 200 and len(json.loads(body)["manifests"]) == 2

    dockerd.reset()
    dockerd.pull(hello)
    assert dockerd.image_digest(hello) == digests["test/img:v1"]
    assert dockerd.run(hello).strip() == HELLO
