"""Real registry servers and clients, started and stopped by the tests themselves.

Each component listens on 127.0.0.1 with its state under a folder the caller gives
(no systemd; only skopeo's and podman's blob-info cache stays in /var/lib/containers,
which containers/image fixes for root), is ready when its `with` block begins, and
is stopped by PID when it ends. Every wait is bounded; every failure names the
binary and shows the tail of its log. A missing binary names the Debian package to
install: these tests fail loudly rather than skip.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from . import images

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
COMMAND_TIMEOUT = 180.0

# The Debian package shipping each binary, named when the binary is missing.
PACKAGES = {
    "containerd": "containerd",
    "ctr": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "runc": "runc",
    "dockerd": "docker.io",
    "docker": "docker.io",
    "nginx": "nginx",
    "podman": "podman",
    "skopeo": "skopeo",
    "docker-registry": "docker-registry",
    "umount": "mount",
}

# Policy for skopeo: the harness must not depend on /etc/containers/policy.json,
# which a fresh machine may lack.
INSECURE_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


class HarnessError(RuntimeError):
    """A real component could not be started, driven or stopped."""


# --- small utilities ------------------------------------------------------------


def require(binary: str) -> str:
    """Return the path of `binary`, or fail naming the Debian package to install."""
    path = shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        package = PACKAGES.get(binary, binary)
        msg = f"{binary} not found on PATH: apt-get install {package}"
        raise HarnessError(msg)
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
        return True
    return False


def log_tail(path: Path | None, lines: int = 40) -> str:
    """The last lines of a log file, for error messages."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(text) or "(empty log)"


