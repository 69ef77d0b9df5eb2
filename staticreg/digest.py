"""Digests: the ``algorithm:hex`` value that names every blob and manifest.

Only sha256 is accepted for publishing; the grammar follows the OCI image spec
(https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from staticreg.errors import InvalidDigest

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex digits, for logs and tables."""
        return self.hex[:12]


def parse(text: str) -> Digest:
    """Parse ``sha256:<64 lower-case hex>``; raise InvalidDigest naming the value."""
    match = _DIGEST_RE.match(text)
    if not match:
        raise InvalidDigest(
            f"invalid digest {text!r}: expected ALGORITHM:HEX such as 'sha256:' "
            "followed by 64 hex digits"
        )
    algorithm, hex_part = match.groups()
    expected = _HEX_LENGTH.get(algorithm)
    if expected is None:
        raise InvalidDigest(
            f"unsupported digest algorithm in {text!r}: expected one of "
            f"{', '.join(sorted(_HEX_LENGTH))}"
        )
    if len(hex_part) != expected or not re.fullmatch(r"[0-9a-f]+", hex_part):
        raise InvalidDigest(
            f"invalid digest {text!r}: expected {expected} lower-case hex digits "
            f"after '{algorithm}:'"
        )
    return Digest(algorithm, hex_part)


def is_valid(text: str) -> bool:
    try:
        parse(text)
    except InvalidDigest:
        return False
    return True


def of_bytes(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


class Hasher:
    """A running sha256 that also counts bytes, fed chunk by chunk."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())
