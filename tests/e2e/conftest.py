"""A published tree served by real nginx and by ``staticreg serve``, for e2e tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness import NginxFactory, daemons, images

HELLO = images.HELLO_TEXT.decode().strip()


@dataclass
class Tree:
    """A published tree and the digests ``staticreg publish`` printed for it."""

    root: Path
    digests: dict[str, str] = field(default_factory=dict)

    def publish(self, tar: Path, *args: str) -> list[str]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "staticreg",
                "publish",
                "--root",
                str(self.root),
                str(tar),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        for line in lines:
            ref, _, found = line.partition("@")
            self.digests[ref] = found
        return lines


@pytest.fixture(scope="session")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """hello published with each compression, and busybox beside it."""
    work = tmp_path_factory.mktemp("e2e")
    published = Tree(work / "registry")
    hello = images.write_docker_save(work / "hello.tar", [images.hello_image()])
    for kind in ("auto", "gzip", "zstd", "none"):
        published.publish(hello.path, "--compression", kind, "--tag", f"e2e/{kind}:1")
    busybox = images.write_docker_save(work / "bb.tar", [images.busybox_image()])
    published.publish(busybox.path, "--tag", "e2e/busybox:latest")
    # pytest makes its folders private; nginx workers run as nobody.
    daemons.allow_traversal(published.root)
    return published


@pytest.fixture(scope="session")
def nginx_session(
    tmp_path_factory: pytest.TempPathFactory, tree: Tree
) -> Iterator[daemons.Nginx]:
    prefix = tmp_path_factory.mktemp("nginx")
    conf = prefix / "nginx.conf"
    port = daemons.free_port()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "staticreg",
            "nginx",
            "--root",
            str(tree.root),
            "--listen",
            f"127.0.0.1:{port}",
            "-o",
            str(conf),
        ],
        check=True,
        capture_output=True,
    )
    factory = NginxFactory()
    try:
        yield factory(conf, prefix)
    finally:
        factory.close()


class Serve(daemons.Daemon):
    """``staticreg serve`` in a subprocess."""

    binary = "staticreg"

    def __init__(self, state_dir: Path, root: Path) -> None:
        super().__init__(state_dir)
        self.root = root
        self.port = daemons.free_port()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        self.spawn(
            [
                sys.executable,
                "-m",
                "staticreg",
                "serve",
                "--root",
                str(self.root),
                "--listen",
                self.host,
            ]
        )
        self.wait_ready(lambda: daemons.port_open(self.port), "listening")


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory, tree: Tree) -> Iterator[Serve]:
    with Serve(tmp_path_factory.mktemp("serve"), tree.root) as server:
        yield server


class Demo(Serve):
    """``staticreg demo``: the sample image published into ``root`` and served."""

    def start(self) -> None:
        argv = [sys.executable, "-m", "staticreg", "demo", "--root", str(self.root)]
        self.spawn([*argv, "--listen", self.host])
        self.wait_ready(lambda: daemons.port_open(self.port), "listening")
