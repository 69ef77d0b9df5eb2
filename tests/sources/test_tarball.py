from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from staticreg import sources
from staticreg.errors import SourceError
from staticreg.sources import tarball

from harness import images


def test_classic_tarball_reads_images_tags_and_layers(
    hello_tar: images.SavedTarball,
) -> None:
    [image] = sources.read(str(hello_tar.path)).nodes
    saved = hello_tar.images[0]
    assert image.tags == ("test/img:v1",)
    assert str(image.config_digest) == saved.config_digest
    assert [str(layer.diff_id) for layer in image.layers] == list(saved.diff_ids)
    with image.layers[1].opener() as stream:
        assert images.sha256_digest(stream.read()) == saved.diff_ids[1]


def test_docker25_tarball_reads_through_manifest_json(
    docker25_tar: images.SavedTarball,
) -> None:
    [image] = sources.read(str(docker25_tar.path)).nodes
    assert image.tags == ("docker.io/test/img25:v1",)
    assert len(image.layers) == 2


def test_several_images_in_one_tarball(tmp_path: Path) -> None:
    specs = [
        images.hello_image(("a/one:1", "a/one:latest")),
        images.busybox_image(("b/two:2",)),
    ]
    saved = images.write_docker_save(tmp_path / "multi.tar", specs)
    found = sources.read(str(saved.path)).nodes
    assert [image.tags for image in found] == [
        ("a/one:1", "a/one:latest"),
        ("b/two:2",),
    ]
    # The shared busybox layer is symlinked in the tar and read through the link.
    assert found[0].layers[0].diff_id == found[1].layers[0].diff_id


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (images.truncated, "truncated"),
        (images.with_dotdot_member, "member name '../evil' points outside"),
        (images.with_absolute_member, "member name '/etc/evil' points outside"),
        (images.with_missing_layer, "it has no member"),
        (images.with_escaping_symlink, "points outside the archive"),
    ],
)
def test_bad_tarballs_are_refused(
    hello_tar: images.SavedTarball, tmp_path: Path, make, message: str
) -> None:  # type: ignore[no-untyped-def]
    bad = make(hello_tar.path, tmp_path / "bad.tar")
    with pytest.raises(SourceError) as info:
        for image in sources.read(str(bad)).nodes:
            for layer in image.layers:
                with layer.opener() as stream:
                    while stream.read(1 << 20):
                        pass
    assert message in str(info.value)
    assert str(bad) in str(info.value)


def test_not_a_tar(tmp_path: Path) -> None:
    bad = images.not_a_tar(tmp_path / "x.tar")
    with pytest.raises(SourceError, match="not a tar archive"):
        sources.read(str(bad))


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_compressed_tarballs_read_like_plain_ones(
    hello_tar: images.SavedTarball, tmp_path: Path, kind: str
) -> None:
    import gzip

    import zstandard

    data = hello_tar.path.read_bytes()
    packed = tmp_path / f"hello.tar.{kind}"
    packed.write_bytes(
        gzip.compress(data)
        if kind == "gzip"
        else zstandard.ZstdCompressor().compress(data)
    )
    [plain] = sources.read(str(hello_tar.path)).nodes
    [image] = sources.read(str(packed)).nodes
    assert image.config_digest == plain.config_digest
    with image.layers[1].opener() as stream:
        assert images.sha256_digest(stream.read()) == hello_tar.images[0].diff_ids[1]


def test_truncated_compressed_tarball(
    hello_tar: images.SavedTarball, tmp_path: Path
) -> None:
    import gzip

    packed = tmp_path / "cut.tar.gz"
    packed.write_bytes(gzip.compress(hello_tar.path.read_bytes())[:5000])
    with pytest.raises(SourceError, match="cut.tar.gz.*ends before its end marker"):
        sources.read(str(packed))


def _with_members(src: Path, dst: Path, *extra: images.Member) -> Path:
    """A copy of the tarball ``src`` with ``extra`` members, named as given."""
    dst.write_bytes(images.pack(images.unpack(src.read_bytes()) + list(extra)))
    return dst


def _hardlink(name: str, target: str) -> images.Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return images.Member(info)


def test_dot_slash_prefix_goes_but_other_dots_stay(
    hello_tar: images.SavedTarball, tmp_path: Path
) -> None:
    extra = [
        images.file_member("./.wh.x", b"whiteout\n"),
        images.file_member("././.config", b"dotfile\n"),
    ]
    archive = tarball.Tarball(
        str(_with_members(hello_tar.path, tmp_path / "w.tar", *extra))
    )
    assert ".wh.x" in archive.members and "wh.x" not in archive.members
    assert ".config" in archive.members and "config" not in archive.members
    assert archive.read("./.wh.x", 100) == b"whiteout\n"


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (images.symlink_member("unused", "/etc/passwd"), "'unused' points outside"),
        (images.symlink_member("a/b", "../../x"), "'a/b' points outside"),
        (images.symlink_member("a/b", "./../../x"), "(to './../../x')"),
        (_hardlink("hard", "../x"), "link 'hard' points outside the archive"),
        (_hardlink("hard", "/etc/shadow"), "(to '/etc/shadow')"),
    ],
)
def test_links_out_of_the_archive_are_refused_even_unused(
    hello_tar: images.SavedTarball,
    tmp_path: Path,
    member: images.Member,
    message: str,
) -> None:
    bad = _with_members(hello_tar.path, tmp_path / "bad.tar", member)
    with pytest.raises(SourceError) as info:
        sources.read(str(bad))
    assert message in str(info.value) and str(bad) in str(info.value)
    assert "\n" not in str(info.value)


def test_links_inside_the_archive_are_followed(
    hello_tar: images.SavedTarball, tmp_path: Path
) -> None:
    layer = images.target_layer_member(hello_tar.path)
    extra = [
        images.symlink_member("x/y/copy.tar", f"../../{layer}"),
        _hardlink("hard.tar", f"./{layer}"),
    ]
    path = _with_members(hello_tar.path, tmp_path / "ok.tar", *extra)
    archive = tarball.Tarball(str(path))
    want = archive.resolve(layer)
    assert archive.resolve("x/y/copy.tar").offset_data == want.offset_data
    assert archive.resolve("hard.tar").offset_data == want.offset_data
