"""Shared by the whole-command benchmarks: one timed ``bayes-ablation fit`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str]) -> float:
    """Run ``bayes-ablation ARGS --quiet`` in a fresh process; its wall seconds. Exits on any
    code but 0 or 3 (3: gate failed, the bundle is still written)."""
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT / "src"))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bayes_ablation", *args, "--quiet"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def timed_fit(spec: Path, data: Path, out: Path, lesions: Path | None = None
              ) -> tuple[float, dict, int]:
    """Run ``bayes-ablation fit`` in a fresh process: (wall seconds from process start to the
    finished bundle, its summary.json, 0 if the gate passed else 3)."""
    wall = run_cli(["fit", "--spec", str(spec), "--data", str(data), "--out", str(out),
                    *(["--lesions", str(lesions)] if lesions is not None else [])])
    summary = json.loads((out / "summary.json").read_text())
    return wall, summary, 0 if summary["diagnostics"]["passed"] else 3
