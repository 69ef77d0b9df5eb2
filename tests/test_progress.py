"""Progress bars on a terminal's stderr, and none when stderr is not one."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from harness import images


@pytest.fixture
def slow_tar(tmp_path: Path) -> Path:
    layer = images.build_layer({"/noise.bin": os.urandom(32 << 20)})
    spec = images.ImageSpec(
        layers=(images.build_rootfs_layer(), layer), repo_tags=("progress/app:1",)
    )
    return images.write_docker_save(tmp_path / "slow.tar", [spec]).path


def _publish(root: Path, tar: Path, stderr: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "staticreg",
            "publish",
            "--root",
            str(root),
            str(tar),
            "--compression",
            "zstd",
            "--compression-level",
            "12",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
    )


def test_bars_are_drawn_on_a_terminal(tmp_path: Path, slow_tar: Path) -> None:
    leader, follower = pty.openpty()
    proc = _publish(tmp_path / "tree", slow_tar, follower)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the publish exits
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    assert out.decode().startswith("progress/app:1@sha256:")  # results only
    text = drawn.decode(errors="replace")
    assert "total" in text and "layer" in text
    assert "MB/s" in text or "kB/s" in text or "B/s" in text
    assert "\x1b[" in text  # drawn with terminal control sequences


def test_no_bars_without_a_terminal(tmp_path: Path, slow_tar: Path) -> None:
    proc = _publish(tmp_path / "tree", slow_tar, subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert "\x1b[" not in err.decode() and "B/s" not in err.decode()
    assert err.decode().splitlines()[0].startswith("published progress/app:1@")
    assert out.decode().count("\n") == 1
