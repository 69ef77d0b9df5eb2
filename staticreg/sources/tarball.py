"""``docker save`` tarballs -> Images with the tags they record.

Reads the classic format (Docker 24 and older, ``podman save``, ``skopeo copy
docker-archive:``) and Docker 25 and later, whose tarball holds an OCI layout beside
the same ``manifest.json``. Both are read through ``manifest.json``: each entry
names a config and its layers by path inside the tar, which is all either needs.
(https://github.com/moby/moby/blob/master/image/tarexport/save.go)

The tar is indexed once (headers only) and each layer is read later straight from
its offset, so nothing is extracted and no layer is held in memory.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import posixpath
import re
import tarfile
import tempfile
from typing import BinaryIO

from staticreg import compression, reference
from staticreg import digest as digestmod
from staticreg.errors import InvalidDigest, SourceError
from staticreg.model import JSON, Image, Layer

log = logging.getLogger(__name__)

MAX_CONFIG_SIZE = 32 << 20
MAX_MANIFEST_SIZE = 32 << 20
_MAX_LINK_HOPS = 16
_HEX_NAME = re.compile(r"(?:^|/)([0-9a-f]{64})(?:\.json)?$")


class _Section:
    """A read-only window onto part of a file: one member's data in the tar."""

    def __init__(self, path: str, offset: int, size: int, name: str) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)
        self._left = size
        self._name = name
        self._path = path

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self._file.read(n)
        if len(data) < n:
            raise SourceError(
                f"cannot read {self._path!r}: member {self._name!r} is truncated",
                hint="the tarball was cut short; save or copy it again",
            )
        self._left -= len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer)[: self._left]
        if not len(view):
            return 0
        got = self._file.readinto(view)
        if not got:
            raise SourceError(
                f"cannot read {self._path!r}: member {self._name!r} is truncated",
                hint="the tarball was cut short; save or copy it again",
            )
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Section:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Tarball:
    """An indexed tar archive whose members can be opened and read by name."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._data = _uncompressed(path)
        self.members = _index(self._data, path)

    def __contains__(self, name: str) -> bool:
        return _clean(name) in self.members

    def resolve(self, name: str) -> tarfile.TarInfo:
        """The regular-file member ``name`` refers to, following links in the tar."""
        current = _clean(name)
        for _ in range(_MAX_LINK_HOPS):
            member = self.members.get(current)
            if member is None:
                raise SourceError(
                    f"cannot read {self.path!r}: it has no member {name!r}",
                    hint="the tarball is incomplete or not a docker save archive",
                )
            if member.isfile():
                return member
            if not (member.issym() or member.islnk()):
                raise SourceError(
                    f"cannot read {self.path!r}: member {name!r} is not a file"
                )
            current = _link_target(self.path, current, member)
        raise SourceError(f"cannot read {self.path!r}: too many links from {name!r}")

    def open(self, name: str) -> BinaryIO:
        member = self.resolve(name)
        section = _Section(self._data, member.offset_data, member.size, name)
        return section  # type: ignore[return-value]

    def read(self, name: str, limit: int) -> bytes:
        member = self.resolve(name)
        if member.size > limit:
            raise SourceError(
                f"cannot read {self.path!r}: member {name!r} is {member.size} bytes, "
                f"more than the {limit} expected of it"
            )
        with self.open(name) as section:
            return section.read()


def _clean(name: str) -> str:
    # Only whole './' prefixes go: lstrip("./") would also eat the dots of
    # '../evil' and of whiteout names such as '.wh.x'.
    while name.startswith("./"):
        name = name[2:]
    return posixpath.normpath(name)


def _checked_name(path: str, raw: str) -> str:
    """The member name ``raw`` cleaned, refused if absolute or with a '..' part.

    '..' is looked for in the raw name: normalising would turn 'a/../b' into 'b'.
    """
    name = _clean(raw)
    if name.startswith("/") or ".." in raw.split("/"):
        outside = name.startswith("/") or name == ".." or name.startswith("../")
        what = "points outside the archive" if outside else "has a '..' part"
        raise SourceError(
            f"refusing {path!r}: member name {raw!r} {what}",
            hint="tar members must be relative paths without '..'",
        )
    return name


def _link_target(path: str, name: str, member: tarfile.TarInfo) -> str:
    """The member that link ``name`` points at; refused if outside the archive.

    A symlink's target is relative to its folder (docker save links a shared
    layer as '<id>/layer.tar -> ../<other>/layer.tar'), a hard link's to the
    archive's root.
    """
    link = member.linkname
    base = posixpath.dirname(name) if member.issym() else ""
    target = _clean(posixpath.join(base, link))
    if link.startswith("/") or target == ".." or target.startswith("../"):
        raise SourceError(
            f"refusing {path!r}: link {name!r} points outside the archive "
            f"(to {link!r})",
            hint="links in a docker save archive must stay inside it",
        )
    return target


def _index(path: str, shown: str) -> dict[str, tarfile.TarInfo]:
    _check_looks_like_tar(path, shown)
    size = os.path.getsize(path)
    try:
        with tarfile.open(path, "r:") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, EOFError) as err:
        what = "it is truncated" if "unexpected end" in str(err) else str(err)
        raise SourceError(
            f"cannot read {shown!r} as a tar archive: {what}",
            hint="the file was cut short or is not a docker save archive",
        ) from None
    index: dict[str, tarfile.TarInfo] = {}
    for member in members:
        name = _checked_name(shown, member.name)
        if member.issym() or member.islnk():
            _link_target(shown, name, member)
        if member.isfile() and member.offset_data + member.size > size:
            raise SourceError(
                f"cannot read {shown!r}: member {name!r} is truncated "
                f"(needs {member.offset_data + member.size} bytes, file has {size})",
                hint="the tarball was cut short; save or copy it again",
            )
        index[name] = member
    return index


def _check_looks_like_tar(path: str, shown: str) -> None:
    with open(path, "rb") as file:
        head = file.read(512)
    if len(head) < 512 or head[257:262] != b"ustar":
        raise SourceError(
            f"cannot read {shown!r}: not a tar archive",
            hint="give the file written by 'docker save' or 'podman save'",
        )


def _uncompressed(path: str) -> str:
    """``path``, or a temporary uncompressed copy of a gzip or zstd tarball.

    Layers are read later by offset, in parallel, which a compressed stream cannot
    offer; one decompressing pass (ISA-L, about 1 GB/s) buys that.
    """
    try:
        with open(path, "rb") as file:
            kind = compression.sniff(file.read(4))
    except OSError as err:
        raise SourceError(f"cannot open {path!r}: {err.strerror}") from None
    if kind == "none":
        return path
    fd, copy = tempfile.mkstemp(prefix="staticreg-input-", suffix=".tar")
    atexit.register(_remove, copy)
    log.info("decompressing %s (%s) into a temporary file", path, kind)
    decoder = compression.Decoder(kind)
    try:
        with open(path, "rb") as source, os.fdopen(fd, "wb") as target:
            while chunk := source.read(1 << 20):
                target.write(decoder.feed(chunk))
        decoder.finish()
    except ValueError as err:
        _remove(copy)
        raise SourceError(
            f"cannot read {path!r}: {err}",
            hint="the file was cut short or is corrupt; save it again",
        ) from None
    return copy


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def read(path: str) -> list[Image]:
    """Read every image that ``manifest.json`` of the tarball at ``path`` lists."""
    return read_archive(Tarball(path))


def read_archive(tarball: Tarball) -> list[Image]:
    path = tarball.path
    if "manifest.json" not in tarball:
        raise SourceError(
            f"cannot read {path!r} as a docker save archive: it has no manifest.json",
            hint="give the file written by 'docker save' or 'podman save'",
        )
    entries = _manifest_entries(tarball)
    return [_image(tarball, entry, n) for n, entry in enumerate(entries, 1)]


def _manifest_entries(tarball: Tarball) -> list[JSON]:
    raw = tarball.read("manifest.json", MAX_MANIFEST_SIZE)
    try:
        entries = json.loads(raw)
    except ValueError as err:
        raise SourceError(
            f"cannot read manifest.json in {tarball.path!r}: invalid JSON ({err})"
        ) from None
    if not isinstance(entries, list) or not entries:
        raise SourceError(
            f"cannot read manifest.json in {tarball.path!r}: expected a non-empty "
            "list of images"
        )
    for entry in entries:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("Config"), str)
            and isinstance(entry.get("Layers"), list)
            and all(isinstance(x, str) for x in entry["Layers"])
            and isinstance(entry.get("RepoTags") or [], list)
        ):
            raise SourceError(
                f"cannot read manifest.json in {tarball.path!r}: an entry lacks "
                "'Config' or 'Layers' or has values of the wrong type"
            )
    return entries


def _image(tarball: Tarball, entry: JSON, number: int) -> Image:
    name = f"{tarball.path}[{number}]"
    config = tarball.read(entry["Config"], MAX_CONFIG_SIZE)
    _check_config_digest(tarball, entry["Config"], config)
    diff_ids = _diff_ids(tarball, entry["Config"], config, len(entry["Layers"]))
    layers = tuple(
        _layer(tarball, member, diff_id)
        for member, diff_id in zip(entry["Layers"], diff_ids, strict=True)
    )
    recorded = entry.get("RepoTags") or ()
    tags = tuple(reference.recorded_name(str(tag)) for tag in recorded)
    return Image(config=config, layers=layers, name=name, tags=tags)


def _check_config_digest(tarball: Tarball, member: str, config: bytes) -> None:
    # Both formats name the config after its sha256: '<hex>.json' in the classic
    # layout, 'blobs/sha256/<hex>' in Docker 25 and later.
    match = _HEX_NAME.search(member)
    if match is None:
        return
    actual = digestmod.of_bytes(config)
    if actual.hex != match.group(1):
        raise SourceError(
            f"config {member!r} in {tarball.path!r} has digest {actual}, expected "
            f"sha256:{match.group(1)} from its name",
            hint="the archive is corrupt; save it again",
        )


def _diff_ids(
    tarball: Tarball, member: str, config: bytes, count: int
) -> list[digestmod.Digest]:
    try:
        doc = json.loads(config)
        raw_ids = doc["rootfs"]["diff_ids"]
        diff_ids = [digestmod.parse(x) for x in raw_ids]
    except (ValueError, KeyError, TypeError, InvalidDigest) as err:
        raise SourceError(
            f"cannot read config {member!r} in {tarball.path!r}: expected JSON with "
            f"rootfs.diff_ids ({err})"
        ) from None
    if len(diff_ids) != count:
        raise SourceError(
            f"config {member!r} in {tarball.path!r} lists {len(diff_ids)} diff_ids "
            f"but manifest.json lists {count} layers"
        )
    return diff_ids


def _layer(tarball: Tarball, member: str, diff_id: digestmod.Digest) -> Layer:
    info = tarball.resolve(member)

    def opener() -> BinaryIO:
        return tarball.open(member)

    return Layer(
        opener=opener, diff_id=diff_id, name=f"{tarball.path}:{member}", size=info.size
    )
