"""Deterministic test images, written as `docker save` tarballs without any registry.

Builds busybox-static layers with pure `tarfile` (fixed mtimes, owners and member
order, so every run gives the same digests), writes them as classic (Docker 24 and
older) or Docker 25+ (OCI layout inside the tar) `docker save` tarballs, and derives
broken or hostile variants of a good tarball for bad-input tests.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import struct
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

JSON = Any

BUSYBOX = Path("/bin/busybox")
EPOCH = "1970-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HELLO_TEXT = b"hello from staticreg\n"
DEFAULT_CMD = ("/bin/sh", "-c", "cat /hello.txt")
BUSYBOX_APPLETS = ("cat", "echo", "id", "ls", "sh", "true")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
# Annotations Docker 25+ puts on each index.json entry (moby image/tarexport/save.go).
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


class ImageBuildError(RuntimeError):
    """A test image cannot be built on this machine."""


def sha256_digest(data: bytes) -> str:
    """Return the `sha256:<hex>` digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _dumps(value: JSON) -> bytes:
    """Compact JSON keeping insertion order, as Go's encoding/json writes structs."""
    return json.dumps(value, separators=(",", ":")).encode()


# --- tar members ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Member:
    """One tar member: its header and, for regular files, its bytes."""

    info: tarfile.TarInfo
    data: bytes | None = None


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def file_member(name: str, data: bytes, mode: int = 0o644) -> Member:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    return Member(info, data)


def dir_member(name: str, mode: int = 0o755) -> Member:
    return Member(_info(name.rstrip("/") + "/", tarfile.DIRTYPE, mode))


def symlink_member(name: str, target: str) -> Member:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return Member(info)


def _key(member: Member) -> str:
    return member.info.name.rstrip("/")


def _with_parents(members: Sequence[Member]) -> list[Member]:
    """Add a directory member for every missing parent, as real layer tars have."""
    by_key = {_key(m): m for m in members}
    for key in list(by_key):
        parts = key.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            by_key.setdefault(parent, dir_member(parent))
    return list(by_key.values())


def pack(members: Sequence[Member]) -> bytes:
    """Write members as a tar, sorted by name, so equal inputs give equal bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in sorted(members, key=_key):
            data = None if member.data is None else io.BytesIO(member.data)
            tar.addfile(member.info, data)
    return buffer.getvalue()


def unpack(data: bytes) -> list[Member]:
    """Read every member of a tar held in memory, keeping the archive order."""
    members = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar.getmembers():
            extracted = tar.extractfile(info) if info.isreg() else None
            members.append(Member(info, extracted.read() if extracted else None))
    return members


# --- layers and images --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layer:
    """An uncompressed filesystem-diff tar; its diff_id is the digest of its bytes."""

    data: bytes

    @property
    def diff_id(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)


def _require_static(path: Path) -> bytes:
    """Read an ELF executable and refuse it if it needs a dynamic loader.

    A dynamically linked busybox would start on the host but not inside an image
    that holds no libc, and the failure would surface far from its cause.
    """
    if not path.is_file():
        msg = f"cannot build test image: {path} not found"
        msg += " (apt-get install busybox-static)"
        raise ImageBuildError(msg)
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        raise ImageBuildError(f"cannot build test image: {path} is not a 64-bit ELF")
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for index in range(phnum):
        (p_type,) = struct.unpack_from("<I", data, phoff + index * phentsize)
        if p_type == 3:  # PT_INTERP: the binary names a dynamic loader
            msg = (
                f"cannot build test image: {path} is dynamically linked;"
                " apt-get install busybox-static"
            )
            raise ImageBuildError(msg)
    return data


def _files(files: Mapping[str, bytes]) -> list[Member]:
    return [file_member(name.lstrip("/"), data) for name, data in files.items()]


def build_layer(
    files: Mapping[str, bytes] | None = None,
    symlinks: Mapping[str, str] | None = None,
) -> Layer:
    """Build a layer from file contents and symlinks, keyed by absolute path."""
    members = _files(files or {})
    members += [symlink_member(n.lstrip("/"), t) for n, t in (symlinks or {}).items()]
    return Layer(pack(_with_parents(members)))


@functools.lru_cache(maxsize=8)
def _rootfs_layer(busybox: Path, extra: tuple[tuple[str, bytes], ...]) -> Layer:
    members = [dir_member(name) for name in ("dev", "etc", "proc", "sys", "root")]
    members.append(dir_member("tmp", 0o1777))
    members.append(file_member("bin/busybox", _require_static(busybox), 0o755))
    members += [symlink_member(f"bin/{app}", "busybox") for app in BUSYBOX_APPLETS]
    members += _files(dict(extra))
    return Layer(pack(_with_parents(members)))


def build_rootfs_layer(
    extra_files: Mapping[str, bytes] | None = None, busybox: Path = BUSYBOX
) -> Layer:
    """Build a base layer: a static busybox with /bin/sh, echo, cat... as symlinks."""
    return _rootfs_layer(busybox, tuple(sorted((extra_files or {}).items())))


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What to put in one image: its layers, tags and run configuration."""

    layers: tuple[Layer, ...]
    repo_tags: tuple[str, ...] = ()
    cmd: tuple[str, ...] = DEFAULT_CMD
    architecture: str = "amd64"
    os: str = "linux"
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    def container_config(self) -> JSON:
        return {
            "Env": [PATH_ENV],
            "Cmd": list(self.cmd),
            "WorkingDir": "/",
            "Labels": dict(self.labels) or None,
        }

    def config_bytes(self) -> bytes:
        """The image config: what `docker inspect` shows and the image ID hashes."""
        history = [
            {"created": EPOCH, "created_by": f"staticreg test layer {n}"}
            for n in range(len(self.layers))
        ]
        config = {
            "architecture": self.architecture,
            "config": self.container_config(),
            "created": EPOCH,
            "history": history,
            "os": self.os,
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
        }
        return _dumps(config)


