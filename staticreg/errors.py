"""The exceptions staticreg raises; the CLI turns them into one-line messages.

StaticregError                  base: message plus an optional hint
 +-- InvalidReference           a name, tag or reference breaks the grammar
 +-- InvalidDigest              a digest is malformed or of an unknown algorithm
 +-- DigestMismatch             content does not hash to the digest that names it
 +-- SourceError                an input cannot be read: not a tar, truncated, unsafe
 +-- StoreError                 a backend failed to read or write a key
 +-- Conflict                   the input asks for something the tree forbids
"""

from __future__ import annotations


class StaticregError(Exception):
    """An error the user can act on; ``hint`` says how, when there is a remedy."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidReference(StaticregError):
    pass


class InvalidDigest(StaticregError):
    pass


class DigestMismatch(StaticregError):
    pass


class SourceError(StaticregError):
    pass


class StoreError(StaticregError):
    pass


class Conflict(StaticregError):
    pass
