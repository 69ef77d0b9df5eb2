"""Trees for the sync and verify tests: a plain image, a two-platform index and an
image with two referrers (signature, SBOM), published into any store and layout."""

from __future__ import annotations

from pathlib import Path

from staticreg import publish, sources, targets
from staticreg.store import Store

from harness import images
from harness.layouts import SBOM_TYPE, SIGNATURE_TYPE, Layout, platform_image

REPOSITORIES = ["lay/multi", "lay/signed", "test/img"]


def inputs(work: Path) -> list[Path]:
    """hello as docker save, a two-platform OCI index, a signed image."""
    work.mkdir(parents=True, exist_ok=True)
    hello = images.write_docker_save(work / "hello.tar", [images.hello_image()])
    multi = Layout()
    amd = multi.image(platform_image("amd64", b"hello amd64\n"))
    arm = multi.image(platform_image("arm64", b"hello arm64\n"))
    multi.add(multi.index([amd, arm]), "lay/multi:1")
    signed = Layout()
    image = signed.image(images.hello_image(()))
    signed.add(image, "lay/signed:1")
    signed.add(signed.artifact(image, SIGNATURE_TYPE, b'{"sig": 1}', "text/plain"))
    signed.add(signed.artifact(image, SBOM_TYPE, b'{"spdx": 2}', "text/plain"))
    return [
        hello.path,
        multi.write_tar(work / "multi.tar"),
        signed.write_dir(work / "signed"),
    ]


def publish_into(store: Store, paths: list[Path], layout: str | None = None) -> None:
    for path in paths:
        found = sources.read(str(path))
        pairs = targets.resolve(found.nodes, [])
        extra = [(node, None) for node in found.referrers]
        publish.publish(store, pairs, extra_referrers=extra, layout=layout)
