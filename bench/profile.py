"""Where a collector's time goes: ``py-spy record -f raw`` on its pid, summarised by self time."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profiler:
    """A running ``py-spy record``; :meth:`stop` ends it and summarises the samples."""

    process: subprocess.Popen[bytes]
    path: Path

    @classmethod
    def start(cls, pid: int, path: Path, *, rate_hz: int = 100) -> Profiler:
        binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(binary).exists():
            raise BenchError("py-spy is not installed (pip install py-spy)")
        path.parent.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--output",
                str(path),
                "--rate",
                str(rate_hz),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return cls(process, path)

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if not self.path.exists():
            return {"error": "py-spy wrote no output (ptrace not permitted?)"}
        return summarise(self.path.read_text())


def _short(frame: str) -> str:
    """``function (path/to/module.py:12)`` → ``function (module.py)``."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    parts = Path(match["file"]).parts
    tail = "/".join(parts[-2:]) if len(parts) > 1 else match["file"]
    return f"{match['function']} ({tail})"


def summarise(raw: str, *, top: int = 15) -> dict[str, Any]:
    """Self time (the sampled leaf frame) and total time per function, as shares of samples."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        samples += count
        leaf[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not samples:
        return {"samples": 0, "self": [], "total": []}

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": name, "share_pct": round(100 * n / samples, 1)}
            for name, n in counter.most_common(top)
        ]

    return {"samples": samples, "self": shares(leaf), "total": shares(inclusive)}
