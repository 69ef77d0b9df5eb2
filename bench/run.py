"""Benchmark ``staticreg publish`` against skopeo, a registry and the machine's limit.

Usage: python bench/run.py [--size-gib 1.0] [--big-layer-gib 2] [--repeat 3]
                           [--max-wait 30] [--json OUT] [--skip-big]

Builds the inputs (build_image.py), runs every row under measure.py, compares
with the machine's limit (limit.py), prints the table and writes it as JSON; see
bench/README.md for what each row means and how to read the checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from typing import Any

import build_image
import measure
from measure import Run

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 1_000_000
CHUNK = 1 << 20
TAG = build_image.TAG
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
http:
  addr: 127.0.0.1:{port}
"""


# Cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One row: a command, its input and the folder it writes, if any."""

    name: str
    argv: tuple[str, ...]
    input: str
    output: str | None = None
    fresh: bool = True  # start from an empty output folder
    registry_port: int = 0  # run a registry storing into ``output`` meanwhile
    self_timed: bool = False  # the command prints its own timed section


@dataclass
class Result:
    """One row of the table: medians over the runs, maxima for memory."""

    name: str
    seconds: float = 0.0
    mb_per_s: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    hwm_sum_mb: float = 0.0
    output_mb: float | None = None
    other_cpu_seconds: float = 0.0
    steal_seconds: float = 0.0
    runs: list[float] = field(default_factory=list)
    vs_skopeo: float | None = None
    error: str | None = None
    digests: list[str] = field(default_factory=list)


def build_cases(tar: str, big: str | None, work: str) -> list[Case]:
    """The rows, in the order they run; republish must follow publish gzip."""
    policy = os.path.join(work, "policy.json")
    with open(policy, "w") as file:
        json.dump({"default": [{"type": "insecureAcceptAnything"}]}, file)
    skopeo = ("skopeo", "--policy", policy, "copy", "-q", f"docker-archive:{tar}")
    port = _free_port()
    limit = (sys.executable, os.path.join(HERE, "limit.py"))
    cases = [
        _publish("publish gzip", tar, f"{work}/root-gzip"),
        replace(_publish("republish gzip", tar, f"{work}/root-gzip"), fresh=False),
        _publish("publish zstd", tar, f"{work}/root-zstd", "zstd"),
        _publish("publish none", tar, f"{work}/root-none", "none"),
        Case("limit gzip", (*limit, "gzip", tar), tar, self_timed=True),
        Case("limit zstd", (*limit, "zstd", tar), tar, self_timed=True),
        Case("skopeo oci:", (*skopeo, f"oci:{work}/oci:1"), tar, f"{work}/oci"),
        Case(
            "skopeo registry",
            (*skopeo, "--dest-tls-verify=false", f"docker://127.0.0.1:{port}/{TAG}"),
            tar,
            f"{work}/registry",
            registry_port=port,
        ),
        Case("openssl sha256", ("openssl", "dgst", "-sha256", tar), tar),
    ]
    if big:
        cases.append(_publish("publish big layer", big, f"{work}/root-big"))
    return cases


def _publish(name: str, tar: str, root: str, compression: str = "auto") -> Case:
    argv = (sys.executable, "-m", "staticreg", "-q", "publish", "--compression")
    return Case(name, (*argv, compression, "--root", root, tar), tar, root)


def run_case(case: Case, repeat: int, work: str, max_wait: float) -> Result:
    """Run a row ``repeat`` times; a failure is kept in the result, not raised."""
    runs: list[Run] = []
    try:
        for _ in range(repeat):
            if not measure.wait_quiet(max_wait):
                _say(f"  the machine is still busy after {max_wait:.0f} s; running")
            runs.append(_run_once(case, work))
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as err:
        return Result(case.name, error=str(err).strip())
    timings = [_timing(case, run) for run in runs]
    median = statistics.median(wall for wall, _ in timings)
    result = Result(
        name=case.name,
        seconds=median,
        mb_per_s=os.path.getsize(case.input) / MB / median,
        cpu_seconds=statistics.median(cpu for _, cpu in timings),
        peak_rss_mb=max(run.peak_rss for run in runs) / MB,
        hwm_sum_mb=max(run.hwm_sum for run in runs) / MB,
        output_mb=_disk_usage(case.output) / MB if case.output else None,
        other_cpu_seconds=max(run.other_cpu for run in runs),
        steal_seconds=max(run.steal for run in runs),
        runs=[wall for wall, _ in timings],
    )
    if case.self_timed:
        report = json.loads(runs[-1].stdout)
        result.output_mb = report["stored"] / MB
        result.digests = report["digests"]
    return result


