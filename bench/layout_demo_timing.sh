#!/usr/bin/env bash
# Whole demo command (process start to finished bundle), the layout before the restructure
# (49f5103) against the current tree, same venv and machine, alternating 3 times each.
# Usage: bash bench/layout_demo_timing.sh   (results of 2026-12-06 in the issue-12 closing note)
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(mktemp -d)/old
git worktree add -q "$old" 49f5103
trap 'git worktree remove --force "$old"' EXIT
export PYTHONHASHSEED=0 PYTENSOR_FLAGS=base_compiledir=$PWD/.cache/pytensor BAYES_ABLATION_NO_REEXEC=1
for i in 1 2 3; do
  for tree in "$old" "$PWD"; do
    s=$(date +%s.%N)
    PYTHONPATH=$tree/src .venv/bin/python -m bayes_ablation fit --spec models/pfs_weibull_site.toml \
      --data examples/pfs_trial.csv --out "/tmp/layout_timing_$(basename "$tree")" --force --quiet >/dev/null
    echo "$(basename "$tree") run $i: $(echo "$(date +%s.%N) - $s" | bc) s"
  done
done
