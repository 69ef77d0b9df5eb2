"""The machine's limit: the same compressor and hashes as publish, nothing else.

``python bench/limit.py gzip|zstd TARBALL`` finds the layers through the tar
index, reads them once into the page cache, then times only this: per layer, a
sha256 of the plain bytes, the compressor staticreg uses with the same settings,
and a sha256 of its output, on a pool of one thread per core. No tar parsing,
no writes. It prints JSON: seconds, CPU seconds, the layer digests, the bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

CHUNK = 1 << 20
GZIP_BLOCK = 1 << 20


class _HashingSink:
    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _layer_spans(path: str) -> list[tuple[int, int]]:
    with tarfile.open(path, "r:") as tar:
        members = {member.name: member for member in tar.getmembers()}
        handle = tar.extractfile(members["manifest.json"])
        if handle is None:
            raise SystemExit(f"{path}: manifest.json is not a regular file")
        manifest = json.load(handle)
    names = [name for entry in manifest for name in entry["Layers"]]
    return [(members[name].offset_data, members[name].size) for name in names]


def _open_encoder(codec: str, sink: _HashingSink) -> Any:
    threads = len(os.sched_getaffinity(0))
    if codec == "gzip":
        from isal import igzip_threaded

        return igzip_threaded.open(  # type: ignore[no-untyped-call]
            sink, "wb", compresslevel=1, threads=threads, block_size=GZIP_BLOCK
        )
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3, threads=threads)
    return compressor.stream_writer(sink, closefd=False)  # type: ignore[arg-type]


def _compress_span(path: str, codec: str, span: tuple[int, int]) -> tuple[str, int]:
    plain, sink = hashlib.sha256(), _HashingSink()
    encoder = _open_encoder(codec, sink)
    with open(path, "rb") as file:
        file.seek(span[0])
        left = span[1]
        while left:
            chunk = file.read(min(CHUNK, left))
            left -= len(chunk)
            plain.update(chunk)
            encoder.write(chunk)
    encoder.close()
    return "sha256:" + sink.hasher.hexdigest(), sink.size


def measure_limit(codec: str, path: str) -> None:
    """Print, as JSON, the seconds to hash and compress every layer of ``path``."""
    spans = _layer_spans(path)
    for span in spans:
        _read_span(path, span)
    workers = len(os.sched_getaffinity(0))
    cpu, start = _self_cpu(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(lambda span: _compress_span(path, codec, span), spans))
    seconds, cpu = time.perf_counter() - start, _self_cpu() - cpu
    digests = [digest for digest, _ in done]
    stored = sum(size for _, size in done)
    report = {"seconds": seconds, "cpu": cpu, "digests": digests, "stored": stored}
    print(json.dumps(report))


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read_span(path: str, span: tuple[int, int]) -> None:
    with open(path, "rb") as file:
        file.seek(span[0])
        left = span[1]
        while left:
            left -= len(file.read(min(CHUNK, left)))


if __name__ == "__main__":
    measure_limit(sys.argv[1], sys.argv[2])
