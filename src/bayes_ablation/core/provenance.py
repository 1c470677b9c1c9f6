"""Wall-clock facts for provenance: time since the process started, and import costs.

The process start is read from the operating system (``/proc/self/stat`` on Linux), so it
includes interpreter start-up and the CLI's re-execution with a fixed hash seed (``exec``
keeps the process). Elsewhere it is reported as unknown (``None``).
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any


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


def hash_seed_status() -> dict[str, Any]:
    """Whether draws from this process are reproducible in another process (see module doc)."""
    value = os.environ.get("PYTHONHASHSEED")
    return {
        "python_hash_seed": value,
        "reproducible_across_processes": value is not None and value != "random",
    }


DEPENDENCIES = ("pymc", "pytensor", "arviz", "arviz-base", "arviz-stats", "nutpie", "numba",
                "numpy", "scipy", "pandas", "xarray", "lifelines", "matplotlib", "h5netcdf")


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("bayes_ablation", *DEPENDENCIES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["bayes_ablation_source"] = source_revision()
    return versions


@functools.lru_cache(maxsize=1)
def source_revision() -> str:
    """The git commit of the package's source when it runs from a checkout (``+modified`` when
    the package's files differ from it), else ``"not a git checkout"``: the package version alone
    does not pin the code that produced a result during development."""
    import subprocess

    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True,
                             timeout=10, check=True)
        return out.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        modified = bool(git("status", "--porcelain", "--untracked-files=no", "--", "."))
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return commit + ("+modified" if modified else "")


class Stopwatch:
    """Wall seconds per named stage: ``with clock("estimands"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = time.perf_counter() - t0
