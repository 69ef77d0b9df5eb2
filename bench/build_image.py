"""Build the benchmark's input: classic ``docker save`` tarballs of local files.

Each layer is a tar of real files (shared libraries, executables, text, Python's
standard library) taken in sorted order until the layer's share of the size budget
is used, so the same machine builds the same bytes every time. The outer archive
follows Docker 24's layout: ``<id>/layer.tar`` with ``VERSION`` and ``json`` beside
it, a ``<sha256>.json`` config whose ``rootfs.diff_ids`` are the layers' digests,
``manifest.json`` and ``repositories``. Results are cached, keyed by size and by
``FORMAT``, because reading a few GiB of scattered files is slow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import sysconfig
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Bump when the layer plan or the archive layout changes, so stale caches go.
FORMAT = 2
TAG = "bench/img:1"
GIB = 1 << 30
CHUNK = 1 << 20
# Fixed metadata: the bytes must depend on file contents and names only.
MTIME = 1_700_000_000
EXCLUDED = ("site-packages", "dist-packages")
# How far a layer's content may miss its share of the budget, either way.
SLACK = 0.03


@dataclass(frozen=True)
class LayerSpec:
    """One layer: where its files come from, and its share of the size budget."""

    name: str
    sources: tuple[tuple[str, str], ...]  # (folder on this machine, path in layer)
    share: float
    min_file_size: int = 0


def _stdlib() -> str:
    return sysconfig.get_path("stdlib")


def image_plan() -> list[LayerSpec]:
    """The multi-layer image: a distribution base, tools, a runtime, an app."""
    py = os.path.basename(_stdlib())
    return [
        LayerSpec(
            "libs", (("/usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"),), 0.30
        ),
        LayerSpec("bin", (("/usr/bin", "usr/bin"), ("/usr/sbin", "usr/sbin")), 0.12),
        LayerSpec("share", (("/usr/share", "usr/share"),), 0.13),
        LayerSpec(
            "toolchain",
            (
                ("/usr/lib/gcc", "usr/lib/gcc"),
                ("/usr/libexec", "usr/libexec"),
                ("/usr/lib/llvm-14", "usr/lib/llvm-14"),
            ),
            0.15,
        ),
        LayerSpec("python", ((_stdlib(), f"usr/local/lib/{py}"),), 0.15),
        # A few large files, as images of JDKs or language servers carry.
        LayerSpec("large", (("/usr/lib", "opt/large"),), 0.10, min_file_size=8 << 20),
        LayerSpec("app", (("/usr/lib/python3/dist-packages", "app"),), 0.05),
    ]


def big_plan() -> list[LayerSpec]:
    """One layer holding everything: the memory check's worst case."""
    return [
        LayerSpec("all", (("/usr/lib", "usr/lib"), ("/usr/share", "usr/share")), 1.0)
    ]


# Sources used when a layer's own folders run out before its budget.
FALLBACK = (("/usr/lib", "usr/lib"), ("/usr/share", "usr/share"), ("/opt", "opt"))


def ensure(cache_dir: str, kind: str, size_gib: float) -> dict[str, Any]:
    """Return the cached tarball's description, building it first if needed."""
    stem = f"{kind}-{size_gib:g}gib-v{FORMAT}"
    path = os.path.join(cache_dir, f"{stem}.tar")
    meta_path = os.path.join(cache_dir, f"{stem}.json")
    if os.path.exists(meta_path) and os.path.exists(path):
        with open(meta_path) as file:
            meta: dict[str, Any] = json.load(file)
        if meta.get("size") == os.path.getsize(path):
            return meta
    os.makedirs(cache_dir, exist_ok=True)
    plan = image_plan() if kind == "image" else big_plan()
    meta = build(path, plan, int(size_gib * GIB))
    # The description is written last: its presence marks a complete tarball.
    with open(meta_path, "w") as file:
        json.dump(meta, file, indent=2)
    return meta


