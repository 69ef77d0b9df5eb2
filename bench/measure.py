"""Time a command and measure its whole process tree: memory, CPU, and the noise.

The command runs in a process group of its own. A thread sums ``VmRSS`` over the
group and every descendant of it every 50 ms (finding the members again every
200 ms); the highest sum is the peak. CPU
seconds come from the kernel's accounting of reaped children, and the machine's
own counters tell how much CPU other processes and the hypervisor took meanwhile,
so a noisy run can be told apart from a slow one.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

SAMPLE_SECONDS = 0.05
# Listing every process costs ~2.5 ms here, 5 % of a core at every sample: the
# tree is listed again only every few samples, and its members read at each one.
RESCAN_EVERY = 4
COMMAND_TIMEOUT = 1800
_TICK = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group), from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as file:
                text = file.read()
        except OSError:
            continue  # exited between listdir and open
        # The command name may hold spaces or parentheses: split after the last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        table[int(name)] = (int(fields[1]), int(fields[2]))
    return table


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB; zeros once it has exited."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class TreeSampler(threading.Thread):
    """Max over time of the summed RSS of a process group and its descendants."""

    def __init__(self, group: int, extra: Sequence[int] = ()) -> None:
        super().__init__(daemon=True)
        self._roots = {group, *extra}
        self._halt = threading.Event()
        self._known: list[int] = []
        self._count = 0
        self.peak_kib = 0
        self.hwm_kib: dict[int, int] = {}

    def run(self) -> None:
        while True:
            self._sample()
            if self._halt.wait(SAMPLE_SECONDS):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def _members(self) -> list[int]:
        table = _process_table()
        return [
            pid
            for pid, (_, group) in table.items()
            if group in self._roots or self._descends(pid, table)
        ]

    def _descends(self, pid: int, table: dict[int, tuple[int, int]]) -> bool:
        # The group catches most members; the parent chain catches a child that
        # made a session of its own.
        for _ in range(64):
            if pid in self._roots:
                return True
            if pid <= 1 or pid not in table:
                return False
            pid = table[pid][0]
        return False

    def _sample(self) -> None:
        if self._count % RESCAN_EVERY == 0:
            self._known = self._members()
        self._count += 1
        total = 0
        for pid in self._known:
            rss, hwm = _memory_kib(pid)
            total += rss
            self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), hwm)
        self.peak_kib = max(self.peak_kib, total)


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    other_cpu: float  # used meanwhile by processes that are not the command's
    steal: float  # taken by the hypervisor meanwhile
    peak_rss: int
    hwm_sum: int
    stdout: str


def measure(
    argv: Sequence[str], log_path: str, extra: Sequence[int] = (), timeout: float = 0
) -> Run:
    """Run ``argv`` in a new process group; time it and sample its tree's memory."""
    with open(log_path, "wb") as log, tempfile.TemporaryFile() as out:
        before = _Clock.read(extra)
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        sampler = TreeSampler(proc.pid, extra)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout or COMMAND_TIMEOUT)
        finally:
            seconds = time.perf_counter() - start
            sampler.stop()
            _kill_group(proc.pid)
        spent = _Clock.read(extra).minus(before)
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if code != 0:
        with open(log_path, errors="replace") as file:
            tail = file.read()[-2000:]
        raise RuntimeError(f"{argv[0]} exited with {code}: {' '.join(argv)}\n{tail}")
    hwm = sum(sampler.hwm_kib.values()) * 1024
    peak = sampler.peak_kib * 1024
    return Run(seconds, spent.command, spent.others, spent.steal, peak, hwm, stdout)


@dataclass(frozen=True)
class _Clock:
    """CPU seconds so far: the command's, this script's, the machine's, stolen."""

    command: float
    own: float
    machine: float
    steal: float

    @classmethod
    def read(cls, extra: Sequence[int]) -> _Clock:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        command = children.ru_utime + children.ru_stime
        command += sum(_process_cpu(pid) for pid in extra)
        with open("/proc/stat") as file:
            ticks = [int(x) for x in file.readline().split()[1:9]]
        user, nice, system, _, _, irq, softirq, steal = ticks
        busy = (user + nice + system + irq + softirq) / _TICK
        return cls(command, own.ru_utime + own.ru_stime, busy, steal / _TICK)

    def minus(self, earlier: _Clock) -> _Clock:
        return _Clock(
            self.command - earlier.command,
            self.own - earlier.own,
            self.machine - earlier.machine,
            self.steal - earlier.steal,
        )

    @property
    def others(self) -> float:
        # Tick counts are coarse (10 ms): clamp the rounding below zero away.
        return max(0.0, self.machine - self.command - self.own)


def wait_quiet(limit: float, busy_cores: float = 0.1, window: float = 0.5) -> bool:
    """Wait up to ``limit`` seconds for two windows in which others stay near idle.

    Other work on the machine (a test suite, a build) takes cores from the
    command and makes it look slow. Returns False if the machine never calmed.
    """
    deadline = time.monotonic() + limit
    calm = 0
    while calm < 2:
        if time.monotonic() > deadline:
            return False
        before = _Clock.read(())
        time.sleep(window)
        calm = (
            calm + 1
            if _Clock.read(()).minus(before).others < busy_cores * window
            else 0
        )
    return True


def _process_cpu(pid: int) -> float:
    """User plus system seconds so far of a live process that is not reaped yet."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _kill_group(group: int) -> None:
    # The group is the one Popen made for this command alone; stragglers go too.
    with suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
