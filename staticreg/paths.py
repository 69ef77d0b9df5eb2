"""The published tree: every key staticreg writes, and the URL each one answers.

A tree is a set of keys (POSIX paths relative to the store root). The directory
store keeps them as files; nginx (``gen/nginx.py``) and ``staticreg serve`` map the
pull API onto them. Keys hold no ':' so that a tree can be copied to any
filesystem. Repository names cannot start with '_' (see ``reference.py``), so the
'_' entries inside a repository's folder never collide with a nested repository.

    staticreg.json                              tree format version and settings
    v2/index.json                               GET /v2/  (an empty JSON object)
    v2/_catalog.json                            GET /v2/_catalog
    v2/_empty.oci-index                         the referrers answer for a digest
                                                nothing refers to (200, never 404)
    blobs/sha256/<hex>                          every blob once, shared by all
                                                repositories: layers, configs and
                                                manifests
    repositories/<name>/
        _repository.json                        the repository's own record: tags,
                                                manifests and the blobs each uses;
                                                the authority every listing is
                                                derived from
        _tags.json                              GET /v2/<name>/tags/list
        _manifests/sha256/<hex>.<ext>           GET /v2/<name>/manifests/sha256:<hex>
        _tags/<tag>.<ext>                       GET /v2/<name>/manifests/<tag>
                                                (a full copy of the manifest, never
                                                a pointer: a static server cannot
                                                follow one)
        _referrers/sha256/<hex>.oci-index       GET /v2/<name>/referrers/sha256:<hex>
        _referrers/sha256/<hex>/<type>.oci-index  the same, filtered by one
                                                artifactType (percent-encoded)
        _blobs/sha256/<hex>                     empty link: GET /v2/<name>/blobs/
                                                sha256:<hex> is served from blobs/
                                                only while this link exists, as the
                                                distribution registry does
    v1/_ping.json                               GET /v1/_ping  (docker search)
    v1/search/<term>.json                       GET /v1/search?q=<term>: results
                                                precomputed for every lower-case
                                                prefix of 2 or more characters of
                                                names, their path parts and
                                                description words; '/' is written
                                                '~', which no name or word holds
    site/                                       the browse site, served at /; every
        index.html                              link in it is relative, so it also
        page/<n>/index.html                     works from a bucket or a folder
        r/<name>/index.html                     one repository's page
        assets/site.css, assets/site.js         copied from the package's site/
        index.json                              every repository with its tags,
                                                digests, platforms, sizes, labels
        search.json                             names and descriptions, fetched by
                                                the home page's search box
    .staticreg/                                 private to the publisher, never
        lock                                    served: the writers' lock, staging
        tmp/<writer>/...                        area and the layer map that lets a
        layers/<diff-hex>.<settings>            republish skip compression
        site.json                               the site's settings (--base-url)
        site/state.json                         what the site was last made from:
                                                each repository's record digest
                                                and page fingerprint (gen/state.py)
        site/pending.json                       the repositories a publish changed
                                                whose site update has not finished
        site/summaries/<xx>.txt                 what the site shows of repositories
                                                (by the first two hex digits of their
                                                name's sha256), so that a page can be
                                                made again without reading blobs

``<ext>`` encodes the manifest's media type (``MANIFEST_EXTENSIONS``), because a
static server derives ``Content-Type`` from a file's extension alone, and every
client requires the exact media type.
"""

from __future__ import annotations

import hashlib

from staticreg import mediatypes
from staticreg.digest import Digest

FORMAT_VERSION = 1
SETTINGS = "staticreg.json"
API_ROOT = "v2/index.json"
EMPTY_REFERRERS = "v2/_empty.oci-index"
CATALOG = "v2/_catalog.json"
PRIVATE = ".staticreg"
LOCK = f"{PRIVATE}/lock"
TMP = f"{PRIVATE}/tmp"

