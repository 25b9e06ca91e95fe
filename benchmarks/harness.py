"""Timing helpers: subprocesses with wall time and peak RSS, A/B alternation, medians,
spread flags."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

NOISY = 0.20  # a figure whose (max - min) / median exceeds this is flagged


@dataclass
class Samples:
    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        m = self.median
        return (max(self.values) - min(self.values)) / m if m else 0.0

    @property
    def noisy(self) -> bool:
        return len(self.values) > 1 and self.spread > NOISY

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": min(self.values), "max": max(self.values), "n": len(self.values),
                "spread": self.spread, "noisy": self.noisy}


def run_process(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
                timeout: float = 900) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB, the process and the children it waited for) of a command."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
    deadline = t0 + timeout
    out = b""
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            raise TimeoutError(" ".join(cmd))
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if proc.stdout is not None:
        out = proc.stdout.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {code}: {out.decode(errors='replace')[-800:]}")
    return wall, ru.ru_maxrss / 1024.0, out.decode(errors="replace")


def alternate(a: Callable[[], float], b: Callable[[], float], rounds: int) -> tuple[Samples, Samples]:
    """Run A and B alternately (A B B A A B ...) so drift hits both alike."""
    sa, sb = Samples(), Samples()
    for i in range(rounds):
        order = (a, b) if i % 2 == 0 else (b, a)
        for f in order:
            (sa if f is a else sb).add(f())
    return sa, sb


def python() -> str:
    return sys.executable
