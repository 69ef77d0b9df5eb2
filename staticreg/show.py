"""Text and JSON views of a tree for ``staticreg ls`` and ``staticreg inspect``."""

from __future__ import annotations

import json

from staticreg import catalog, paths, reference, tree
from staticreg import digest as digestmod
from staticreg.errors import InvalidReference, StoreError
from staticreg.model import JSON
from staticreg.store import Store


def human_size(size: int) -> str:
    """A size in decimal units, as registries and ``docker images`` show them."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def _record(store: Store, name: str) -> catalog.RepositoryRecord:
    record = catalog.read_repository(store, name)
    if record is None:
        raise InvalidReference(
            f"repository {name!r} is not in {store.url}",
            hint="'staticreg ls' lists the repositories",
        )
    return record


def ls(store: Store, name: str | None, as_json: bool) -> str:
    """Repositories with their tag counts, or one repository's tags."""
    layout = tree.read_layout(store, "list")
    if name is None:
        names = catalog.read_names(store, layout)
        records = [_record(store, n) for n in names]
        if as_json:
            return json.dumps(
                [{"name": r.name, "tags": sorted(r.tags)} for r in records], indent=2
            )
        rows = [["REPOSITORY", "TAGS"]] + [[r.name, str(len(r.tags))] for r in records]
        return _table(rows)
    record = _record(store, reference.validate_name(name))
    tags: list[JSON] = [
        {
            "tag": tag,
            "digest": e.digest,
            "mediaType": e.media_type,
            "size": record.blob_size(e.digest) + e.size,
            "platforms": _platforms(record, e.digest),
        }
        for tag, e in sorted(record.tags.items())
    ]
    if as_json:
        return json.dumps({"name": record.name, "tags": tags}, indent=2)
    rows = [["TAG", "DIGEST", "SIZE", "PLATFORM"]] + [
        [t["tag"], t["digest"], human_size(t["size"]), ",".join(t["platforms"])]
        for t in tags
    ]
    return _table(rows)


def _platforms(record: catalog.RepositoryRecord, manifest_digest: str) -> list[str]:
    return record.platforms(manifest_digest)


def _get(store: Store, key: str) -> bytes:
    try:
        return store.get(key)
    except KeyError:
        raise StoreError(
            f"cannot read {key!r} in {store.url}: it is missing",
            hint=f"run staticreg verify --root {store.url}",
        ) from None


def resolve(store: Store, text: str) -> tuple[reference.Reference, JSON]:
    """A published tag or digest, and its descriptor (mediaType, digest, size)."""
    tree.read_layout(store, "read")
    return _resolve(store, text)


def _resolve(store: Store, text: str) -> tuple[reference.Reference, JSON]:
    ref = reference.parse(text)
    record = _record(store, ref.repository)
    found = ref.digest or _tag_digest(record, ref)
    entry = record.manifests.get(str(found))
    if entry is None:
        raise InvalidReference(
            f"{text!r} is not in {store.url}",
            hint=f"'staticreg ls {ref.repository}' lists its tags",
        )
    return ref, {
        "mediaType": entry["mediaType"],
        "digest": str(found),
        "size": int(entry["size"]),
    }


def inspect(store: Store, text: str, as_json: bool) -> str:
    """Manifest, config summary and layers of a tag or digest; the platforms of
    an index; and the referrers (signatures, SBOMs) of either."""
    layout = tree.read_layout(store, "inspect")
    ref, desc = _resolve(store, text)
    record = _record(store, ref.repository)
    found = digestmod.parse(desc["digest"])
    manifest = json.loads(
        _get(store, layout.manifest(ref.repository, found, desc["mediaType"]))
    )
    summary = None
    if "config" in manifest and "layers" in manifest:
        config = json.loads(
            _get(store, paths.blob(digestmod.parse(manifest["config"]["digest"])))
        )
        summary = _config_summary(config) if "rootfs" in config else None
    attached = record.referrers.get(str(found), [])
    if as_json:
        return json.dumps(
            {
                "name": ref.repository,
                "digest": str(found),
                "mediaType": desc["mediaType"],
                "manifest": manifest,
                "config": summary,
                "platforms": record.platforms(str(found)),
                "referrers": attached,
            },
            indent=2,
        )
    if "manifests" in manifest:
        text_out = _index_text(ref.repository, found, desc, manifest)
    elif summary is not None:
        text_out = _inspect_text(ref.repository, found, desc, manifest, summary)
    else:
        text_out = _artifact_text(ref.repository, found, desc, manifest)
    return text_out + _referrers_text(attached)