def build(path: str, plan: list[LayerSpec], budget: int) -> dict[str, Any]:
    """Write a classic docker save tarball at ``path``; describe what it holds."""
    work = f"{path}.parts"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        taken: set[str] = set()
        layers = []
        carry = 0
        for number, spec in enumerate(plan):
            target = int(budget * spec.share) + carry
            layer_path = os.path.join(work, f"{number}.tar")
            stats = _write_layer(layer_path, spec, target, taken)
            carry = max(0, target - stats["content"])
            layers.append({"name": spec.name, "path": layer_path, **stats})
        _check_size(path, budget, sum(layer["content"] for layer in layers))
        _write_archive(f"{path}.tmp", layers)
        os.replace(f"{path}.tmp", path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for layer in layers:
        del layer["path"]
    return {"path": path, "size": os.path.getsize(path), "tag": TAG, "layers": layers}


def _check_size(path: str, budget: int, content: int) -> None:
    """Refuse an input well short of its size: the rows would measure less work
    than they claim (a machine with too few files to copy builds one)."""
    if content < budget * (1 - 2 * SLACK):
        raise SystemExit(
            f"cannot build {path}: found {content / GIB:.2f} GiB of files for a "
            f"{budget / GIB:.2f} GiB image; ask for a smaller one"
        )


# Layers ----------------------------------------------------------------------------


def _write_layer(
    path: str, spec: LayerSpec, target: int, taken: set[str]
) -> dict[str, Any]:
    content = files = 0
    dirs: set[str] = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for source, name, st in _candidates(spec, taken):
            if content >= target * (1 - SLACK):
                break
            if content + st.st_size > target * (1 + SLACK):
                continue  # keep each layer near its share: look for a smaller file
            taken.add(source)
            _add_parents(tar, name, dirs)
            if stat.S_ISLNK(st.st_mode):
                tar.addfile(_info(name, st, tarfile.SYMTYPE, os.readlink(source)))
                continue
            try:
                file = open(source, "rb")  # noqa: SIM115 - closed just below
            except OSError:
                continue  # unreadable or vanished: the plan is best effort
            with file:
                tar.addfile(_info(name, st, tarfile.REGTYPE), file)
            content += st.st_size
            files += 1
    diff_id = _sha256_file(path)
    return {
        "diff_id": diff_id,
        "files": files,
        "content": content,
        "tar_size": os.path.getsize(path),
    }


def _candidates(
    spec: LayerSpec, taken: set[str]
) -> Iterator[tuple[str, str, os.stat_result]]:
    for folder, prefix in spec.sources + FALLBACK:
        for source, st in _walk(folder):
            if source in taken:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size < spec.min_file_size:
                continue
            yield source, prefix + source[len(folder) :], st


def _walk(folder: str) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files and symlinks under ``folder``, depth first, sorted by name."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if entry.name not in EXCLUDED:
                yield from _walk(entry.path)
        elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            yield entry.path, st


def _add_parents(tar: tarfile.TarFile, name: str, dirs: set[str]) -> None:
    parts = name.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        if folder not in dirs:
            dirs.add(folder)
            tar.addfile(_dir_info(folder))


def _info(
    name: str, st: os.stat_result, kind: bytes, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.size = st.st_size if kind == tarfile.REGTYPE else 0
    info.linkname = link
    info.mtime = MTIME
    info.uname = info.gname = "root"
    return info


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = MTIME
    info.uname = info.gname = "root"
    return info


def _sha256_file(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


# Archive ---------------------------------------------------------------------------


def _write_archive(path: str, layers: list[dict[str, Any]]) -> None:
    diff_ids = [layer["diff_id"] for layer in layers]
    config = _config_bytes(diff_ids)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    # Docker 24 names each layer folder by a v1 ID chained from its parent's.
    ids, parent = [], ""
    for diff_id in diff_ids:
        parent = hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()
        ids.append(parent)
    manifest = [
        {
            "Config": config_name,
            "RepoTags": [TAG],
            "Layers": [f"{layer_id}/layer.tar" for layer_id in ids],
        }
    ]
    repo, tag = TAG.split(":")
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for number, (layer_id, layer) in enumerate(zip(ids, layers, strict=True)):
            tar.addfile(_dir_info(layer_id))
            _add_bytes(tar, f"{layer_id}/VERSION", b"1.0")
            v1 = {"id": layer_id, "parent": ids[number - 1] if number else None}
            _add_bytes(tar, f"{layer_id}/json", json.dumps(v1).encode())
            with open(layer["path"], "rb") as file:
                info = _dir_info(f"{layer_id}/layer.tar")
                info.type, info.mode = tarfile.REGTYPE, 0o644
                info.size = os.path.getsize(layer["path"])
                tar.addfile(info, file)
        _add_bytes(tar, config_name, config)
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        _add_bytes(tar, "repositories", json.dumps({repo: {tag: ids[-1]}}).encode())


def _config_bytes(diff_ids: list[str]) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2023-11-14T22:13:20Z", "created_by": "bench"} for _ in diff_ids
        ],
    }
    return json.dumps(config, separators=(",", ":")).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _dir_info(name)
    info.type, info.mode, info.size = tarfile.REGTYPE, 0o644, len(data)
    tar.addfile(info, io.BytesIO(data))
