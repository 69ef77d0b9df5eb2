"""What one regeneration of the site leaves for the next, under ``.staticreg/site/``.

A record names its manifests by digest and a manifest its config by digest, so a
record's bytes decide all the site shows of a repository. ``state.json`` keeps,
per repository, the digest of the record its index entry was made from and the
fingerprint of its page's inputs (that digest, the registry host, the templates):
a rebuild renders only the pages whose fingerprint changed or that are missing,
and trusts the others to hold what was written. It also keeps the digest of the
search JSON the docker search answers were made for. Each repository's summary
is kept too, under its record's digest, so that a page can be made again (a new
``--base-url``, new templates) without reading the repository's blobs.

Everything here is a cache: missing, damaged or written by another staticreg, it
is ignored and the site is made again from the records and blobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from staticreg import paths
from staticreg.gen import indexjson, summary
from staticreg.gen.summary import Image, Layer, Manifest, Referrer, Repository, Step
from staticreg.model import JSON
from staticreg.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fingerprint:
    """A repository's record digest, and its page's (None: made from a record
    with missing blobs, so to be made again)."""

    record: str
    page: str | None


@dataclass
class State:
    repositories: dict[str, Fingerprint]
    # The digest of the search JSON the answer files were last made for.
    search: str | None = None
    # The fingerprint of the page templates the site was last made with.
    templates: str | None = None


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def page_fingerprint(record: str, host: str, templates: str) -> str:
    return digest_of(f"{record}\n{host}\n{templates}".encode())


def parse(raw: bytes | None) -> State:
    """The state the previous regeneration left, from the bytes at
    ``paths.SITE_STATE`` (None: there are none); empty when unusable."""
    if raw is None:
        return State({})
    try:
        doc = json.loads(raw)
        if doc.get("generator") != indexjson.GENERATOR:
            return State({})
        found = {
            str(name): Fingerprint(str(record), None if page is None else str(page))
            for name, (record, page) in doc["repositories"].items()
        }
        search, templates = doc.get("search"), doc.get("templates")
        return State(
            found, str(search) if search else None, str(templates or "") or None
        )
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        log.debug("ignoring the site's damaged state: %s", err)
        return State({})


def render(state: State) -> bytes:
    doc = {
        "generator": indexjson.GENERATOR,
        "search": state.search,
        "templates": state.templates,
        "repositories": {
            name: [fp.record, fp.page]
            for name, fp in sorted(state.repositories.items())
        },
    }
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


# Summaries -----------------------------------------------------------------------


class Summaries:
    """The cached summaries, a file of them read when first needed and written
    back by ``save`` when changed. A file holds a header line, then one line per
    repository: name, record digest and summary JSON, separated by tabs (JSON
    escapes every tab and line feed it holds)."""

    def __init__(self, store: Store, trusted: bool = True) -> None:
        self.store = store
        self.trusted = trusted
        self._files: dict[str, dict[str, str]] = {}
        self._changed: set[str] = set()

    def get(self, name: str, record: str) -> Repository | None:
        """The summary of ``name`` made from the record of digest ``record``
        (never, when the cache is not ``trusted``)."""
        if not self.trusted:
            return None
        found = self._lines(name).get(name)
        if found is None:
            return None
        digest, _, text = found.partition("\t")
        if digest != record:
            return None
        try:
            return _repository(json.loads(text))
        except (ValueError, TypeError, KeyError, IndexError) as err:
            log.debug("ignoring the site's damaged summary of %s: %s", name, err)
            return None

    def put(self, name: str, record: str, repo: Repository) -> None:
        doc = json.dumps(_repository_doc(repo), separators=(",", ":"))
        self._lines(name)[name] = f"{record}\t{doc}"
        self._changed.add(paths.site_summaries(name))

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            if self._lines(name).pop(name, None) is not None:
                self._changed.add(paths.site_summaries(name))

    def save(self) -> None:
        for key in sorted(self._changed):
            lines = self._files[key]
            if not lines:
                self.store.delete(key)
                continue
            body = [indexjson.GENERATOR] + [f"{n}\t{lines[n]}" for n in sorted(lines)]
            self.store.put(key, ("\n".join(body) + "\n").encode())
        self._changed.clear()

    def _lines(self, name: str) -> dict[str, str]:
        key = paths.site_summaries(name)
        if key not in self._files:
            self._files[key] = self._read(key)
        return self._files[key]

    def _read(self, key: str) -> dict[str, str]:
        try:
            lines = self.store.get(key).decode().split("\n")
        except (KeyError, UnicodeDecodeError):
            return {}
        if lines[0] != indexjson.GENERATOR:
            return {}
        found = {}
        for line in lines[1:]:
            name, tab, rest = line.partition("\t")
            if tab:
                found[name] = rest
        return found


def _repository_doc(repo: Repository) -> JSON:
    manifests = {t.manifest.digest: _manifest_doc(t.manifest) for t in repo.tags}
    return {
        "name": repo.name,
        "tags": [[t.name, t.manifest.digest] for t in repo.tags],
        "manifests": manifests,
    }


def _manifest_doc(manifest: Manifest) -> JSON:
    return {
        "mediaType": manifest.media_type,
        "size": manifest.size,
        "annotations": manifest.annotations,
        "images": [_image_doc(image) for image in manifest.images],
        "referrers": [list(r) for r in _referrer_rows(manifest.referrers)],
    }


def _referrer_rows(referrers: tuple[Referrer, ...]) -> list[tuple[object, ...]]:
    return [
        (r.digest, r.artifact_type, r.media_type, r.size, r.annotations)
        for r in referrers
    ]


def _image_doc(image: Image) -> JSON:
    # A step's layer is one of the image's layers, in order: keep its position.
    positions = {id(layer): n for n, layer in enumerate(image.layers)}
    return {
        "digest": image.digest,
        "mediaType": image.media_type,
        "platform": image.platform,
        "size": image.size,
        "created": image.created,
        "labels": image.labels,
        "layers": [list(layer) for layer in image.layers],
        "history": [
            [s.created_by, s.created, positions.get(id(s.layer), -1)]
            for s in image.history
        ],
        "artifactType": image.artifact_type,
        "config": list(image.config) if image.config else None,
    }


def _repository(doc: JSON) -> Repository:
    manifests = {
        digest: _manifest(digest, entry) for digest, entry in doc["manifests"].items()
    }
    tags = tuple(summary.Tag(tag, manifests[digest]) for tag, digest in doc["tags"])
    return Repository(str(doc["name"]), tags)


def _manifest(digest: str, doc: JSON) -> Manifest:
    return Manifest(
        digest,
        doc["mediaType"],
        int(doc["size"]),
        tuple(_image(image) for image in doc["images"]),
        _strings(doc["annotations"]),
        tuple(
            Referrer(d, artifact, media_type, int(size), _strings(annotations))
            for d, artifact, media_type, size, annotations in doc["referrers"]
        ),
    )


def _image(doc: JSON) -> Image:
    layers = tuple(Layer(d, int(size), t) for d, size, t in doc["layers"])
    history = tuple(
        Step(created_by, created, layers[n] if n >= 0 else None)
        for created_by, created, n in doc["history"]
    )
    config = doc["config"]
    return Image(
        doc["digest"],
        doc["mediaType"],
        doc["platform"],
        int(doc["size"]),
        doc["created"],
        _strings(doc["labels"]),
        layers,
        history,
        doc["artifactType"],
        Layer(config[0], int(config[1]), config[2]) if config else None,
    )


def _strings(value: Mapping[str, object]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}