def _index_text(name: str, found: digestmod.Digest, desc: JSON, manifest: JSON) -> str:
    lines = [
        f"Name:       {name}",
        f"Digest:     {found}",
        f"Media type: {desc['mediaType']}",
        "Platforms:",
    ]
    rows = [["  PLATFORM", "DIGEST", "SIZE"]]
    for child in manifest.get("manifests", []):
        label = _platform_label(child)
        rows.append([f"  {label}", child["digest"], human_size(child["size"])])
    return "\n".join(lines) + "\n" + _table(rows)


def _platform_label(child: JSON) -> str:
    annotations = child.get("annotations") or {}
    # buildx lists its attestations as platform unknown/unknown: no platform.
    if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
        return "(attestation)"
    platform = child.get("platform") or {}
    parts = (platform.get("os"), platform.get("architecture"), platform.get("variant"))
    return "/".join(x for x in parts if x) or "-"


def _artifact_text(
    name: str, found: digestmod.Digest, desc: JSON, manifest: JSON
) -> str:
    lines = [
        f"Name:          {name}",
        f"Digest:        {found}",
        f"Artifact type: {manifest.get('artifactType') or '-'}",
        f"Subject:       {(manifest.get('subject') or {}).get('digest', '-')}",
        "Blobs:",
    ]
    rows = [["  DIGEST", "SIZE", "MEDIA TYPE"]] + [
        [f"  {b['digest']}", human_size(b["size"]), b["mediaType"]]
        for b in manifest.get("layers", [])
    ]
    return "\n".join(lines) + "\n" + _table(rows)


def _referrers_text(attached: list[JSON]) -> str:
    if not attached:
        return ""
    rows = [["  DIGEST", "ARTIFACT TYPE", "SIZE"]] + [
        [f"  {d['digest']}", d.get("artifactType") or "-", human_size(d["size"])]
        for d in attached
    ]
    return "\nReferrers:\n" + _table(rows)


def _tag_digest(
    record: catalog.RepositoryRecord, ref: reference.Reference
) -> digestmod.Digest:
    tag = record.tags.get(ref.tag or "")
    if tag is None:
        raise InvalidReference(
            f"tag {ref.tag!r} is not in repository {record.name!r}",
            hint=f"its tags: {', '.join(sorted(record.tags)) or 'none'}",
        )
    return digestmod.parse(tag.digest)


def _config_summary(config: JSON) -> JSON:
    inner = config.get("config") or {}
    return {
        "created": config.get("created"),
        "platform": "/".join(
            x
            for x in (
                config.get("os"),
                config.get("architecture"),
                config.get("variant"),
            )
            if x
        ),
        "entrypoint": inner.get("Entrypoint"),
        "cmd": inner.get("Cmd"),
        "env": inner.get("Env") or [],
        "workingDir": inner.get("WorkingDir") or "",
        "user": inner.get("User") or "",
        "labels": inner.get("Labels") or {},
        "history": [
            {
                "created_by": h.get("created_by", ""),
                "empty_layer": bool(h.get("empty_layer")),
            }
            for h in config.get("history") or []
        ],
    }


def _inspect_text(
    name: str, found: digestmod.Digest, entry: JSON, manifest: JSON, summary: JSON
) -> str:
    """An image manifest: its config summary and layers."""
    lines = [
        f"Name:       {name}",
        f"Digest:     {found}",
        f"Media type: {entry['mediaType']}",
        f"Platform:   {summary['platform']}",
        f"Created:    {summary['created'] or '-'}",
        f"Entrypoint: {json.dumps(summary['entrypoint'])}",
        f"Cmd:        {json.dumps(summary['cmd'])}",
    ]
    lines += [f"Env:        {e}" for e in summary["env"]]
    lines += [f"Label:      {k}={v}" for k, v in sorted(summary["labels"].items())]
    lines.append(
        f"Config:     {manifest['config']['digest']}  "
        f"{human_size(manifest['config']['size'])}"
    )
    lines.append("Layers:")
    rows = [["  DIGEST", "SIZE", "MEDIA TYPE"]] + [
        [f"  {layer['digest']}", human_size(layer["size"]), layer["mediaType"]]
        for layer in manifest.get("layers", [])
    ]
    return "\n".join(lines) + "\n" + _table(rows)
