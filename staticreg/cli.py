"""The ``staticreg`` command: flags in, results on stdout, messages on stderr."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from staticreg import __version__, paths, publish, sources, store, targets
from staticreg import digest as digestmod
from staticreg.errors import StaticregError
from staticreg.gen import cdn, nginx
from staticreg.pipeline import Plan

log = logging.getLogger("staticreg")
F = TypeVar("F", bound=Callable[..., Any])


def endpoint_option(func: F) -> F:
    """``--endpoint-url``, for every s3:// store the command opens."""
    return click.option(
        "--endpoint-url",
        envvar="STATICREG_ENDPOINT_URL",
        metavar="URL",
        expose_value=False,
        callback=_remember_endpoint,
        help="S3-compatible server for s3:// roots, e.g. http://127.0.0.1:9000 "
        "(env STATICREG_ENDPOINT_URL).",
    )(func)


def log_options(func: F) -> F:
    """``-v`` and ``-q``, taken before the command name or after it."""
    func = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_remember_log_flag,
        help="Log warnings and errors only.",
    )(func)
    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_remember_log_flag,
        help="Log every blob (debug).",
    )(func)


def _remember_log_flag(ctx: click.Context, param: click.Parameter, value: int) -> int:
    # The group's flags and the command's meet in the root context, so that
    # 'staticreg -q publish' and 'staticreg publish -q' mean the same.
    if value:
        ctx.find_root().meta[f"staticreg.{param.name}"] = value
        _setup_logging(ctx)
    return value


def root_option(func: F) -> F:
    """``--root``, ``--endpoint-url``, ``-v`` and ``-q``: options of every command."""
    func = log_options(endpoint_option(func))
    return click.option(
        "--root",
        envvar="STATICREG_ROOT",
        default="./registry",
        show_default=True,
        metavar="ROOT",
        help="The published tree: a directory or s3://BUCKET/PREFIX "
        "(env STATICREG_ROOT).",
    )(func)


def _remember_endpoint(
    ctx: click.Context, _: click.Parameter, value: str | None
) -> str | None:
    ctx.meta["staticreg.endpoint_url"] = value
    return value


def open_tree(root: str) -> store.Store:
    """The store at ROOT, with the command's --endpoint-url."""
    endpoint = click.get_current_context().meta.get("staticreg.endpoint_url")
    return store.open_store(root, endpoint)


def _setup_logging(ctx: click.Context) -> None:
    meta = ctx.find_root().meta
    quiet, verbose = meta.get("staticreg.quiet"), meta.get("staticreg.verbose")
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("staticreg")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


@contextmanager
def _errors() -> Iterator[None]:
    """Turn StaticregError into 'Error: ...' plus a hint, exit status 1."""
    try:
        yield
    except StaticregError as err:
        click.secho(f"Error: {err.message}", err=True, fg="red")
        if err.hint:
            click.secho(f"Hint: {err.hint}", err=True, fg="yellow")
        sys.exit(1)
    except OSError as err:
        # The machine refused (permissions, a full disk, a folder in the way):
        # no bug of ours, so no traceback; the file and the reason say it all.
        where = f"{err.filename}: " if err.filename else ""
        click.secho(f"Error: {where}{err.strerror or err}", err=True, fg="red")
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="staticreg")
@log_options
def cli() -> None:
    """Publish container images as a static registry that nginx, a CDN or any
    web server can serve to docker, podman, containerd and skopeo."""
    _setup_logging(click.get_current_context())


