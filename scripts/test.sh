#!/usr/bin/env bash
# Fresh machine -> environment -> default (fast) test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTENSOR_FLAGS="${PYTENSOR_FLAGS:-base_compiledir=$PWD/.cache/pytensor}"
export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"  # reproducible compiled graphs (see README)
.venv/bin/ruff check src tests bench examples
.venv/bin/lint-imports --no-cache  # layers and acyclicity contracts (pyproject.toml, docs/ARCHITECTURE.md)
# two worker processes (CI has 2 cores); a test file stays on one worker, so its fixtures are built once
exec .venv/bin/python -m pytest -n "${BAYES_ABLATION_TEST_WORKERS:-2}" --dist loadfile "$@"
