"""The staticreg command: results on stdout, one-line errors, trees left intact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from staticreg.cli import cli

from harness import images

Snapshot = Callable[[Path], dict[str, tuple[int, bytes]]]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_publish_prints_one_line_per_tag(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    code, out, err = run(
        "publish",
        str(hello_tar.path),
        "--root",
        str(tmp_path / "r"),
        "--tag",
        "maxhou/mybusybox:v0.1",
        "-t",
        "docker.io/x/y",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split("@")[0] for line in lines] == [
        "maxhou/mybusybox:v0.1",
        "x/y:latest",
    ]
    assert all(line.split("@")[1].startswith("sha256:") for line in lines)
    assert "published maxhou/mybusybox:v0.1" in err


def test_root_from_environment(
    tmp_path: Path, hello_tar: images.SavedTarball, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATICREG_ROOT", str(tmp_path / "env"))
    code, out, _ = run("publish", str(hello_tar.path))
    assert code == 0 and out.startswith("test/img:v1@sha256:")
    assert (tmp_path / "env/staticreg.json").exists()


def test_ls_and_inspect(tmp_path: Path, hello_tar: images.SavedTarball) -> None:
    root = str(tmp_path / "r")
    _, published, _ = run("publish", "--root", root, str(hello_tar.path))
    manifest_digest = published.strip().split("@")[1]

    code, out, _ = run("ls", "--root", root)
    assert code == 0 and out.split() == ["REPOSITORY", "TAGS", "test/img", "1"]
    code, out, _ = run("ls", "--root", root, "test/img", "--json")
    doc = json.loads(out)
    assert doc["tags"][0]["tag"] == "v1" and doc["tags"][0]["digest"] == manifest_digest
    assert doc["tags"][0]["platforms"] == ["linux/amd64"]

    code, out, _ = run("inspect", "--root", root, "test/img:v1")
    assert code == 0 and manifest_digest in out and "cat /hello.txt" in out
    code, out, _ = run("inspect", "--root", root, "test/img:v1", "--json")
    doc = json.loads(out)
    assert doc["digest"] == manifest_digest and len(doc["manifest"]["layers"]) == 2
    code, _, err = run("inspect", "--root", root, "test/img:nope")
    assert code == 1 and "tag 'nope' is not in repository 'test/img'" in err


Args = Callable[[Path, Path], list[str]]

BAD_INPUTS: dict[str, tuple[Args, str]] = {
    "not a tar": (
        lambda tmp, good: [str(images.not_a_tar(tmp / "x.tar"))],
        "not a tar archive",
    ),
    "truncated": (
        lambda tmp, good: [str(images.truncated(good, tmp / "t.tar"))],
        "truncated",
    ),
    "digest mismatch": (
        lambda tmp, good: [str(images.with_corrupt_layer(good, tmp / "c.tar"))],
        "but its config expects",
    ),
    "config digest mismatch": (
        lambda tmp, good: [str(images.with_corrupt_config(good, tmp / "k.tar"))],
        "expected sha256:",
    ),
    "missing layer": (
        lambda tmp, good: [str(images.with_missing_layer(good, tmp / "m.tar"))],
        "has no member",
    ),
    "dotdot member": (
        lambda tmp, good: [str(images.with_dotdot_member(good, tmp / "d.tar"))],
        "'../evil' points outside",
    ),
    "absolute member": (
        lambda tmp, good: [str(images.with_absolute_member(good, tmp / "a.tar"))],
        "'/etc/evil' points outside",
    ),
    "escaping symlink": (
        lambda tmp, good: [str(images.with_escaping_symlink(good, tmp / "s.tar"))],
        "points outside the archive",
    ),
    "upper case name": (
        lambda tmp, good: [str(good), "--tag", "Maxhou/app:1"],
        "invalid repository name 'Maxhou/app'",
    ),
    "dotdot name": (
        lambda tmp, good: [str(good), "--tag", "a/../b:1"],
        "invalid repository name 'a/../b'",
    ),
    "empty part": (
        lambda tmp, good: [str(good), "--tag", "a//b:1"],
        "invalid repository name 'a//b'",
    ),
    "bad tag": (lambda tmp, good: [str(good), "--tag", "app:-1"], "invalid tag '-1'"),
    "missing file": (lambda tmp, good: [str(tmp / "nope.tar")], "no such file"),
    "bad level": (
        lambda tmp, good: [
            str(good),
            "--compression",
            "gzip",
            "--compression-level",
            "7",
        ],
        "compression level 7 is out of range for gzip",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_with_one_line_and_leaves_tree_unchanged(
    case: str, tmp_path: Path, hello_tar: images.SavedTarball, snapshot: Snapshot
) -> None:
    root = tmp_path / "tree"
    base = images.write_docker_save(tmp_path / "base.tar", [images.busybox_image()])
    assert run("publish", "--root", str(root), str(base.path))[0] == 0
    before = snapshot(root)

    make_args, message = BAD_INPUTS[case]
    code, out, err = run(
        "publish", "--root", str(root), *make_args(tmp_path, hello_tar.path)
    )

    assert code == 1, err
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith("Error: ") and message in first, err
    assert snapshot(root) == before


def test_bad_input_into_a_new_root_creates_nothing(
    tmp_path: Path,
    hello_tar: images.SavedTarball,
) -> None:
    bad = images.with_corrupt_layer(hello_tar.path, tmp_path / "c.tar")
    code, _, err = run("publish", "--root", str(tmp_path / "new"), str(bad))
    assert code == 1 and "but its config expects" in err
    assert not (tmp_path / "new").exists(), list((tmp_path / "new").rglob("*"))


def test_nginx_writes_config_and_warns_about_unreadable_tree(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "tree").mkdir(parents=True)
    private.chmod(0o700)
    conf = tmp_path / "nginx.conf"
    code, _, err = run(
        "nginx",
        "--root",
        str(private / "tree"),
        "--listen",
        "127.0.0.1:5000",
        "-o",
        str(conf),
    )
    assert code == 0
    assert f"{private} is not readable by other users" in err
    assert "listen 127.0.0.1:5000;" in conf.read_text()


def test_nginx_server_block_to_stdout(tmp_path: Path) -> None:
    code, out, _ = run(
        "nginx", "--root", str(tmp_path), "--listen", "80", "--server-block"
    )
    assert code == 0 and out.lstrip().startswith("#") and "server {" in out
    assert "events" not in out


def test_nginx_refuses_values_that_would_break_the_config(tmp_path: Path) -> None:
    code, _, err = run("nginx", "--root", str(tmp_path), "--listen", "80; evil")
    assert code == 1 and "cannot write listen '80; evil'" in err


def test_layout_with_several_images_and_one_tag_lists_its_refs(tmp_path: Path) -> None:
    from harness.layouts import Layout

    layout = Layout()
    layout.add(layout.image(images.hello_image((), text=b"one\n")), "one")
    layout.add(layout.image(images.hello_image((), text=b"two\n")), "two")
    path = layout.write_dir(tmp_path / "layout")
    code, out, err = run(
        "publish", "--root", str(tmp_path / "r"), str(path), "--tag", "app:1"
    )
    assert code == 1 and out == ""
    assert "holds 2 images, and --tag names one" in err
    assert f"its refs: one, two; pick one with {path}:REF or --ref REF" in err
    code, out, _ = run(
        "publish", "--root", str(tmp_path / "r"), f"{path}:two", "--tag", "app:1"
    )
    assert code == 0 and out.startswith("app:1@sha256:")


def test_root_that_cannot_be_made_is_a_one_line_error(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, out, err = run("publish", "--root", str(blocker / "reg"), str(hello_tar.path))
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith(f"Error: {blocker}") and line.endswith("Not a directory")
    assert blocker.read_text() == "not a folder"


def test_demo_publishes_the_sample_without_serving(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    code, out, err = run("demo", "--root", str(root), "--no-serve")
    assert code == 0, err
    assert out.startswith("sample/hello:latest@sha256:")
    code, listed, _ = run("ls", "--root", str(root), "sample/hello", "--json")
    assert json.loads(listed)["tags"][0]["digest"] == out.strip().split("@")[1]
    assert run("verify", "--root", str(root))[0] == 0