@cli.command("publish")
@root_option
@click.option(
    "--tag",
    "-t",
    "tags",
    multiple=True,
    metavar="NAME:TAG",
    help="Publish the image under this name instead of its recorded tags (repeatable).",
)
@click.option(
    "--compression",
    type=click.Choice(["auto", "gzip", "zstd", "none"]),
    default="auto",
    show_default=True,
    help="Layer compression; auto gzips uncompressed layers and keeps "
    "compressed ones as they are.",
)
@click.option(
    "--compression-level",
    type=int,
    default=None,
    help="gzip 0-3 (default 1), zstd 1-19 (default 3).",
)
@click.option(
    "--blob-copies",
    is_flag=True,
    help="For a new bucket tree: keys equal the URL paths and each repository "
    "gets its own copy of its blobs, so a plain bucket or caching proxy answers "
    "pulls with no CDN rewrite.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option(
    "--ref",
    metavar="REF",
    help="Pick the image of an OCI layout by ref name or digest (as INPUT:REF).",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    metavar="OS/ARCH[/VARIANT]",
    help="Publish only these platforms of a multi-platform index (repeatable).",
)
@click.argument(
    "inputs",
    nargs=-1,
    required=True,
    metavar="INPUT...",
    type=click.Path(dir_okay=True),
)
def publish_command(
    root: str,
    tags: tuple[str, ...],
    compression: str,
    compression_level: int | None,
    as_json: bool,
    ref: str | None,
    platforms: tuple[str, ...],
    blob_copies: bool,
    inputs: tuple[str, ...],
) -> None:
    """Publish docker save tarballs and OCI layouts (folders or tars; INPUT:REF
    picks one image of a layout) into the tree at ROOT."""
    from staticreg import progress

    with _errors():
        plan = Plan(compression, compression_level)
        plan.codec_for("none")  # validates the level before any input is read
        refs = targets.parse_tags(tags)
        read = [sources.read(path, ref, platforms) for path in inputs]
        for found in read if refs else []:
            found.check_single()
        pairs = targets.resolve([n for found in read for n in found.nodes], refs)
        extra = [(node, None) for found in read for node in found.referrers]
        tree = open_tree(root)
        try:
            with progress.reporter() as reporter:
                results = publish.publish(
                    tree,
                    pairs,
                    plan,
                    reporter,
                    extra_referrers=extra,
                    layout=_requested_layout(root, blob_copies),
                )
        finally:
            tree.close()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "repository": r.repository,
                        "tag": r.tag,
                        "digest": str(r.digest),
                        "mediaType": r.media_type,
                        "size": r.size,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        for result in results:
            click.echo(str(result))


@cli.command("attach")
@root_option
@click.option(
    "--subject",
    required=True,
    metavar="NAME:TAG",
    help="The published image the files are about (NAME:TAG or NAME@DIGEST).",
)
@click.option(
    "--artifact-type",
    required=True,
    metavar="TYPE",
    help="Media type saying what the files are, e.g. application/spdx+json.",
)
@click.option(
    "--media-type",
    default="application/octet-stream",
    show_default=True,
    help="Media type of each file.",
)
@click.option(
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Annotation of the artifact manifest (repeatable).",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def attach_command(
    root: str,
    subject: str,
    artifact_type: str,
    media_type: str,
    annotations: tuple[str, ...],
    files: tuple[str, ...],
) -> None:
    """Publish FILES (an SBOM, a signature, a report) as an OCI artifact that
    refers to an image, so clients find it through the referrers API."""
    from staticreg import attach, show

    with _errors():
        pairs = dict(_key_value(a) for a in annotations)
        tree = open_tree(root)
        try:
            ref, descriptor = show.resolve(tree, subject)
            artifact = attach.build(descriptor, artifact_type, files, media_type, pairs)
            publish.publish(tree, [], extra_referrers=[(artifact, [ref.repository])])
        finally:
            tree.close()
    found = digestmod.of_bytes(artifact.manifest)
    click.echo(f"{ref.repository}@{found}")


def _requested_layout(root: str, blob_copies: bool) -> str | None:
    if not blob_copies:
        return None
    if not root.startswith("s3://"):
        raise StaticregError(
            f"--blob-copies is for s3:// roots, not {root!r}",
            hint="a directory tree shares blobs through per-repository links",
        )
    return "bucket-blob-copies"


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise StaticregError(f"invalid --annotation {text!r}: expected KEY=VALUE")
    return key, value


@cli.command("nginx")
@root_option
@click.option(
    "--listen",
    required=True,
    metavar="HOST:PORT",
    help="Address nginx listens on, e.g. 127.0.0.1:5000 or 80.",
)
@click.option(
    "--server-name",
    default="_",
    show_default=True,
    help="server_name of the server block.",
)
@click.option(
    "--server-block",
    is_flag=True,
    help="Write only the server { } block, to include in an existing nginx.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of stdout.",
)
def nginx_command(
    root: str, listen: str, server_name: str, server_block: bool, output: str | None
) -> None:
    """Write an nginx config that serves the tree at ROOT."""
    with _errors():
        try:
            if server_block:
                text = nginx.render_server(root, listen, server_name)
            else:
                text = nginx.render_full(
                    root, listen, output or "nginx.conf", server_name
                )
        except ValueError as err:
            raise StaticregError(str(err)) from None
    for path in nginx.unreadable_for_workers(root):
        log.warning(
            "warning: %s is not readable by other users; nginx workers, "
            "which run as an unprivileged user, will answer 403 "
            "(fix with 'chmod o+rX')",
            path,
        )
    if output:
        with open(output, "w") as file:
            file.write(text)
        if server_block:
            log.info("wrote %s; include it in the http { } block of nginx", output)
        else:
            log.info("wrote %s; run it with: %s", output, nginx.run_command(output))
    else:
        click.echo(text, nl=False)