MANIFEST_EXTENSIONS = {
    mediatypes.OCI_MANIFEST: "oci-manifest",
    mediatypes.OCI_INDEX: "oci-index",
    mediatypes.DOCKER_MANIFEST: "docker-manifest",
    mediatypes.DOCKER_LIST: "docker-list",
}
MEDIA_TYPES = {ext: media_type for media_type, ext in MANIFEST_EXTENSIONS.items()}


def blob(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def repository(name: str) -> str:
    return f"repositories/{name}"


def repository_record(name: str) -> str:
    return f"{repository(name)}/_repository.json"


def tags_list(name: str) -> str:
    return f"{repository(name)}/_tags.json"


def manifest(name: str, digest: Digest, media_type: str) -> str:
    ext = MANIFEST_EXTENSIONS[media_type]
    return f"{repository(name)}/_manifests/{digest.algorithm}/{digest.hex}.{ext}"


def tag(name: str, tag: str, media_type: str) -> str:
    return f"{repository(name)}/_tags/{tag}.{MANIFEST_EXTENSIONS[media_type]}"


def tag_candidates(name: str, tag_name: str) -> list[str]:
    """Every key a tag may be stored at, one per manifest media type."""
    return [tag(name, tag_name, media_type) for media_type in MANIFEST_EXTENSIONS]


def manifest_candidates(name: str, digest: Digest) -> list[str]:
    return [manifest(name, digest, media_type) for media_type in MANIFEST_EXTENSIONS]


def blob_link(name: str, digest: Digest) -> str:
    return f"{repository(name)}/_blobs/{digest.algorithm}/{digest.hex}"


def referrers(name: str, subject: Digest) -> str:
    return f"{repository(name)}/_referrers/{subject.algorithm}/{subject.hex}.oci-index"


def referrers_by_type(name: str, subject: Digest, type_key: str) -> str:
    base = f"{repository(name)}/_referrers/{subject.algorithm}/{subject.hex}"
    return f"{base}/{type_key}.oci-index"


def layer_map(diff_id: Digest, settings_id: str) -> str:
    return f"{PRIVATE}/layers/{diff_id.hex}.{settings_id}"


# The browse site and docker search (gen/indexjson.py, gen/site.py).
PING = "v1/_ping.json"
SEARCH_RESULTS = "v1/search"
SITE = "site"
SITE_ASSETS = f"{SITE}/assets"
INDEX_JSON = f"{SITE}/index.json"
SEARCH_JSON = f"{SITE}/search.json"
SITE_SETTINGS = f"{PRIVATE}/site.json"
SITE_STATE = f"{PRIVATE}/site/state.json"
SITE_SUMMARIES = f"{PRIVATE}/site/summaries"
SITE_PENDING = f"{PRIVATE}/site/pending.json"


def search_result(term: str) -> str:
    """The answer to ``GET /v1/search?q=<term>``, for a lower-case term."""
    return f"{SEARCH_RESULTS}/{term.replace('/', '~')}.json"


def site_home(page: int) -> str:
    return f"{SITE}/index.html" if page == 1 else f"{SITE}/page/{page}/index.html"


def site_repository(name: str) -> str:
    return f"{SITE}/r/{name}/index.html"


def site_summaries(name: str) -> str:
    """The file of the site's summaries that holds ``name``'s: one of 256, so that
    a rebuild writes a few hundred files rather than one per repository."""
    shard = hashlib.sha256(name.encode()).hexdigest()[:2]
    return f"{SITE_SUMMARIES}/{shard}.txt"


def media_type_of(key: str) -> str | None:
    """The manifest media type a key's extension records, if it has one."""
    return MEDIA_TYPES.get(key.rpartition(".")[2])


# Layouts ---------------------------------------------------------------------------
#
# A directory tree uses the keys above, whose extensions nginx turns into
# Content-Type. In a bucket, every object carries its Content-Type itself, so keys
# drop the extension, and there are two layouts:
#
#   bucket              the keys above without extensions; blobs once under
#                       blobs/; a CDN function maps URLs to keys (staticreg cdn)
#   bucket-blob-copies  keys equal the URL paths (v2/<name>/manifests/<tag>,
#                       v2/<name>/blobs/sha256:<hex>, ...), each blob copied
#                       server-side into every repository that uses it from
#                       blobs/sha256/<hex>, so a plain bucket or any caching proxy
#                       answers pulls with no rewrite at all
#
# Repository records, settings and the private folder keep the same keys in every
# layout.


class Layout:
    """Where a tree of one layout keeps each kind of object."""

    name = "directory"
    copies_blobs = False
    # nginx can pick a precomputed artifactType answer; a CDN function cannot.
    filters_referrers = True
    api_root = API_ROOT
    catalog = CATALOG
    empty_referrers: str | None = EMPTY_REFERRERS
    error_page: str | None = None

    def blob(self, digest: Digest) -> str:
        return blob(digest)

    def manifest(self, name: str, digest: Digest, media_type: str) -> str:
        return manifest(name, digest, media_type)

    def manifest_candidates(self, name: str, digest: Digest) -> list[str]:
        return manifest_candidates(name, digest)

    def tag(self, name: str, tag_name: str, media_type: str) -> str:
        return tag(name, tag_name, media_type)

    def tag_candidates(self, name: str, tag_name: str) -> list[str]:
        return tag_candidates(name, tag_name)

    def tags_list(self, name: str) -> str:
        return tags_list(name)

    def blob_link(self, name: str, digest: Digest) -> str:
        """The key that makes a blob answer under a repository."""
        return blob_link(name, digest)

    def referrers(self, name: str, subject: Digest) -> str:
        return referrers(name, subject)

    def referrers_by_type(self, name: str, subject: Digest, key: str) -> str | None:
        return referrers_by_type(name, subject, key)


class BucketLayout(Layout):
    name = "bucket"
    filters_referrers = False
    empty_referrers = None
    # The JSON body a CDN answers missing keys with (see gen/cdn.py).
    error_page: str | None = "errors/not-found.json"

    def manifest(self, name: str, digest: Digest, media_type: str) -> str:
        return f"{repository(name)}/_manifests/{digest.algorithm}/{digest.hex}"

    def manifest_candidates(self, name: str, digest: Digest) -> list[str]:
        return [self.manifest(name, digest, "")]

    def tag(self, name: str, tag_name: str, media_type: str) -> str:
        return f"{repository(name)}/_tags/{tag_name}"

    def tag_candidates(self, name: str, tag_name: str) -> list[str]:
        return [self.tag(name, tag_name, "")]

    def referrers(self, name: str, subject: Digest) -> str:
        return f"{repository(name)}/_referrers/{subject.algorithm}/{subject.hex}"

    def referrers_by_type(self, name: str, subject: Digest, key: str) -> str | None:
        return None


class BlobCopiesLayout(BucketLayout):
    name = "bucket-blob-copies"
    copies_blobs = True
    api_root = "v2/"
    catalog = "v2/_catalog"

    def manifest(self, name: str, digest: Digest, media_type: str) -> str:
        return f"v2/{name}/manifests/{digest}"

    def tag(self, name: str, tag_name: str, media_type: str) -> str:
        return f"v2/{name}/manifests/{tag_name}"

    def tags_list(self, name: str) -> str:
        return f"v2/{name}/tags/list"

    def blob_link(self, name: str, digest: Digest) -> str:
        return f"v2/{name}/blobs/{digest}"

    def referrers(self, name: str, subject: Digest) -> str:
        return f"v2/{name}/referrers/{subject}"


LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (Layout(), BucketLayout(), BlobCopiesLayout())
}
DIRECTORY = LAYOUTS["directory"]


def layout_named(name: object) -> Layout:
    found = LAYOUTS.get(str(name))
    if found is None:
        raise ValueError(
            f"unknown tree layout {name!r}: expected one of {', '.join(LAYOUTS)}"
        )
    return found
