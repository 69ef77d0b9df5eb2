from __future__ import annotations

import pytest

from staticreg import reference
from staticreg.errors import InvalidReference


@pytest.mark.parametrize(
    ("text", "name", "tag"),
    [
        ("busybox", "busybox", "latest"),
        ("busybox:1.36", "busybox", "1.36"),
        ("docker.io/library/busybox:latest", "busybox", "latest"),
        ("index.docker.io/library/busybox:1", "busybox", "1"),
        ("docker.io/maxhou/mybusybox:v0.1", "maxhou/mybusybox", "v0.1"),
        ("maxhou/mybusybox:v0.1", "maxhou/mybusybox", "v0.1"),
        ("localhost/app:dev", "app", "dev"),
        ("localhost:5000/team/app:dev", "team/app", "dev"),
        ("ghcr.io/org/tool:2", "org/tool", "2"),
        ("a/b/c__d-e.f:_x", "a/b/c__d-e.f", "_x"),
        ("library/busybox:latest", "library/busybox", "latest"),
    ],
)
def test_parse_good_references(text: str, name: str, tag: str) -> None:
    ref = reference.parse(text)
    assert (ref.repository, ref.tag, ref.digest) == (name, tag, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Busybox:latest", "invalid repository name 'Busybox'"),
        ("a//b:1", "invalid repository name 'a//b'"),
        ("/a:1", "invalid repository name '/a'"),
        ("a/:1", "invalid repository name 'a/'"),
        ("../etc:1", "invalid reference '../etc:1': '..' is neither a registry host"),
        (":1", "invalid repository name ''"),
        ("a:-x", "invalid tag '-x'"),
        ("a:.x", "invalid tag '.x'"),
        ("a:" + "x" * 129, "invalid tag"),
        ("a:b/c", "invalid reference 'a:b/c': 'a:b' is neither"),
        ("a@sha256:zz", "invalid reference 'a@sha256:zz'"),
    ],
)
def test_parse_bad_references_name_the_value(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        reference.parse(text)
    assert message in str(info.value)


def test_upper_case_name_gets_a_hint() -> None:
    with pytest.raises(InvalidReference) as info:
        reference.parse("MyApp:1")
    assert info.value.hint == "repository names are lower case: try 'myapp'"


def test_digest_reference() -> None:
    ref = reference.parse("app@sha256:" + "b" * 64)
    assert ref.tag is None and str(ref) == "app@sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("recorded", "name"),
    [
        ("library/busybox:latest", "busybox"),
        ("docker.io/library/busybox:latest", "busybox"),
        ("busybox:latest", "busybox"),
        ("library/team/app:1", "team/app"),
        ("docker.io/library/team/app:1", "team/app"),
        ("maxhou/library:1", "maxhou/library"),
        ("library:1", "library"),
        ("localhost/library/app:1", "library/app"),
    ],
)
def test_recorded_names_of_one_docker_name_give_one_repository(
    recorded: str, name: str
) -> None:
    assert reference.parse(reference.recorded_name(recorded)).repository == name


def test_explicit_library_name_is_taken_as_written() -> None:
    assert reference.parse("library/busybox:1").repository == "library/busybox"
