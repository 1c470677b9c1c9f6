"""Shared by the whole-command benchmarks: one timed ``bayes-ablation fit`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_fit(spec: Path, data: Path, out: Path) -> tuple[float, dict, int]:
    """Run ``bayes-ablation fit`` in a fresh process: (wall seconds from process start to the
    finished bundle, its summary.json, its return code). Exits on any code but 0 or 3."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT / "src"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bayes_ablation", "fit", "--spec", str(spec),
                           "--data", str(data), "--out", str(out), "--quiet"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        raise SystemExit(f"fit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, json.loads((out / "summary.json").read_text()), proc.returncode
