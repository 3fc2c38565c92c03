"""Helpers shared by the benchmark scripts (not collected by pytest)."""

from __future__ import annotations

import time


def cpu_busy(interval: float = 0.3) -> float:
    """Fraction of all CPUs busy (any process) over ``interval`` seconds, from /proc/stat."""
    def read():
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        return v[3] + v[4], sum(v)

    idle0, total0 = read()
    time.sleep(interval)
    idle1, total1 = read()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)