def hello_image(
    repo_tags: Sequence[str] = ("test/img:v1",), text: bytes = HELLO_TEXT
) -> ImageSpec:
    """Two layers: busybox, then /hello.txt, which the default command prints."""
    layers = (build_rootfs_layer(), build_layer({"/hello.txt": text}))
    return ImageSpec(layers=layers, repo_tags=tuple(repo_tags))


def busybox_image(repo_tags: Sequence[str] = ("test/busybox:latest",)) -> ImageSpec:
    """One busybox layer; its layer is the base of `hello_image`."""
    return ImageSpec(
        layers=(build_rootfs_layer(),),
        repo_tags=tuple(repo_tags),
        cmd=("/bin/echo", "hello"),
    )


@dataclasses.dataclass(frozen=True)
class SavedImage:
    """One image as written into a tarball, with the member names manifest.json uses."""

    repo_tags: tuple[str, ...]
    config_digest: str
    config_path: str
    diff_ids: tuple[str, ...]
    layer_paths: tuple[str, ...]
    # Only Docker 25+ tarballs hold an OCI manifest; classic ones have none.
    manifest_digest: str | None = None

    @property
    def image_id(self) -> str:
        return self.config_digest


@dataclasses.dataclass(frozen=True)
class SavedTarball:
    """A tarball written by this module and what it holds."""

    path: Path
    kind: str  # "classic" or "docker25"
    images: tuple[SavedImage, ...]


# --- references ---------------------------------------------------------------


def split_tag(repo_tag: str) -> tuple[str, str]:
    """Split `name:tag` into name and tag; a colon inside a host:port is no tag."""
    name, sep, tag = repo_tag.rpartition(":")
    if not sep or "/" in tag:
        return repo_tag, "latest"
    return name, tag


def qualified_name(repo_tag: str) -> str:
    """Expand a familiar `name:tag` as Docker does (`docker.io/library/...`)."""
    name, tag = split_tag(repo_tag)
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return f"{name}:{tag}"
    if "/" not in name:
        name = f"library/{name}"
    return f"docker.io/{name}:{tag}"


def _chain_id(parent: str, diff_id: str) -> str:
    """ChainID of a layer stack (OCI image-spec config.md, "Layer ChainID")."""
    if not parent:
        return diff_id
    return sha256_digest(f"{parent} {diff_id}".encode())


