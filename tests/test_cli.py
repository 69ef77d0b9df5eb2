"""The staticreg command: results on stdout, one-line errors, trees left intact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


def test_hostless_library_tag_in_a_tarball_drops_library(tmp_path: Path) -> None:
    specs = [images.hello_image(("library/hello:1", "docker.io/library/hello:2"))]
    saved = images.write_docker_save(tmp_path / "lib.tar", specs)
    code, out, err = run("publish", "--root", str(tmp_path / "r"), str(saved.path))
    assert code == 0, err
    assert [line.split("@")[0] for line in out.splitlines()] == ["hello:1", "hello:2"]


@pytest.mark.parametrize(
    ("before", "after", "logged", "not_logged"),
    [
        ([], [], "published test/img:v1", "in place"),
        ([], ["-q"], None, "published"),
        (["-q"], [], None, "published"),
        ([], ["--quiet"], None, "published"),
        ([], ["-v"], "in place", None),
        (["-v"], [], "in place", None),
        (["-q"], ["-v"], None, "published"),
    ],
)
def test_log_flags_work_before_and_after_the_command(
    tmp_path: Path,
    hello_tar: images.SavedTarball,
    before: list[str],
    after: list[str],
    logged: str | None,
    not_logged: str | None,
) -> None:
    root = str(tmp_path / "r")
    code, out, err = run(
        *before, "publish", *after, "--root", root, str(hello_tar.path)
    )
    assert code == 0, err
    assert out.startswith("test/img:v1@sha256:")
    assert logged is None or logged in err
    assert not_logged is None or not_logged not in err
    assert err == "" or logged is not None


def test_quiet_after_sync_and_ls(
    tmp_path: Path, hello_tar: images.SavedTarball
) -> None:
    root = str(tmp_path / "r")
    assert run("publish", "-q", "--root", root, str(hello_tar.path))[2] == ""
    code, _, err = run("sync", root, str(tmp_path / "copy"), "-q")
    assert code == 0 and err == ""
    code, out, err = run("ls", "--root", root, "-q")
    assert code == 0 and "test/img" in out and err == ""


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


def _with_member(src: Path, dst: Path, name: str) -> Path:
    """A copy of the tarball ``src`` with one more file, named ``name`` as given."""
    members = images.unpack(src.read_bytes()) + [images.file_member(name, b"evil\n")]
    dst.write_bytes(images.pack(members))
    return dst


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
    "dot-slash dotdot member": (
        lambda tmp, good: [str(_with_member(good, tmp / "e.tar", "./../evil"))],
        "member name './../evil' points outside",
    ),
    "inner dotdot member": (
        lambda tmp, good: [str(_with_member(good, tmp / "i.tar", "a/../b"))],
        "member name 'a/../b' has a '..' part",
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


def _set_format(root: Path, value: object) -> None:
    settings = json.loads((root / "staticreg.json").read_text())
    settings["format"] = value
    (root / "staticreg.json").write_text(json.dumps(settings))


@pytest.mark.parametrize(
    ("command", "action"),
    [
        (["publish", "--root", "{root}", "{tar}"], "publish into"),
        (["verify", "--root", "{root}"], "verify"),
        (["index", "--root", "{root}"], "index"),
        (["sync", "{root}", "{tmp}/copy"], "sync from"),
    ],
)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2, "its format 2 is newer than this staticreg understands (1)"),
        ("1", "its staticreg.json has format '1', expected a format number"),
        (None, "its staticreg.json has format None, expected a format number"),
    ],
)
def test_tree_of_a_newer_or_unknown_format_is_refused_in_one_line(
    tmp_path: Path,
    hello_tar: images.SavedTarball,
    snapshot: Snapshot,
    command: list[str],
    action: str,
    value: object,
    message: str,
) -> None:
    root = tmp_path / "tree"
    assert run("publish", "--root", str(root), str(hello_tar.path))[0] == 0
    _set_format(root, value)
    before = snapshot(root)
    names = {"root": str(root), "tar": str(hello_tar.path), "tmp": str(tmp_path)}
    code, out, err = run(*(part.format(**names) for part in command))
    assert code == 1 and out == ""
    first, *rest = err.splitlines()
    assert first == f"Error: cannot {action} {root}: {message}", err
    assert rest == [] or rest[0].startswith("Hint: ")
    assert snapshot(root) == before
    assert not (tmp_path / "copy").exists()


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


def test_nginx_command_for_a_relative_output_runs_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ngx").mkdir()
    (tmp_path / "tree").mkdir()
    args = ["--root", "tree", "--listen", "127.0.0.1:5000", "-o", "ngx/nginx.conf"]
    code, _, err = run("nginx", *args)
    assert code == 0, err
    command = f"nginx -c {tmp_path}/ngx/nginx.conf -p PREFIX"
    assert f"run it with: {command}" in err
    assert (
        f"# Run it as it is:  {command}\n" in (tmp_path / "ngx/nginx.conf").read_text()
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        return
    # nginx reads a relative -c against -p: the printed command must not care.
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    argv = command.replace("nginx", binary, 1).replace("PREFIX", str(prefix)).split()
    checked = subprocess.run([*argv, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_nginx_server_block_file_is_not_offered_as_a_config(tmp_path: Path) -> None:
    out_file = tmp_path / "block.conf"
    args = ["--root", str(tmp_path), "--listen", "80", "--server-block"]
    code, _, err = run("nginx", *args, "-o", str(out_file))
    assert code == 0 and "server {" in out_file.read_text()
    assert "include it in the http { } block" in err and "nginx -c" not in err


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
    assert f"its images: one; two; pick one with {path}:REF or --ref REF" in err
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