def _short(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def run(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
    check: bool = True,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a client command with a bounded time; with `check`, fail on non-zero."""
    try:
        result = subprocess.run(
            argv,
            env=None if env is None else dict(env),
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        msg = f"{argv[0]} did not finish within {timeout:.0f}s: {' '.join(argv)}"
        raise HarnessError(msg) from err
    if check and result.returncode != 0:
        msg = (
            f"{' '.join(argv)} exited {result.returncode}\n"
            f"stdout: {_short(result.stdout.decode(errors='replace'))}\n"
            f"stderr: {_short(result.stderr.decode(errors='replace'))}"
        )
        raise HarnessError(msg)
    return result


def text(result: subprocess.CompletedProcess[bytes]) -> str:
    """The stdout of a finished command, decoded."""
    return result.stdout.decode(errors="replace")


def http_get(
    url: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    method: str = "GET",
) -> tuple[int, dict[str, str], bytes]:
    """Send one request; return status, headers and body, also for error statuses.

    Ask for manifests with an `Accept` header: without one, distribution 2.8
    answers with a schema1 manifest converted on the fly, under another digest.
    """
    request = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


# --- processes ----------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie counts as gone."""
    try:
        proc_stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return proc_stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _signal(pid: int, sig: signal.Signals, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_pid(
    pid: int, sig: signal.Signals = signal.SIGTERM, group: bool = False
) -> None:
    """Send `sig`, wait a bounded time, then SIGKILL what is left."""
    _signal(pid, sig, group)
    if not wait_gone(pid, STOP_TIMEOUT):
        _signal(pid, signal.SIGKILL, group)
        wait_gone(pid, 5.0)


def processes() -> Iterator[tuple[int, int, list[str]]]:
    """Yield (pid, parent pid, argv) for every process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            proc_stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(proc_stat.rsplit(")", 1)[1].split()[1])
        yield int(entry.name), ppid, [arg.decode(errors="replace") for arg in argv]


def shim_pids(address: str, namespace: str | None = None) -> list[int]:
    """PIDs of the containerd shims serving the containerd at `address`.

    Shims run in their own process group, so stopping containerd leaves them
    behind; they are found by the unique socket path on their command line.
    """
    pids = []
    for pid, _, argv in processes():
        if not argv or "containerd-shim" not in Path(argv[0]).name:
            continue
        if _flag(argv, "-address") != address:
            continue
        if namespace is None or _flag(argv, "-namespace") == namespace:
            pids.append(pid)
    return pids


def _flag(argv: list[str], name: str) -> str | None:
    for flag, value in itertools.pairwise(argv):
        if flag == name:
            return value
    return None


def stop_shims(address: str, namespace: str | None = None) -> None:
    """Kill the shims of one containerd and the container processes under them."""
    shims = set(shim_pids(address, namespace))
    children = [pid for pid, ppid, _ in processes() if ppid in shims]
    for pid in [*children, *shims]:
        _signal(pid, signal.SIGKILL)
    for pid in [*children, *shims]:
        wait_gone(pid, 5.0)


def unmount_under(root: Path) -> None:
    """Lazily unmount whatever a daemon left mounted under `root`, deepest first."""
    prefix = str(root.resolve()) + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces and the like octal-escaped.
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        run([require("umount"), "--lazy", point], check=False, timeout=30)


# --- daemon base ----------------------------------------------------------------

_RUNNING: set[Daemon] = set()


@atexit.register
def _stop_all() -> None:
    # A safety net for interpreter exits that skip fixture teardown.
    for daemon in list(_RUNNING):
        with contextlib.suppress(Exception):
            daemon.stop()


class Daemon:
    """A long-running component: started on `__enter__`, stopped on `__exit__`."""

    binary = ""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / f"{self.binary}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start_timeout = START_TIMEOUT
        self.startup_seconds = 0.0

    def __enter__(self) -> Self:
        started = time.monotonic()
        _RUNNING.add(self)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the process group; subclasses also clean what it leaves behind."""
        _RUNNING.discard(self)
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, signal.SIGTERM, group=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self.process = None

    def spawn(self, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        """Start the daemon in its own session, its output going to the log."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
            )

    def failure(self, what: str) -> HarnessError:
        msg = f"{self.binary}: {what}\n--- tail of {self.log_path} ---\n"
        return HarnessError(msg + log_tail(self.log_path))

    def wait_ready(self, ready: Callable[[], bool], what: str) -> None:
        """Poll `ready` until it holds, the process dies, or start_timeout passes."""
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise self.failure(f"exited with {code} before {what}")
            if time.monotonic() > deadline:
                raise self.failure(f"not {what} after {self.start_timeout:.0f}s")
            time.sleep(0.1)


def allow_traversal(path: Path) -> None:
    """Let any user search `path` and its ancestors (adds o+x, never o+r).

    nginx workers run as `nobody`, and pytest's temporary folders are 0700, so a
    tree published under `tmp_path` would answer 403 everywhere.
    """
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _short_socket(path: Path) -> Path:
    # A unix socket path must fit in sun_path (108 bytes); containerd also adds
    # ".ttrpc" to its own.
    if len(str(path)) > 90:
        raise HarnessError(f"socket path too long for a unix socket: {path}")
    return path


def _write_json(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")
    return path


# --- nginx ----------------------------------------------------------------------


def _directive(conf: str, name: str) -> str | None:
    """The value of the first `name` directive; comments may mention any name."""
    code = re.sub(r"#[^\n]*", "", conf)
    match = re.search(rf"(?:^|[\s{{;}}]){name}\s+([^;]+);", code)
    return match.group(1).strip() if match else None


def _nginx_argv(conf: Path, prefix: Path, error_log: Path) -> list[str]:
    # -e keeps start-up errors out of /var/log/nginx, which may not exist.
    nginx = require("nginx")
    return [nginx, "-c", str(conf), "-p", f"{prefix}/", "-e", str(error_log)]


class Nginx(Daemon):
    """nginx with a generated config; it daemonizes, so it is tracked by pid file.

    The pid file is the `pid` directive of the config (relative to `prefix`) unless
    `pid_path` is given; the port is the first `listen` directive unless `port` is.
    """

    binary = "nginx"

    def __init__(
        self,
        conf: Path,
        prefix: Path,
        *,
        port: int | None = None,
        pid_path: Path | None = None,
    ) -> None:
        self.conf = conf.resolve()
        self.prefix = prefix.resolve()
        text = self.conf.read_text()
        self.port = port or self._listen_port(text)
        self.pid_path = pid_path or self._pid_path(text)
        self.pid: int | None = None
        # Its own log lives outside the prefix, which may be the published tree.
        super().__init__(Path(tempfile.mkdtemp(prefix="harness-nginx-")))

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _listen_port(self, conf: str) -> int:
        listen = _directive(conf, "listen")
        match = re.search(r"(?:^|:)(\d+)(?:\s|$)", listen or "")
        if match is None:
            raise HarnessError(f"nginx: no listen port in {self.conf}; pass port=")
        return int(match.group(1))

    def _pid_path(self, conf: str) -> Path:
        pid = _directive(conf, "pid")
        if pid is None:
            msg = f"nginx: {self.conf} has no pid directive (nginx would use /run)"
            raise HarnessError(msg + "; add one or pass pid_path=")
        return self.prefix / pid

    def start(self) -> None:
        self._remove_stale_pid()
        allow_traversal(self.prefix)
        result = run(
            _nginx_argv(self.conf, self.prefix, self.log_path), timeout=30, check=False
        )
        if result.returncode != 0:
            output = result.stderr.decode(errors="replace")
            raise self.failure(f"exited {result.returncode}: {output}")
        self.wait_ready(self._pid_written, "writing its pid file")
        self.wait_ready(lambda: port_open(self.port), f"listening on {self.port}")

    def _remove_stale_pid(self) -> None:
        # A pid file left by an earlier run would be read as ours at once.
        with contextlib.suppress(OSError, ValueError):
            old = int(self.pid_path.read_text().strip())
            if pid_alive(old):
                msg = f"nginx: {self.pid_path} names running pid {old}"
                raise HarnessError(msg + "; another nginx uses this prefix")
        self.pid_path.unlink(missing_ok=True)

    def _pid_written(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            self.pid = int(self.pid_path.read_text().strip())
        return self.pid is not None

    def reload(self) -> None:
        """Ask the master to re-read its config; workers restart asynchronously."""
        if self.pid is not None:
            _signal(self.pid, signal.SIGHUP)

    def masters(self) -> set[int]:
        """PIDs of the nginx masters this object started.

        Found by the unique `-e` log path on their command line, so a master is
        stopped even when its pid file is not where the config seemed to say.
        """
        log = str(self.log_path)
        return {pid for pid, _, argv in processes() if log in " ".join(argv)}

    def stop(self) -> None:
        # QUIT lets workers finish their requests; the master then removes its pid.
        super().stop()
        pids = self.masters() | ({self.pid} if self.pid is not None else set())
        for pid in pids:
            stop_pid(pid, signal.SIGQUIT)
        self.pid = None
        shutil.rmtree(self.state_dir, ignore_errors=True)

    @classmethod
    def test_config(cls, conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
        """Run `nginx -t` on a config; nginx reports on stderr, returned as text."""
        with tempfile.TemporaryDirectory(prefix="harness-nginx-t-") as tmp:
            argv = _nginx_argv(conf.resolve(), prefix.resolve(), Path(tmp, "error.log"))
            result = run([*argv, "-t"], check=False, timeout=30)
        return subprocess.CompletedProcess(
            argv,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )


# --- containerd -----------------------------------------------------------------

_CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
# The CRI plugin wants a CNI setup and is not needed to pull and run.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{address}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

# The default "shared" policy lets one namespace reuse blobs another pulled,
# which would hide a broken blob URL in a second pull.
[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"
"""


class Containerd(Daemon):
    """containerd with state under `state_dir`, driven with `ctr`."""

    binary = "containerd"

    def __init__(self, state_dir: Path, namespace: str = "staticreg-test") -> None:
        super().__init__(state_dir)
        self.namespace = namespace
        self.address = str(_short_socket(self.state_dir / "containerd.sock"))
        self._ids = itertools.count(1)
        self._namespaces = itertools.count(1)

    def new_namespace(self) -> str:
        """Switch to an empty namespace and return its name.

        Blobs are shared within a namespace: a second pull of a layer already
        fetched there never asks the registry, which would hide a broken blob.
        """
        self.namespace = f"staticreg-test-{next(self._namespaces)}"
        return self.namespace

    def start(self) -> None:
        for binary in ("containerd", "ctr", "containerd-shim-runc-v2", "runc"):
            require(binary)
        config = self.state_dir / "config.toml"
        config.write_text(
            _CONTAINERD_CONFIG.format(
                root=self.state_dir / "root",
                state=self.state_dir / "state",
                opt=self.state_dir / "opt",
                address=self.address,
            )
        )
        self.spawn([require("containerd"), "--config", str(config)])
        self.wait_ready(self._answers, f"answering on {self.address}")

    def _answers(self) -> bool:
        argv = [require("ctr"), "-a", self.address, "version"]
        return run(argv, check=False, timeout=10).returncode == 0

    def stop(self) -> None:
        super().stop()
        stop_shims(self.address)
        unmount_under(self.state_dir)

    def ctr(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `ctr -a SOCK -n NAMESPACE ARGS`."""
        argv = [require("ctr"), "-a", self.address, "-n", self.namespace, *args]
        return run(argv, check=check, timeout=timeout)

    def pull(
        self,
        ref: str,
        *extra: str,
        plain_http: bool = True,
        platform: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        flags = ["--plain-http"] if plain_http else []
        flags += ["--platform", platform] if platform else []
        return self.ctr("images", "pull", *flags, *extra, ref, check=check)

    def run(self, ref: str, *cmd: str) -> str:
        """Run `cmd` in a throw-away container of `ref`; return its stdout."""
        container = f"harness-{os.getpid()}-{next(self._ids)}"
        return text(self.ctr("run", "--rm", ref, container, *cmd))

    def image_digest(self, ref: str) -> str:
        """The digest containerd recorded for `ref` (what the tag resolved to)."""
        for line in text(self.ctr("images", "ls")).splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == ref:
                return fields[2]
        raise HarnessError(f"ctr: image {ref} not found in namespace {self.namespace}")

    def remove(self, *refs: str) -> None:
        self.ctr("images", "rm", *refs, check=False)


# --- Docker engine --------------------------------------------------------------


class Dockerd(Daemon):
    """The Docker engine, using `containerd` (namespace "moby") to run containers.

    Images live in dockerd's own vfs store under `state_dir`, so nothing it pulls
    shows up in the ctr tests' namespace.
    """

    binary = "dockerd"

    def __init__(self, state_dir: Path, containerd: Containerd) -> None:
        super().__init__(state_dir)
        self.containerd = containerd
        self.socket = _short_socket(self.state_dir / "docker.sock")
        self.config_dir = self.state_dir / "client"
        self.env = dict(os.environ)
        self.env.update(
            DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(self.config_dir)
        )

    def start(self) -> None:
        require("docker")
        _write_json(self.config_dir / "config.json", {"auths": {}})
        # An explicit config keeps /etc/docker/daemon.json out of the test, and
        # moves the trust key dockerd 20.10 would write to /etc/docker/key.json.
        key_path = str(self.state_dir / "key.json")
        daemon_json = self.state_dir / "daemon.json"
        _write_json(daemon_json, {"deprecated-key-path": key_path})
        argv = [
            require("dockerd"),
            f"--config-file={daemon_json}",
            "--storage-driver=vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--bridge=none",
            f"--data-root={self.state_dir / 'data'}",
            f"--exec-root={self.state_dir / 'exec'}",
            f"--pidfile={self.state_dir / 'dockerd.pid'}",
            f"--host=unix://{self.socket}",
            f"--containerd={self.containerd.address}",
        ]
        self.spawn(argv)
        self.wait_ready(self._answers, f"answering on {self.socket}")

    def _answers(self) -> bool:
        return self.docker("version", check=False, timeout=10).returncode == 0

    def stop(self) -> None:
        super().stop()
        stop_shims(self.containerd.address, "moby")
        unmount_under(self.state_dir)

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the docker client against this engine, with a private config dir."""
        argv = [require("docker"), *args]
        return run(argv, env=self.env, check=check, timeout=timeout, input=input)

    def pull(self, ref: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return self.docker("pull", ref, check=check)

    def run(self, ref: str, *cmd: str) -> str:
        """Run `cmd` in a throw-away container without network; return stdout."""
        return text(self.docker("run", "--rm", "--network", "none", ref, *cmd))

    def save(self, path: Path, *refs: str) -> Path:
        self.docker("save", "--output", str(path), *refs)
        return path

    def load(self, path: Path) -> str:
        """`docker load` a tarball; return what docker printed (Loaded image: ...)."""
        return text(self.docker("load", "--input", str(path)))

    def import_rootfs(
        self, tar: Path, ref: str, cmd: tuple[str, ...] = ("/bin/sh",)
    ) -> str:
        """`docker import` a rootfs tar as `ref`; return the new image ID."""
        change = "CMD " + json.dumps(list(cmd))
        result = self.docker("import", "--change", change, str(tar), ref)
        return text(result).strip()

    def inspect(self, ref: str) -> dict[str, Any]:
        result = self.docker("image", "inspect", ref)
        found: list[dict[str, Any]] = json.loads(result.stdout)
        return found[0]

    def image_digest(self, ref: str) -> str:
        """The manifest digest docker recorded when pulling `ref` (RepoDigests)."""
        return _repo_digest(ref, self.inspect(ref).get("RepoDigests") or [], "docker")

    def remove(self, *refs: str) -> None:
        self.docker("image", "rm", "--force", *refs, check=False)

    def reset(self) -> None:
        """Remove every container and image.

        Docker skips layers it already holds ("Already exists"), so a test that
        checks blob serving must start from an empty engine.
        """
        self.docker("container", "prune", "--force")
        self.docker("image", "prune", "--all", "--force")


def _repo_digest(ref: str, repo_digests: list[str], client: str) -> str:
    """Pick the digest of `ref`'s repository from `name@digest` entries."""
    name = images.split_tag(ref.split("@", 1)[0])[0]
    found: set[str] = set()
    for repo_digest in repo_digests:
        repo, _, digest = repo_digest.partition("@")
        if repo == name:
            found.add(digest)
    if len(found) == 1:
        return found.pop()
    # Several: an earlier server on the same port left its digest; reset first.
    problem = "several digests" if found else "no digest"
    raise HarnessError(f"{client}: {problem} recorded for {ref} in {repo_digests}")


# --- podman and skopeo (no daemon) ----------------------------------------------


class _Client:
    """A daemonless client whose state, auth and temp files live under `state_dir`.

    Both abort or misbehave without a usable auth file: podman 4.3 aborts when
    $DOCKER_CONFIG is a folder without config.json.
    """

    binary = ""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()
        self.tmp = self.state_dir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        docker_config = self.state_dir / "docker-config"
        _write_json(docker_config / "config.json", {"auths": {}})
        self.auth_file = _write_json(self.state_dir / "auth.json", {"auths": {}})
        self.env = dict(os.environ)
        self.env.update(
            TMPDIR=str(self.tmp),
            DOCKER_CONFIG=str(docker_config),
            REGISTRY_AUTH_FILE=str(self.auth_file),
        )

    def __enter__(self) -> Self:
        require(self.binary)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        unmount_under(self.state_dir)

    def command(
        self, argv: list[str], check: bool, timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        return run(argv, env=self.env, check=check, timeout=timeout)


class Podman(_Client):
    """podman with vfs storage under `state_dir`; only pull and inspect work here.

    `podman run` fails in this sandbox (rlimit), so images are checked by digest.
    """

    binary = "podman"

    def podman(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        # Without systemd, cgroupfs and file events avoid journald and D-Bus.
        argv = [
            require("podman"),
            f"--root={self.state_dir / 'root'}",
            f"--runroot={self.state_dir / 'runroot'}",
            "--storage-driver=vfs",
            f"--tmpdir={self.state_dir / 'libpod'}",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            *args,
        ]
        return self.command(argv, check, timeout)

    def pull(self, ref: str, *extra: str, check: bool = True) -> str:
        """Pull over plain HTTP; return the image ID podman prints."""
        result = self.podman("pull", "--tls-verify=false", *extra, ref, check=check)
        return text(result).strip()

    def image_digest(self, ref: str) -> str:
        """The manifest digest podman recorded when pulling `ref` (RepoDigests).

        Not `.Digest`: that is the first manifest the image ID was pulled with,
        and an earlier pull of the same config from elsewhere would answer.
        """
        result = self.podman(
            "image", "inspect", "--format", "{{json .RepoDigests}}", ref
        )
        return _repo_digest(ref, json.loads(result.stdout) or [], "podman")

    def remove(self, *refs: str) -> None:
        self.podman("rmi", "--force", *refs, check=False)

    def reset(self) -> None:
        """Remove every image, so the next pull fetches every layer again."""
        self.podman("rmi", "--all", "--force")


class Skopeo(_Client):
    """skopeo with a private policy and auth file; TLS checks off for loopback."""

    binary = "skopeo"

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.policy = _write_json(self.state_dir / "policy.json", INSECURE_POLICY)

    def skopeo(
        self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [require("skopeo"), "--policy", str(self.policy), *args]
        return self.command(argv, check, timeout)

    def copy(
        self, src: str, dst: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        flags = ["--src-tls-verify=false", "--dest-tls-verify=false"]
        return self.skopeo("copy", *flags, *extra, src, dst, check=check)

    def inspect(self, ref: str, *extra: str, raw: bool = False) -> bytes:
        """`skopeo inspect`: the raw manifest bytes with `raw`, else its JSON report."""
        flags = ["--tls-verify=false", *(["--raw"] if raw else [])]
        return self.skopeo("inspect", *flags, *extra, ref).stdout

    def inspect_json(self, ref: str, *extra: str) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.inspect(ref, *extra))
        return report

    def manifest_digest(self, ref: str) -> str:
        """sha256 of the manifest bytes the registry serves for `ref`."""
        return "sha256:" + hashlib.sha256(self.inspect(ref, raw=True)).hexdigest()

    def list_tags(self, ref: str) -> list[str]:
        result = self.skopeo("list-tags", "--tls-verify=false", ref)
        tags: list[str] = json.loads(result.stdout)["Tags"]
        return tags


# --- CNCF distribution (reference registry) -------------------------------------

_REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {addr}
  secret: staticreg-harness
"""


class DistributionRegistry(Daemon):
    """CNCF distribution 2.8 (`docker-registry`), filesystem storage, plain HTTP."""

    binary = "docker-registry"

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        super().__init__(state_dir)
        self.port = port or free_port()

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        config = self.state_dir / "config.yml"
        config.write_text(
            _REGISTRY_CONFIG.format(root=self.state_dir / "data", addr=self.host)
        )
        self.spawn([require("docker-registry"), "serve", str(config)])
        self.wait_ready(self._answers, f"answering GET {self.url}/v2/")

    def _answers(self) -> bool:
        try:
            return http_get(f"{self.url}/v2/", timeout=1)[0] == 200
        except OSError:
            return False