def _run_once(case: Case, work: str) -> Run:
    if case.fresh and case.output:
        shutil.rmtree(case.output, ignore_errors=True)
    os.sync()  # earlier runs' dirty pages must not be flushed on this one's time
    log = os.path.join(work, "command.log")
    if not case.registry_port:
        return measure.measure(case.argv, log)
    with registry(case.output or "", case.registry_port, work) as pid:
        return measure.measure(case.argv, log, extra=[pid])


def _timing(case: Case, run: Run) -> tuple[float, float]:
    """Wall and CPU seconds: of the timed section, for a self-timed command."""
    if case.self_timed:
        report = json.loads(run.stdout)
        return float(report["seconds"]), float(report["cpu"])
    return run.seconds, run.cpu_seconds


def _disk_usage(folder: str) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, _, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(top, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


# The registry ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def registry(storage: str, port: int, work: str) -> Iterator[int]:
    """Run the CNCF distribution registry on 127.0.0.1:``port``; yield its pid."""
    config = os.path.join(work, "registry.yml")
    with open(config, "w") as file:
        file.write(REGISTRY_CONFIG.format(storage=storage, port=port))
    with open(os.path.join(work, "registry.log"), "wb") as log:
        proc = subprocess.Popen(
            ["docker-registry", "serve", config],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v2/", proc)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not answer {url} within 20 s")


# Checks ------------------------------------------------------------------------------

# (name, passed or None when a row it needs failed, figures)
Check = tuple[str, bool | None, str]


def checks(results: dict[str, Result]) -> list[Check]:
    def seconds(name: str) -> float | None:
        result = results.get(name)
        return result.seconds if result and not result.error else None

    found: list[Check] = []
    for kind in ("gzip", "zstd"):
        found.append(
            _ratio(
                f"{kind} >= 6x skopeo oci:",
                seconds("skopeo oci:"),
                seconds(f"publish {kind}"),
                lambda r: r >= 6,
            )
        )
    for kind in ("gzip", "zstd"):
        found.append(
            _ratio(
                f"publish {kind} <= 1.5x limit",
                seconds(f"publish {kind}"),
                seconds(f"limit {kind}"),
                lambda r: r <= 1.5,
            )
        )
    found.append(
        _ratio(
            "republish <= 1.5x openssl",
            seconds("republish gzip"),
            seconds("openssl sha256"),
            lambda r: r <= 1.5,
        )
    )
    for name, result in results.items():
        if "publish" in name and not result.error:
            rss = result.peak_rss_mb
            found.append((f"peak RSS < 150 MB ({name})", rss < 150, f"{rss:.0f} MB"))
    return found


def _ratio(
    name: str,
    top: float | None,
    bottom: float | None,
    passes: Callable[[float], bool],
) -> Check:
    if top is None or bottom is None:
        return name, None, "a row it needs failed"
    ratio = top / bottom
    return name, passes(ratio), f"{top:.2f} s / {bottom:.2f} s = {ratio:.2f}x"


# Machine and report ------------------------------------------------------------------


def machine() -> dict[str, Any]:
    with open("/proc/cpuinfo") as file:
        lines = [line for line in file if line.startswith("model name")]
    with open("/proc/meminfo") as file:
        ram_kib = int(file.readline().split()[1])
    return {
        "cpu": lines[0].split(":", 1)[1].strip() if lines else "unknown",
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(ram_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "staticreg": _version([sys.executable, "-m", "staticreg", "--version"]),
        "skopeo": _version(["skopeo", "--version"]),
        "docker-registry": _version(["docker-registry", "--version"]),
        "openssl": _version(["openssl", "version"]),
        "isal": _module_version("isal"),
        "zstandard": _module_version("zstandard"),
    }


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable ({err})"
    lines = done.stdout.strip().splitlines()
    return lines[0] if lines else "unknown"


def _module_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def render(
    results: list[Result], found: list[Check], info: dict[str, Any], notes: list[str]
) -> str:
    lines = [f"{key}: {value}" for key, value in info.items()]
    lines += ["", *notes, ""]
    header = (
        f"{'name':<18} {'s':>7} {'MB/s':>6} {'CPU s':>6} {'cores':>5} "
        f"{'peak RSS MB':>11} {'out MB':>7} {'vs skopeo':>9}"
    )
    lines += [header, "-" * len(header)]
    for r in results:
        if r.error:
            lines.append(f"{r.name:<18} FAILED: {r.error.splitlines()[0][:60]}")
            continue
        out = f"{r.output_mb:.0f}" if r.output_mb is not None else "-"
        ratio = f"{r.vs_skopeo:.1f}x" if r.vs_skopeo else "-"
        lines.append(
            f"{r.name:<18} {r.seconds:>7.2f} {r.mb_per_s:>6.0f} "
            f"{r.cpu_seconds:>6.2f} {r.cpu_seconds / r.seconds:>5.2f} "
            f"{r.peak_rss_mb:>11.0f} {out:>7} {ratio:>9}"
        )
    lines.append("")
    for name, ok, detail in found:
        verdict = "SKIP" if ok is None else "PASS" if ok else "FAIL"
        lines.append(f"{verdict}  {name}: {detail}")
    return "\n".join(lines)


def notes(
    results: dict[str, Result], inputs: list[dict[str, Any]], repeat: int, work: str
) -> list[str]:
    """What the reader needs to trust the table: inputs, cache, method, noise."""
    found = [
        f"input: {meta['path']} ({meta['size'] / MB:.0f} MB, "
        f"{len(meta['layers'])} layer(s))"
        for meta in inputs
    ]
    found += [
        "page cache: every input was read once before the timed runs, so every row "
        "starts warm; sync runs before each run",
        "MB = 10^6 bytes; peak RSS = max over time of the summed VmRSS of the "
        f"process tree, sampled every {measure.SAMPLE_SECONDS * 1000:.0f} ms; "
        f"seconds are the median of {repeat} run(s)",
    ]
    for kind in ("gzip", "zstd"):
        limit = results.get(f"limit {kind}")
        if limit and not limit.error:
            found.append(_blob_check(limit, os.path.join(work, f"root-{kind}")))
    busy = [r for r in results.values() if not r.error and _noisy(r)]
    for r in busy:
        found.append(
            f"warning: other processes used {r.other_cpu_seconds:.1f} CPU s and the "
            f"host stole {r.steal_seconds:.1f} s during a run of {r.name!r}; its "
            "figures are pessimistic"
        )
    return found


def _noisy(result: Result) -> bool:
    # More than a tenth of one core's time over the row's runs: worth saying.
    budget = 0.1 * result.seconds
    return result.other_cpu_seconds + result.steal_seconds > max(budget, 0.2)


def _blob_check(result: Result, root: str) -> str:
    """Say whether the limit produced the very blobs publish wrote."""
    present = [
        digest
        for digest in result.digests
        if os.path.exists(os.path.join(root, "blobs", *digest.split(":")))
    ]
    return (
        f"{result.name}: {len(present)} of {len(result.digests)} layer blobs "
        "identical to publish's"
    )


# Main --------------------------------------------------------------------------------


def warm(path: str) -> None:
    """Read ``path`` once so that every timed run finds it in the page cache."""
    with open(path, "rb") as file:
        while file.read(8 * CHUNK):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    cache = os.path.join(HERE, ".cache")
    _say("building or reusing the inputs in bench/.cache ...")
    inputs = [build_image.ensure(cache, "image", args.size_gib)]
    if not args.skip_big:
        inputs.append(build_image.ensure(cache, "big", args.big_layer_gib))
    work = tempfile.mkdtemp(prefix="staticreg-bench-")
    try:
        for meta in inputs:
            warm(meta["path"])
        big = inputs[1]["path"] if len(inputs) > 1 else None
        results: dict[str, Result] = {}
        for case in build_cases(inputs[0]["path"], big, work):
            _say(f"running {case.name} ...")
            result = run_case(case, args.repeat, work, args.max_wait)
            results[case.name] = result
            _say(
                f"  failed: {result.error}"
                if result.error
                else f"  {result.seconds:.2f} s"
            )
        said = notes(results, inputs, args.repeat, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(results, said, inputs, args.json)
    return 1 if any(r.error for r in results.values()) else 0


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _report(
    results: dict[str, Result],
    said: list[str],
    inputs: list[dict[str, Any]],
    out: str | None,
) -> None:
    skopeo = results.get("skopeo oci:")
    for result in results.values():
        if skopeo and not skopeo.error and not result.error:
            result.vs_skopeo = skopeo.seconds / result.seconds
    found = checks(results)
    info = machine()
    print(render(list(results.values()), found, info, said))
    out = out or os.path.join(HERE, "results", "latest.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    doc = {
        "machine": info,
        "inputs": inputs,
        "notes": said,
        "results": [asdict(result) for result in results.values()],
        "checks": [{"name": n, "pass": ok, "detail": d} for n, ok, d in found],
    }
    with open(out, "w") as file:
        json.dump(doc, file, indent=2)
    _say(f"wrote {out}")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--size-gib", type=float, default=1.0, help="multi-layer image size (1.0)"
    )
    parser.add_argument(
        "--big-layer-gib", type=float, default=2.0, help="single-layer image size (2)"
    )
    parser.add_argument(
        "--skip-big", action="store_true", help="leave out the single-layer image"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per row; medians are shown (3)"
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=30,
        help="seconds to wait before each run for other processes to go idle (30)",
    )
    parser.add_argument(
        "--json", metavar="OUT", help="results file (bench/results/latest.json)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
