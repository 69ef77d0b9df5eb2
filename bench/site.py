"""Time the browse site's generation on a large synthetic tree.

Usage: python bench/site.py [--repositories 5000] [--tags 10] [--repeat 3]
                            [--keep DIR]

Builds the synthetic tree of ``tests/gen/synthetic.py`` (records, manifests and
configs as publish writes them) in a folder, then times these rows, each in a
process of its own, as wall seconds:

- ``index, cold``: ``staticreg index`` on a tree that has no site and no cache
  of the site's inputs (a tree published by an older staticreg): every blob read,
  every page, JSON file and docker search answer written;
- ``index, again``: ``staticreg index`` once more: nothing changed;
- ``index --force``: the same, trusting nothing the last run left: every record
  and blob read, every file made again and compared;
- ``index, new host``: ``staticreg index --base-url`` with a new address, so that
  every repository page is rendered again (from the cache);
- ``after publish``: ``site.regenerate`` of one repository added to the tree, as
  ``staticreg publish`` runs it (timed inside the process: no Python start-up).

Each row runs ``--repeat`` times and the median is shown. ``--keep DIR`` builds
the tree in DIR and reuses it on later runs (building takes about 20 seconds).
The staticreg measured is the one of this checkout, whatever is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
SYNTHETIC = os.path.join(SOURCE, "tests", "gen")
ENV = {**os.environ, "PYTHONPATH": SOURCE}
# What a cold run starts without: the site, the answers, the site's private files.
GENERATED = ("site", "v1", ".staticreg")
# The child of the incremental row: add one repository, time the regeneration.
INCREMENTAL = """\
import json, sys, time
sys.path.insert(0, {synthetic!r})
import synthetic
from staticreg import catalog
from staticreg.gen import site
from staticreg.store import DirectoryStore

store = DirectoryStore({root!r})
name = {name!r}
synthetic.repository(store, name, 3, "One more service")
synthetic.catalog_of(store, [*catalog.read_names(store), name])
started = time.perf_counter()
report = site.regenerate(store, [name])
print(json.dumps({{"seconds": time.perf_counter() - started,
                  "written": report.written}}))
store.close()
"""


def build(root: str, repositories: int, tags: int) -> float:
    """Write the synthetic tree into ``root``; return the seconds it took."""
    sys.path[:0] = [SOURCE, SYNTHETIC]
    import synthetic

    started = time.perf_counter()
    store = synthetic.tree(repositories, tags)
    # Plain writes: the tree only has to look published, not be written safely.
    for key, data in store.objects.items():
        path = os.path.join(root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(data)
    return time.perf_counter() - started


def prepare(top: str, repositories: int, tags: int) -> str:
    """The tree under ``top``, built unless one of this size is there already."""
    root = os.path.join(top, "tree")
    marker = os.path.join(top, "built")
    wanted = f"{repositories} {tags}\n"
    if os.path.exists(marker) and _read(marker) == wanted:
        print(f"tree: reusing {root}")
        return root
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    seconds = build(root, repositories, tags)
    shutil.copy(os.path.join(root, "v2", "_catalog.json"), catalog_copy(top))
    with open(marker, "w") as file:
        file.write(wanted)
    print(f"tree: built in {seconds:.1f}s")
    return root


def _read(path: str) -> str:
    with open(path) as file:
        return file.read()


def catalog_copy(top: str) -> str:
    return os.path.join(top, "catalog.json")


def index(root: str, *options: str) -> float:
    argv = [sys.executable, "-m", "staticreg", "-q", "index", "--root", root]
    started = time.perf_counter()
    subprocess.run([*argv, *options], check=True, env=ENV)
    return time.perf_counter() - started


def cold(root: str) -> float:
    for folder in GENERATED:
        shutil.rmtree(os.path.join(root, folder), ignore_errors=True)
    return index(root)


def after_publish(root: str, name: str) -> tuple[float, int]:
    code = INCREMENTAL.format(synthetic=SYNTHETIC, root=root, name=name)
    argv = [sys.executable, "-c", code]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, env=ENV)
    found = json.loads(done.stdout)
    return float(found["seconds"]), int(found["written"])


def restore(top: str, root: str) -> None:
    """Take the repositories the incremental row added out of the tree again."""
    shutil.copy(catalog_copy(top), os.path.join(root, "v2", "_catalog.json"))
    shutil.rmtree(os.path.join(root, "repositories", "bench"), ignore_errors=True)


def count_files(root: str, folder: str) -> int:
    return sum(len(files) for _, _, files in os.walk(os.path.join(root, folder)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repositories", type=int, default=5000)
    parser.add_argument("--tags", type=int, default=10, help="per repository")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="build the tree here, keep it")
    args = parser.parse_args()

    top = args.keep or tempfile.mkdtemp(prefix="staticreg-site-bench-")
    os.makedirs(top, exist_ok=True)
    try:
        root = prepare(top, args.repositories, args.tags)
        restore(top, root)
        total = args.repositories * args.tags
        print(f"tree: {args.repositories} repositories, {total} tags")
        rows = {
            "index, cold": [cold(root) for _ in range(args.repeat)],
            "index, again": [index(root) for _ in range(args.repeat)],
            "index --force": [index(root, "--force") for _ in range(args.repeat)],
            "index, new host": [
                index(root, "--base-url", f"host-{n}.example.com")
                for n in range(args.repeat)
            ],
        }
        pages = count_files(root, "site")
        answers = count_files(root, "v1/search")
        home = os.path.getsize(os.path.join(root, "site", "index.html"))
        incremental = [
            after_publish(root, f"bench/extra-{n}") for n in range(args.repeat)
        ]
        rows["after publish"] = [seconds for seconds, _ in incremental]
        restore(top, root)

        print(f"output: {pages} site files, {answers} search answers, home {home} B")
        for name, seconds in rows.items():
            runs = " ".join(f"{s:.2f}" for s in seconds)
            print(f"{name:<16} {statistics.median(seconds):6.2f} s   runs {runs}")
        print(f"after publish wrote {incremental[-1][1]} files")
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
