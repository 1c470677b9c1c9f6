#!/usr/bin/env bash
# Fresh machine -> environment -> bundled example trial -> result bundle with report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTENSOR_FLAGS="${PYTENSOR_FLAGS:-base_compiledir=$PWD/.cache/pytensor}"
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"  # reproducible compiled graphs (see README)
exec .venv/bin/bayes-ablation fit --spec models/pfs_weibull_site.toml \
  --data examples/pfs_trial.csv --out "${1:-results/demo}" --force