def _legacy_layer_json(
    spec: ImageSpec, chain_id: str, parent: str, top: bool
) -> tuple[str, bytes]:
    """The v1 `json` Docker writes beside each layer, and the v1 ID naming it.

    Docker derives the v1 ID from this JSON plus the chain ID and parent (moby
    image/v1 CreateID); readers never check it, so an equivalent hash will do.
    Only the top layer carries the image's run configuration.
    """
    body: dict[str, JSON] = {"created": EPOCH}
    if top:
        body["config"] = spec.container_config()
        body["architecture"] = spec.architecture
    body["container_config"] = {"Cmd": None, "Env": None}
    body["os"] = spec.os
    id_source = dict(body, layer_id=chain_id, parent=parent)
    v1_id = hashlib.sha256(_dumps(id_source)).hexdigest()
    head = {"id": v1_id, "parent": parent} if parent else {"id": v1_id}
    return v1_id, _dumps({**head, **body})


def _repositories(images: Sequence[tuple[ImageSpec, str]]) -> bytes:
    """The legacy `repositories` file: name -> tag -> ID of the top layer."""
    repositories: dict[str, dict[str, str]] = {}
    for spec, top in images:
        for repo_tag in spec.repo_tags:
            name, tag = split_tag(repo_tag)
            repositories.setdefault(name, {})[tag] = top
    return _dumps(repositories) + b"\n"


# --- classic docker save (Docker 24 and older) --------------------------------


