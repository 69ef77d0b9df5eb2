"""A small built-in image, for ``staticreg demo`` and first steps.

Written as a classic docker save tarball, deterministically, so the demo exercises
the same path as any user's tarball. When the machine has a statically linked
busybox (Debian's busybox-static), the image carries it and can be run; otherwise
it holds only files and is still pulled by every client.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

SAMPLE_TAG = "sample/hello:latest"
BUSYBOX = "/bin/busybox"
GREETING = b"Hello from a static registry published with staticreg.\n"


def _member(
    name: str,
    data: bytes = b"",
    mode: int = 0o644,
    kind: bytes = tarfile.REGTYPE,
    link: str = "",
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, 0, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _pack(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def _static_busybox() -> bytes | None:
    try:
        with open(BUSYBOX, "rb") as file:
            data = file.read()
    except OSError:
        return None
    # A dynamically linked busybox names its loader: useless in an empty image.
    return None if b"ld-linux" in data[:4096] else data


def _layer() -> tuple[bytes, list[str]]:
    members = [_member("hello.txt", GREETING)]
    busybox = _static_busybox()
    cmd = ["/bin/cat", "/hello.txt"]
    if busybox is not None:
        members += [
            _member("bin/", kind=tarfile.DIRTYPE, mode=0o755),
            _member("bin/busybox", busybox, 0o755),
        ]
        members += [
            _member(f"bin/{app}", kind=tarfile.SYMTYPE, link="busybox")
            for app in ("cat", "echo", "sh", "ls")
        ]
    return _pack(members), cmd


def write(path: str) -> str:
    """Write the sample image as a docker save tarball at ``path``; return its tag."""
    layer, cmd = _layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Cmd": cmd,
                "Labels": {
                    "org.opencontainers.image.title": "hello",
                    "org.opencontainers.image.description": (
                        "The staticreg sample image"
                    ),
                },
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [
                {"created": "1970-01-01T00:00:00Z", "created_by": "staticreg sample"}
            ],
        },
        sort_keys=True,
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [
            {
                "Config": config_name,
                "RepoTags": [SAMPLE_TAG],
                "Layers": ["layer/layer.tar"],
            }
        ]
    ).encode()
    tarball = _pack(
        [
            _member("layer/", kind=tarfile.DIRTYPE, mode=0o755),
            _member("layer/layer.tar", layer),
            _member(config_name, config),
            _member("manifest.json", manifest),
        ]
    )
    with open(path, "wb") as file:
        file.write(tarball)
    os.chmod(path, 0o644)
    return SAMPLE_TAG
