"""The processes under test: baselines and collectors, each its own OS process.

Every subject answers the same two questions: how many messages has it finished
(counted, or committed), and what did its process cost (CPU from
``/proc/<pid>/stat``, peak RSS from ``VmHWM`` in ``/proc/<pid>/status``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_SCAN_ATTEMPTS = 5
_BASELINE_MAIN = "from bench.baselines import main; main()"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (all its threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def _children_seconds(pid: int) -> float:
    """CPU time of ``pid``'s children that have exited and been reaped (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / _CLOCK_TICKS


def named_cpu_seconds(name: str) -> float:
    """CPU time of every process called ``name`` (e.g. all of a PostgreSQL server's).

    Children's time counts too, so a backend that exits during a run stays counted (in
    its parent's total). The sum is taken from a consistent scan: a backend that is
    reaped while /proc is walked would be missed (parent read before, child gone after)
    or counted twice, and a miss in the first reading of a run would add that backend's
    whole lifetime to the run. So the scan is repeated until no matched process vanished
    and no matched parent reaped a child while it ran.
    """
    for _ in range(_SCAN_ATTEMPTS):
        own, reaped = _scan(name)
        try:
            steady = all(_children_seconds(pid) == t for pid, t in reaped.items())
        except (FileNotFoundError, ProcessLookupError):
            steady = False  # a matched process exited meanwhile
        if steady:
            break
    return sum(own.values()) + sum(reaped.values())


def _scan(name: str) -> tuple[dict[int, float], dict[int, float]]:
    """Own CPU time and reaped children's CPU time of each process called ``name``."""
    own: dict[int, float] = {}
    reaped: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() == name:
                pid = int(proc.name)
                own[pid] = cpu_seconds(pid)
                reaped[pid] = _children_seconds(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # exited meanwhile
    return own, reaped


@dataclass(frozen=True, slots=True)
class MachineSample:
    """The first line of ``/proc/stat``: clock ticks of all CPUs since boot."""

    busy: int  # outside idle and iowait
    total: int  # everything
    cpus: int


def machine_sample() -> MachineSample:
    lines = Path("/proc/stat").read_text().splitlines()
    # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
    fields = [int(v) for v in lines[0].split()[1:9]]
    total = sum(fields)
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return MachineSample(busy=total - fields[3] - fields[4], total=total, cpus=cpus)


def machine_cpu_pct(before: MachineSample, after: MachineSample) -> float:
    """How busy all CPUs were between two samples, in % of one CPU.

    The busy share of the ticks counted meanwhile, times the CPUs: at most 100 % x CPUs
    by construction, whatever the wall clock did between the readings.
    """
    ticks = after.total - before.total
    return 100.0 * after.cpus * (after.busy - before.busy) / ticks if ticks > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TimedReading:
    """A cumulative CPU time (s) and when it was read (the middle of the reading)."""

    seconds: float
    at: float

    @classmethod
    def take(cls, read: Callable[[], float]) -> TimedReading:
        started = time.monotonic()
        seconds = read()
        return cls(seconds, (started + time.monotonic()) / 2)

    def pct_until(self, later: TimedReading) -> float:
        """CPU % between this reading and ``later``, over their own interval."""
        elapsed = later.at - self.at
        return (later.seconds - self.seconds) / elapsed * 100 if elapsed > 0 else 0.0


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (``VmHWM``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True, slots=True)
class Progress:
    """Messages finished by a subject, and the monotonic time it was observed or reported."""

    count: int
    at: float


class Subject:
    """One process under test."""

    name = "subject"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            raise BenchError(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def progress(self) -> Progress:
        raise NotImplementedError

    def stop(self, *, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class BaselineProcess(Subject):
    """A baseline in its own interpreter; reads its ``ready`` and ``count`` lines."""

    def __init__(
        self,
        mode: str,
        *,
        mqtt_url: str,
        client_id: str,
        protocol: str,
        database_url: str | None,
        log_path: Path,
    ) -> None:
        super().__init__(log_path)
        self.name = mode
        self._args = [
            sys.executable,
            "-c",
            _BASELINE_MAIN,
            mode,
            "--mqtt-url",
            mqtt_url,
            "--client-id",
            client_id,
            "--protocol",
            protocol,
        ]
        if database_url is not None:
            self._args += ["--database-url", database_url]
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self._latest = Progress(0, 0.0)

    def start(self, *, timeout_s: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self._args, stdout=subprocess.PIPE, stderr=log)
        self._reader = threading.Thread(target=self._read, name=f"bench-{self.name}", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not subscribe within {timeout_s:.0f}s")

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            parts = raw.split()
            if parts == [b"ready"]:
                self._ready.set()
            elif len(parts) == 3 and parts[0] == b"count":
                self._latest = Progress(int(parts[1]), float(parts[2]))

    async def progress(self) -> Progress:
        return self._latest

    def stop(self, *, timeout_s: float = 30.0) -> None:
        super().stop(timeout_s=timeout_s)
        if self._reader is not None:
            self._reader.join(timeout=5)  # ends at EOF, now that the process is gone
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


class CollectorProcess(Subject):
    """``citytel collect`` with its metrics endpoint on a private port."""

    def __init__(
        self, *, index: int, env: dict[str, str], metrics_port: int, log_path: Path
    ) -> None:
        super().__init__(log_path)
        self.name = f"collector {index}"
        self.metrics_port = metrics_port
        self.env = env

    def start(self) -> None:
        script = Path(sys.executable).with_name("citytel")
        command = (
            [str(script)]
            if script.exists()
            else [sys.executable, "-c", "from citytel.cli import main; main()"]
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "collect"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    async def wait_healthy(self, *, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            try:
                status, _ = await _http_get(self.metrics_port, "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.name} not healthy after {timeout_s:.0f}s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.1)

    async def progress(self) -> Progress:
        """Messages in committed batches (``citytel_messages_received_total``)."""
        _, body = await _http_get(self.metrics_port, "/metrics")
        at = time.monotonic()
        for line in body.splitlines():
            if line.startswith("citytel_messages_received_total "):
                return Progress(int(float(line.split()[1])), at)
        raise BenchError(f"{self.name}: no citytel_messages_received_total in /metrics")


async def _http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = response.decode(errors="replace").partition("\r\n\r\n")
    status = int(head.split(" ", 2)[1]) if " " in head else 0
    return status, body