@cli.command("cdn")
@root_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, writable=True),
    metavar="DIR",
    help="Folder to write the functions, error responses and README into.",
)
@click.option(
    "--layout",
    type=click.Choice(cdn.LAYOUTS),
    default=None,
    help="The tree's layout, when ROOT is not a readable tree (default: ROOT's).",
)
@click.option(
    "--prefix",
    default=None,
    metavar="PREFIX",
    help="The tree's key prefix in its bucket, when ROOT does not give it.",
)
def cdn_command(root: str, output: str, layout: str | None, prefix: str | None) -> None:
    """Write CloudFront functions and settings that serve the S3 tree at ROOT."""
    source = click.get_current_context().get_parameter_source("root")
    with _errors():
        if source is click.core.ParameterSource.DEFAULT and layout is not None:
            # --layout alone describes a tree still to be published.
            settings, root_prefix = None, None
        else:
            settings, root_prefix = _cdn_tree(root, layout)
        files = cdn.render(cdn.choose(settings, root_prefix, layout, prefix))
        os.makedirs(output, exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(output, name), "w") as file:
                file.write(text)
    log.info(
        "wrote %s into %s; %s says how to set up CloudFront",
        ", ".join(files),
        output,
        os.path.join(output, "README.md"),
    )


def _cdn_tree(root: str, layout: str | None) -> tuple[Any, str | None]:
    """The settings of the tree at ROOT (None if it has none) and the key prefix
    its URL gives; with --layout, a tree that cannot be read is no error."""
    from staticreg import catalog

    root_prefix = None
    if root.startswith("s3://"):
        root_prefix = root.removeprefix("s3://").partition("/")[2].strip("/")
    try:
        tree = open_tree(root)
        try:
            return catalog.read_settings(tree), root_prefix
        finally:
            tree.close()
    except StaticregError as err:
        if layout is None:
            raise
        log.warning(
            "cannot read the tree at %s (%s); writing functions for --layout %s",
            root,
            err.message,
            layout,
        )
        return None, root_prefix


@cli.command("serve")
@root_option
@click.option(
    "--listen",
    default="127.0.0.1:5000",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to listen on.",
)
def serve_command(root: str, listen: str) -> None:
    """Serve the tree at ROOT over HTTP (for development; use nginx in production)."""
    with _errors():
        host, port = _split_listen(listen)
    _serve(root, host, port)


def _serve(root: str, host: str, port: int) -> None:
    from staticreg import server
    from staticreg import tree as treemod

    with _errors():
        tree = open_tree(root)
        layout = treemod.read_layout(tree, "serve")
        if layout is not paths.DIRECTORY:
            raise StaticregError(
                f"cannot serve {root!r}: staticreg serve answers from directory "
                f"trees, and this one has the {layout.name!r} layout",
                hint=f"copy it with 'staticreg sync {root} DIR' and serve DIR, or "
                "put a CDN in front of the bucket (staticreg cdn)",
            )
        try:
            httpd = server.serve(tree, host, port)
        except OSError as err:
            raise StaticregError(
                f"cannot listen on {host}:{port}: {err.strerror}",
                hint="pick another port with --listen HOST:PORT",
            ) from None
    log.info("serving %s on http://%s:%d/ (Ctrl-C to stop)", root, host, port)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


