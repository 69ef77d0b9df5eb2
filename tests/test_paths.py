from __future__ import annotations

from staticreg import digest, mediatypes, paths

D = digest.Digest("sha256", "c" * 64)


def test_keys_hold_no_colon_and_stay_in_their_folders() -> None:
    keys = [
        paths.blob(D),
        paths.manifest("a/b", D, mediatypes.OCI_MANIFEST),
        paths.tag("a/b", "v1", mediatypes.DOCKER_LIST),
        paths.blob_link("a/b", D),
        paths.tags_list("a/b"),
        paths.repository_record("a/b"),
        paths.layer_map(D, "gzip-isal-l1-b1048576"),
    ]
    assert all(":" not in key for key in keys)
    assert keys[1] == f"repositories/a/b/_manifests/sha256/{'c' * 64}.oci-manifest"
    assert keys[2] == "repositories/a/b/_tags/v1.docker-list"


def test_extension_maps_back_to_media_type() -> None:
    for media_type in paths.MANIFEST_EXTENSIONS:
        key = paths.tag("x", "1.0", media_type)
        assert paths.media_type_of(key) == media_type
    assert paths.media_type_of(paths.blob(D)) is None


def test_candidates_cover_every_media_type() -> None:
    assert len(paths.tag_candidates("x", "t")) == len(paths.MANIFEST_EXTENSIONS)
    assert len(set(paths.manifest_candidates("x", D))) == len(paths.MANIFEST_EXTENSIONS)
