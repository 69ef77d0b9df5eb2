"""Interrupted and concurrent publishes never leave a reader something broken."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from staticreg import digest, paths, publish, sources, targets, verify
from staticreg.store import DirectoryStore

from harness import images


def _publish_cmd(root: Path, tar: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "staticreg",
        "publish",
        "--root",
        str(root),
        str(tar),
        *extra,
    ]


def check_tree(root: Path) -> int:
    """Assert that every tag and manifest a reader can reach is whole; count tags."""
    tags = 0
    for tag_file in root.glob("repositories/**/_tags/*"):
        name = str(tag_file.parent.parent.relative_to(root / "repositories"))
        raw = tag_file.read_bytes()
        found = digest.of_bytes(raw)
        media_type = paths.media_type_of(tag_file.name)
        assert media_type is not None
        assert (root / paths.manifest(name, found, media_type)).read_bytes() == raw
        manifest = json.loads(raw)
        for desc in [manifest["config"], *manifest["layers"]]:
            blob = digest.parse(desc["digest"])
            assert (root / paths.blob_link(name, blob)).exists()
            assert (root / paths.blob(blob)).stat().st_size == desc["size"]
        tags += 1
    return tags


@pytest.fixture
def big_tar(tmp_path: Path) -> Path:
    """An image with a 48 MB layer, so a publish lasts long enough to interrupt."""
    noise = os.urandom(48 << 20)
    layer = images.build_layer({"/noise.bin": noise})
    spec = images.ImageSpec(
        layers=(images.build_rootfs_layer(), layer), repo_tags=("big/app:1",)
    )
    return images.write_docker_save(tmp_path / "big.tar", [spec]).path


def test_kill_at_any_point_leaves_no_broken_pointer(
    tmp_path: Path,
    big_tar: Path,
    hello_tar: images.SavedTarball,
) -> None:
    root = tmp_path / "tree"
    subprocess.run(_publish_cmd(root, hello_tar.path), check=True, capture_output=True)
    for delay in (0.05, 0.2, 0.4, 0.6, 0.9, 1.3):
        proc = subprocess.Popen(
            _publish_cmd(root, big_tar, "--compression", "zstd"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert check_tree(root) >= 1

    done = subprocess.run(_publish_cmd(root, big_tar), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert check_tree(root) == 2
    # The next writer removed the staging left by the killed ones.
    assert list((root / paths.TMP).iterdir()) == []


def test_ctrl_c_leaves_no_temporary_file(tmp_path: Path, big_tar: Path) -> None:
    root = tmp_path / "tree"
    proc = subprocess.Popen(
        _publish_cmd(
            root, big_tar, "--compression", "zstd", "--compression-level", "9"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(root.glob(".staticreg/tmp/*/blob-*")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.fail("publish finished before the interrupt; make the image larger")
    assert proc.returncode == 130 and "Aborted!" in err
    assert not root.exists() or not list(root.rglob("blob-*"))


def test_concurrent_publishes_both_succeed(
    tmp_path: Path, big_tar: Path, hello_tar: images.SavedTarball
) -> None:
    root = tmp_path / "tree"
    procs = [
        subprocess.Popen(
            _publish_cmd(root, tar),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tar in (big_tar, hello_tar.path)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert check_tree(root) == 2
    catalog = json.loads((root / paths.CATALOG).read_bytes())
    assert catalog == {"repositories": ["big/app", "test/img"]}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB filesystem of its own (tmpfs; the tests run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_disk_full_fails_cleanly_and_keeps_the_tree(
    small_disk: Path, tmp_path: Path, hello_tar: images.SavedTarball, snapshot
) -> None:  # type: ignore[no-untyped-def]
    root = small_disk / "tree"
    subprocess.run(_publish_cmd(root, hello_tar.path), check=True, capture_output=True)
    before = snapshot(root)
    noise = images.build_layer({"/noise.bin": os.urandom(6 << 20)})
    spec = images.ImageSpec(layers=(noise,), repo_tags=("full/app:1",))
    tar = images.write_docker_save(tmp_path / "full.tar", [spec]).path

    result = subprocess.run(
        _publish_cmd(root, tar, "--compression", "none"), capture_output=True, text=True
    )

    assert result.returncode == 1 and result.stdout == ""
    assert "No space left on device" in result.stderr.splitlines()[0]
    assert "free some space" in result.stderr
    assert snapshot(root) == before
    assert check_tree(root) == 1


class _Failure(OSError):
    """The write a test chose to fail."""


class _FailingStore(DirectoryStore):
    """A directory store whose ``fail_at``-th visible write raises, as a full
    disk or a dead process would stop it there."""

    def __init__(self, root: str, fail_at: int) -> None:
        super().__init__(root)
        self.fail_at = fail_at
        self.writes = 0

    def _count(self, what: str) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            raise _Failure(f"write {self.writes} ({what}) failed on purpose")

    def put(self, key: str, data: bytes, *args: Any, **kwargs: Any) -> None:
        self._count(key)
        super().put(key, data, *args, **kwargs)

    def copy(self, source: str, key: str, *args: Any, **kwargs: Any) -> None:
        self._count(key)
        super().copy(source, key, *args, **kwargs)

    def delete(self, key: str) -> None:
        self._count(key)
        super().delete(key)

    def staged_writer(self) -> Any:
        writer = super().staged_writer()
        commit = writer.commit

        def failing_commit(key: str, *args: Any, **kwargs: Any) -> None:
            self._count(key)
            commit(key, *args, **kwargs)

        writer.commit = failing_commit  # type: ignore[method-assign]
        return writer


def _publish_into(store: DirectoryStore, tar: Path, tags: list[str]) -> None:
    pairs = targets.resolve(sources.read(str(tar)).nodes, targets.parse_tags(tags))
    publish.publish(store, pairs)


def test_a_failure_at_every_write_leaves_every_tag_whole(tmp_path: Path) -> None:
    first = images.write_docker_save(tmp_path / "a.tar", [images.hello_image()])
    second = images.write_docker_save(
        tmp_path / "b.tar", [images.hello_image(text=b"second image\n")]
    )
    root = tmp_path / "tree"
    _publish_into(DirectoryStore(str(root)), first.path, ["app/x:1"])
    old_tag = _tag_bytes(root, "app/x")
    scratch = tmp_path / "scratch"
    _publish_into(DirectoryStore(str(scratch)), second.path, ["app/x:1"])
    new_tag = _tag_bytes(scratch, "app/x")  # publishing is deterministic

    # Move app/x:1 and add app/x:2 and app/y:1, failing at each write in turn.
    moved = ["app/x:1", "app/x:2", "app/y:1"]
    failures = 0
    for fail_at in range(1, 500):
        store = _FailingStore(str(root), fail_at)
        try:
            _publish_into(store, second.path, moved)
        except _Failure:
            failures += 1
        else:
            break
        finally:
            store.close()
        assert check_tree(root) >= 1
        # The moved tag is whole: the old image or the new one, never a mix.
        assert _tag_bytes(root, "app/x") in (old_tag, new_tag)
    else:
        pytest.fail("the publish never got past its injected failures")

    print(f"\n{failures} writes failed in turn")
    assert failures > 10  # every phase was interrupted somewhere
    assert check_tree(root) == 3
    report = verify.verify(DirectoryStore(str(root)))
    assert report.ok, [str(p) for p in report.problems]


def _tag_bytes(root: Path, name: str) -> bytes:
    """The manifest that tag 1 of ``name`` holds."""
    [tag_file] = (root / "repositories" / name / "_tags").glob("1.*")
    return tag_file.read_bytes()
