"""OCI 1.1 referrers: the static answer to ``GET /v2/<name>/referrers/<digest>``
and the ``sha256-<hex>`` fallback tag, kept in step with each other.

Both hold the same OCI index, listing every manifest whose ``subject`` is the
digest (https://github.com/opencontainers/distribution-spec/blob/main/spec.md
#listing-referrers). Filtering by ``artifactType`` is precomputed per type, under
the type's percent-encoded name, which is how clients send it in the query.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

from staticreg import mediatypes, paths
from staticreg.catalog import RepositoryRecord
from staticreg.digest import Digest
from staticreg.manifests import Built
from staticreg.model import JSON


def tag_name(subject: Digest) -> str:
    return f"{subject.algorithm}-{subject.hex}"


def type_key(artifact_type: str) -> str:
    """The file name for one artifactType: its percent-encoding, upper-case hex,
    as Go's url.QueryEscape and Python's quote write it."""
    return quote(artifact_type, safe="")


def empty_index() -> bytes:
    return _index_bytes([])


def _index_bytes(descriptors: Sequence[JSON]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": list(descriptors),
    }
    return json.dumps(doc, indent=2).encode()


def descriptor(node: Built) -> JSON:
    out = node.descriptor()
    if node.artifact_type:
        out["artifactType"] = node.artifact_type
    annotations = node.doc.get("annotations")
    if annotations:
        out["annotations"] = annotations
    return out


def add(record: RepositoryRecord, nodes: Sequence[Built]) -> list[Digest]:
    """Record new referrers; return the subjects whose lists changed."""
    changed = []
    for node in nodes:
        assert node.subject is not None, "a referrer has a subject"
        key = str(node.subject)
        listed = record.referrers.setdefault(key, [])
        if all(d["digest"] != str(node.digest) for d in listed):
            listed.append(descriptor(node))
            listed.sort(key=lambda d: d["digest"])
            changed.append(node.subject)
    return sorted(set(changed))


def files(
    layout: paths.Layout, name: str, subject: Digest, record: RepositoryRecord
) -> list[tuple[str, bytes]]:
    """The referrers answer for ``subject``, unfiltered and, where the layout's
    server can pick them, per artifactType."""
    listed = record.referrers.get(str(subject), [])
    out = [(layout.referrers(name, subject), _index_bytes(listed))]
    types = sorted({str(d["artifactType"]) for d in listed if d.get("artifactType")})
    for artifact_type in types if layout.filters_referrers else []:
        subset = [d for d in listed if d.get("artifactType") == artifact_type]
        key = layout.referrers_by_type(name, subject, type_key(artifact_type))
        if key is not None:
            out.append((key, _index_bytes(subset)))
    return out


def fallback_tag(record: RepositoryRecord, subject: Digest) -> Built:
    """The index the ``sha256-<hex>`` tag holds, for clients without the API."""
    return Built(
        _index_bytes(record.referrers.get(str(subject), [])), mediatypes.OCI_INDEX
    )


def filter_index(raw: bytes, artifact_type: str) -> bytes:
    """Keep the entries of one artifactType (``staticreg serve``'s filtering)."""
    doc = json.loads(raw)
    doc["manifests"] = [
        d for d in doc.get("manifests", []) if d.get("artifactType") == artifact_type
    ]
    return json.dumps(doc, indent=2).encode()