class _ClassicWriter:
    """Lays out a classic `docker save` tree: `<v1id>/layer.tar`, `<hex>.json`."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self.layer_dirs: dict[str, str] = {}  # diff_id -> v1 ID first written

    def add(self, member: Member) -> None:
        self.members.setdefault(_key(member), member)

    def add_layer(self, v1_id: str, v1_json: bytes, layer: Layer) -> str:
        path = f"{v1_id}/layer.tar"
        if v1_id in self.members:
            return path
        self.add(dir_member(v1_id))
        self.add(file_member(f"{v1_id}/VERSION", b"1.0"))
        self.add(file_member(f"{v1_id}/json", v1_json))
        first = self.layer_dirs.setdefault(layer.diff_id, v1_id)
        if first != v1_id:
            # Docker 20.10 writes a layer seen under another v1 ID as a relative
            # symlink to the first copy (moby image/tarexport/save.go, saveLayer).
            self.add(symlink_member(path, f"../{first}/layer.tar"))
        else:
            self.add(file_member(path, layer.data))
        return path

    def add_image(self, spec: ImageSpec) -> tuple[SavedImage, str]:
        config = spec.config_bytes()
        config_path = f"{_hex(sha256_digest(config))}.json"
        self.add(file_member(config_path, config))
        parent = chain = ""
        paths = []
        for index, layer in enumerate(spec.layers):
            chain = _chain_id(chain, layer.diff_id)
            top = index == len(spec.layers) - 1
            v1_id, v1_json = _legacy_layer_json(spec, chain, parent, top)
            paths.append(self.add_layer(v1_id, v1_json, layer))
            parent = v1_id
        saved = SavedImage(
            repo_tags=spec.repo_tags,
            config_digest=sha256_digest(config),
            config_path=config_path,
            diff_ids=spec.diff_ids,
            layer_paths=tuple(paths),
        )
        return saved, parent


def _manifest_entry(saved: SavedImage) -> JSON:
    # Docker writes "RepoTags": null for an image saved by ID.
    return {
        "Config": saved.config_path,
        "RepoTags": list(saved.repo_tags) or None,
        "Layers": list(saved.layer_paths),
    }


def write_docker_save(path: Path, images: Sequence[ImageSpec]) -> SavedTarball:
    """Write a classic `docker save` tarball, as Docker 24 and older wrote it.

    Layers are uncompressed `<v1id>/layer.tar` members beside `VERSION` and `json`;
    a layer shared at a different position is written once and symlinked.
    """
    writer = _ClassicWriter()
    results = [writer.add_image(spec) for spec in images]
    saved = tuple(item for item, _ in results)

    manifest = [_manifest_entry(item) for item in saved]
    writer.add(file_member("manifest.json", _dumps(manifest) + b"\n"))
    tops = [(spec, top) for spec, (_, top) in zip(images, results, strict=True)]
    if any(spec.repo_tags for spec in images):
        writer.add(file_member("repositories", _repositories(tops)))

    path.write_bytes(pack(list(writer.members.values())))
    return SavedTarball(path=path, kind="classic", images=saved)


# --- Docker 25+ docker save (OCI layout inside the tar) ------------------------


def _descriptor(media_type: str, data: bytes) -> JSON:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


def _oci_manifest(spec: ImageSpec, config: bytes) -> bytes:
    """The OCI manifest Docker 25.0.2+ writes: config plus uncompressed layers.

    Docker 25.0.0 and 25.0.1 wrote no layers here (moby#47065); we write the
    fixed form, whose layer digests equal the config's diff_ids.
    """
    layers = [_descriptor(OCI_LAYER, layer.data) for layer in spec.layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config),
        "layers": layers,
    }
    return _dumps(manifest)


def _index_entries(spec: ImageSpec, manifest: bytes) -> list[JSON]:
    """One index.json entry per tag; one without annotations for an untagged image."""
    entry = _descriptor(OCI_MANIFEST, manifest)
    if not spec.repo_tags:
        return [entry]
    entries = []
    for repo_tag in spec.repo_tags:
        annotations = {
            ANNOTATION_IMAGE_NAME: qualified_name(repo_tag),
            ANNOTATION_REF_NAME: split_tag(repo_tag)[1],
        }
        entries.append({**entry, "annotations": annotations})
    return entries


class _Docker25Writer:
    """Lays out a Docker 25+ `docker save` tree: an OCI layout plus manifest.json."""

    def __init__(self) -> None:
        self.members: dict[str, Member] = {
            "blobs": dir_member("blobs"),
            "blobs/sha256": dir_member("blobs/sha256"),
        }
        self.index: list[JSON] = []

    def add_blob(self, data: bytes) -> str:
        path = f"blobs/sha256/{_hex(sha256_digest(data))}"
        self.members.setdefault(path, file_member(path, data))
        return path

    def add_image(self, spec: ImageSpec) -> SavedImage:
        config = spec.config_bytes()
        config_path = self.add_blob(config)
        parent = chain = ""
        paths = []
        for index, layer in enumerate(spec.layers):
            chain = _chain_id(chain, layer.diff_id)
            top = index == len(spec.layers) - 1
            v1_id, v1_json = _legacy_layer_json(spec, chain, parent, top)
            # Docker 25 still writes each legacy v1 layer JSON as a loose blob.
            self.add_blob(v1_json)
            paths.append(self.add_blob(layer.data))
            parent = v1_id

        manifest = _oci_manifest(spec, config)
        self.add_blob(manifest)
        self.index += _index_entries(spec, manifest)
        return SavedImage(
            repo_tags=spec.repo_tags,
            config_digest=sha256_digest(config),
            config_path=config_path,
            diff_ids=spec.diff_ids,
            layer_paths=tuple(paths),
            manifest_digest=sha256_digest(manifest),
        )


def write_docker25_save(path: Path, images: Sequence[ImageSpec]) -> SavedTarball:
    """Write a `docker save` tarball as Docker 25 and later write it.

    Follows moby image/tarexport/save.go: blobs under `blobs/sha256/`, an
    `index.json` entry per tag annotated with the full and the short name, and the
    classic `manifest.json` pointing at the same blobs. Layers stay uncompressed.
    """
    writer = _Docker25Writer()
    saved = tuple(writer.add_image(spec) for spec in images)

    manifest = [_manifest_entry(item) for item in saved]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": writer.index}
    files = {
        "manifest.json": _dumps(manifest) + b"\n",
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": _dumps(index),
    }
    # The legacy repositories file names the top layer by its diff_id here.
    tops = [(spec, _hex(spec.diff_ids[-1])) for spec in images]
    if any(spec.repo_tags for spec in images):
        files["repositories"] = _repositories(tops)
    members = list(writer.members.values())
    members += [file_member(name, data) for name, data in files.items()]

    path.write_bytes(pack(members))
    return SavedTarball(path=path, kind="docker25", images=saved)


def write_rootfs_tar(path: Path, text: bytes = HELLO_TEXT) -> Path:
    """Write one flat rootfs tar (busybox plus /hello.txt) for `docker import`."""
    path.write_bytes(build_rootfs_layer({"/hello.txt": text}).data)
    return path


# --- broken and hostile variants ---------------------------------------------


def read_manifest(path: Path) -> list[JSON]:
    """Return the parsed manifest.json of a `docker save` tarball."""
    with tarfile.open(path, mode="r:") as tar:
        extracted = tar.extractfile("manifest.json")
        if extracted is None:
            raise ImageBuildError(f"{path}: manifest.json is not a regular file")
        manifest: list[JSON] = json.load(extracted)
    return manifest


def _rewrite(src: Path, dst: Path, edit: Callable[[dict[str, Member]], None]) -> Path:
    """Copy a tarball member by member, letting `edit` change the member map."""
    members = {_key(m): m for m in unpack(src.read_bytes())}
    edit(members)
    dst.write_bytes(pack(list(members.values())))
    return dst


def _resolve(members: Mapping[str, Member], name: str) -> str:
    """Follow a layer member that is a relative symlink to the regular file."""
    member = members[name]
    if not member.info.issym():
        return name
    base = name.rsplit("/", 1)[0].split("/") if "/" in name else []
    for part in member.info.linkname.split("/"):
        if part == "..":
            base.pop()
        elif part not in ("", "."):
            base.append(part)
    return "/".join(base)


def target_layer_member(path: Path) -> str:
    """The member holding the bytes of the first image's last layer."""
    name: str = read_manifest(path)[0]["Layers"][-1]
    members = {_key(m): m for m in unpack(path.read_bytes())}
    return _resolve(members, name)


def truncated(src: Path, dst: Path) -> Path:
    """Cut the tarball in the middle of a layer's bytes."""
    target = target_layer_member(src)
    with tarfile.open(src, mode="r:") as tar:
        info = tar.getmember(target)
    cut = info.offset_data + info.size // 2
    dst.write_bytes(src.read_bytes()[:cut])
    return dst


def _add_evil_file(name: str) -> Callable[[dict[str, Member]], None]:
    def edit(members: dict[str, Member]) -> None:
        members[name] = file_member(name, b"evil\n")

    return edit


def with_dotdot_member(src: Path, dst: Path) -> Path:
    """Add a member named `../evil`, which must never be written outside."""
    return _rewrite(src, dst, _add_evil_file("../evil"))


def with_absolute_member(src: Path, dst: Path) -> Path:
    """Add a member with the absolute name `/etc/evil`."""
    return _rewrite(src, dst, _add_evil_file("/etc/evil"))


def with_corrupt_layer(src: Path, dst: Path) -> Path:
    """Replace a layer by a valid tar whose digest no longer matches its diff_id."""
    target = target_layer_member(src)

    def edit(members: dict[str, Member]) -> None:
        original = members[target].data or b""
        tampered = unpack(original) + [file_member("tampered.txt", b"tampered\n")]
        members[target] = file_member(target, pack(tampered))

    return _rewrite(src, dst, edit)


def with_corrupt_config(src: Path, dst: Path) -> Path:
    """Change the config so that it no longer hashes to the name it is saved under."""
    named: str = read_manifest(src)[0]["Config"]

    def edit(members: dict[str, Member]) -> None:
        config = json.loads(members[named].data or b"{}")
        config.setdefault("config", {})["User"] = "intruder"
        members[named] = file_member(named, json.dumps(config).encode())

    return _rewrite(src, dst, edit)


def with_missing_layer(src: Path, dst: Path) -> Path:
    """Drop the layer member that manifest.json names (and any symlink to it)."""
    named: str = read_manifest(src)[0]["Layers"][-1]
    target = target_layer_member(src)

    def edit(members: dict[str, Member]) -> None:
        members.pop(named, None)
        members.pop(target, None)

    return _rewrite(src, dst, edit)


def with_escaping_symlink(src: Path, dst: Path) -> Path:
    """Turn the layer that manifest.json names into a symlink leaving the tarball."""
    named: str = read_manifest(src)[0]["Layers"][-1]

    def edit(members: dict[str, Member]) -> None:
        members[named] = symlink_member(named, "../../../../../../etc/passwd")

    return _rewrite(src, dst, edit)


def not_a_tar(dst: Path) -> Path:
    """Write a file that no tar reader accepts."""
    dst.write_bytes(b"this is not a tar archive\n" * 64)
    return dst