@cli.command("demo")
@root_option
@click.option(
    "--listen",
    default="127.0.0.1:5000",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on.",
)
@click.option("--no-serve", is_flag=True, help="Publish only; do not serve.")
def demo_command(root: str, listen: str, no_serve: bool) -> None:
    """Publish a built-in sample image into ROOT and serve it."""
    import tempfile

    from staticreg import sample

    with _errors(), tempfile.TemporaryDirectory() as work:
        tarball = os.path.join(work, "sample.tar")
        sample.write(tarball)
        tree = open_tree(root)
        try:
            pairs = targets.resolve(sources.read(tarball).nodes, [])
            results = publish.publish(tree, pairs)
        finally:
            tree.close()
    for result in results:
        click.echo(str(result))
    if no_serve:
        return
    host, port = _split_listen(listen)
    name = f"{host}:{port}/{results[0].repository}:{results[0].tag}"
    log.info(
        "pull it with any of:\n  docker pull %s\n  podman pull --tls-verify=false "
        "%s\n  ctr images pull --plain-http %s\n  skopeo copy "
        "--src-tls-verify=false docker://%s oci:hello:latest",
        name,
        name,
        name,
        name,
    )
    _serve(root, host, port)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise StaticregError(
            f"invalid --listen {listen!r}: expected HOST:PORT such as 127.0.0.1:5000"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


@cli.command("ls")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.argument("name", required=False)
def ls_command(root: str, as_json: bool, name: str | None) -> None:
    """List repositories, or the tags of repository NAME."""
    from staticreg import show

    with _errors():
        tree = open_tree(root)
        text = show.ls(tree, name, as_json)
    click.echo(text)


@cli.command("inspect")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.argument("ref", metavar="NAME:TAG")
def inspect_command(root: str, as_json: bool, ref: str) -> None:
    """Show the manifest, config summary and layers of NAME:TAG or NAME@DIGEST."""
    from staticreg import show

    with _errors():
        tree = open_tree(root)
        text = show.inspect(tree, ref, as_json)
    click.echo(text)


@cli.command("index")
@root_option
@click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="Registry address the pages' pull commands show (default: the address "
    "each page is loaded from); kept for later publishes, '' forgets it.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Trust nothing the last run left: read every record and blob and make "
    "every file again (after damage by hand); by default every repository whose "
    "record, host or templates changed is redone.",
)
def index_command(root: str, base_url: str | None, force: bool) -> None:
    """Bring the browse site, its JSON files and the docker search answers up to
    date with every repository of the tree."""
    from staticreg import tree as treemod
    from staticreg.gen import site

    with _errors():
        tree = open_tree(root)
        try:
            layout = treemod.read_layout(tree, "index")
            with tree.lock():
                report = site.regenerate(tree, None, base_url, layout, force=force)
            log.info("%s", report)
        finally:
            tree.close()


@cli.command("search")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.argument("term")
def search_command(root: str, as_json: bool, term: str) -> None:
    """List repositories whose name or description contains TERM (any case)."""
    from staticreg import search

    with _errors():
        tree = open_tree(root)
        text = search.render(search.find(tree, term), as_json)
    if text:
        click.echo(text)
    else:
        log.info("no repository matches %r", term)


@cli.command("sync")
@endpoint_option
@log_options
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would change ('+ KEY', '- KEY'); write nothing.",
)
@click.option(
    "--delete",
    is_flag=True,
    help="Remove from DST what SRC no longer has, once the new pointers "
    "are in place (unreferenced blobs last).",
)
@click.option(
    "--blob-copies",
    is_flag=True,
    help="For a new bucket DST: the bucket-blob-copies layout, as "
    "publish --blob-copies.",
)
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
def sync_command(
    src: str, dst: str, dry_run: bool, delete: bool, blob_copies: bool
) -> None:
    """Copy the tree at SRC to DST, each a directory or s3://BUCKET/PREFIX,
    writing only what changed, in the layout DST needs."""
    from staticreg import sync

    with _errors():
        _requested_layout(dst, blob_copies)
        source, dest = open_tree(src), open_tree(dst)
        try:
            report = sync.sync(
                source, dest, dry_run=dry_run, delete=delete, blob_copies=blob_copies
            )
        finally:
            source.close()
            dest.close()
    if dry_run:
        for change in report.changes:
            click.echo(change)


@cli.command("verify")
@root_option
@click.option(
    "--fix",
    is_flag=True,
    help="Rebuild the files derived from the records (tag objects, tags "
    "lists, referrers answers, fallback tags, blob links, catalog); "
    "missing blobs stay missing.",
)
def verify_command(root: str, fix: bool) -> None:
    """Check every blob, manifest, tag and listing of the tree at ROOT; print one
    line per problem and exit 1 if there is any."""
    from staticreg import verify

    with _errors():
        tree = open_tree(root)
        try:
            report = verify.verify(tree, fix)
        finally:
            tree.close()
    for problem in report.fixed:
        click.echo(f"{problem} (fixed)")
    for problem in report.problems:
        click.echo(str(problem))
    log.info(
        "verified %d blobs and %d repositories in %s: %d problems left",
        report.blobs,
        report.repositories,
        root,
        len(report.problems),
    )
    if report.problems:
        fixable = sum(1 for problem in report.problems if problem.fixable)
        if fixable and not fix:
            log.info("staticreg verify --fix rebuilds %d of them", fixable)
        sys.exit(1)


def main() -> None:
    try:
        cli.main(prog_name="staticreg", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except BrokenPipeError:
        sys.exit(1)
