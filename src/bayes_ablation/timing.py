"""Wall-clock facts for provenance: time since the process started, and import costs.

The process start is read from the operating system (``/proc/self/stat`` on Linux), so it
includes interpreter start-up and the CLI's re-execution with a fixed hash seed (``exec``
keeps the process). Elsewhere it is reported as unknown (``None``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time


def process_age_seconds() -> float | None:
    """Seconds since this process started (Linux), else ``None``."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def import_modules(names: tuple[str, ...]) -> float:
    """Import ``names`` (those not imported yet) and return the seconds it took."""
    start = time.perf_counter()
    for name in names:
        if name not in sys.modules:
            importlib.import_module(name)
    return time.perf_counter() - start
