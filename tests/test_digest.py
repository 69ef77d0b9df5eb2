from __future__ import annotations

import hashlib

import pytest

from staticreg import digest
from staticreg.errors import InvalidDigest

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha256", "expected ALGORITHM:HEX"),
        ("sha256:", "expected ALGORITHM:HEX"),
        (f"sha256:{HEX[:-1]}", "expected 64 lower-case hex digits"),
        (f"sha256:{HEX.upper()}", "expected 64 lower-case hex digits"),
        (f"md5:{HEX}", "unsupported digest algorithm"),
        (f"sha256:{HEX}/..", "expected ALGORITHM:HEX"),
    ],
)
def test_parse_bad_digest_names_value(text: str, message: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        digest.parse(text)
    assert repr(text) in str(info.value)
    assert message in str(info.value)


def test_parse_round_trip() -> None:
    parsed = digest.parse(f"sha256:{HEX}")
    assert (parsed.algorithm, parsed.hex, str(parsed)) == (
        "sha256",
        HEX,
        f"sha256:{HEX}",
    )
    assert parsed.short == HEX[:12]


def test_hasher_matches_hashlib_across_chunks() -> None:
    data = bytes(range(256)) * 5000
    hasher = digest.Hasher()
    for start in range(0, len(data), 7777):
        hasher.update(data[start : start + 7777])
    assert hasher.size == len(data)
    assert hasher.digest().hex == hashlib.sha256(data).hexdigest()
    assert digest.of_bytes(data) == hasher.digest()
