#!/usr/bin/env bash
# Create (or refresh) the project environment in .venv/ with Python >= 3.12.
# Idempotent: re-runs only when pyproject.toml or the lock file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  local cand
  # 3.12 first: requirements/lock.txt was resolved with it
  for cand in "${BAYES_ABLATION_PYTHON:-}" python3.12 python3.13; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    local root; root=$(pyenv root)
    for cand in $(ls -d "$root"/versions/3.12* 2>/dev/null | sort -V -r) \
                $(ls -d "$root"/versions/3.1[3-9]* 2>/dev/null | sort -V); do
      if [ -x "$cand/bin/python3" ]; then echo "$cand/bin/python3"; return 0; fi
    done
  fi
  for cand in python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  echo "error: Python >= 3.12 not found (PyMC 6 needs it). Install it or set BAYES_ABLATION_PYTHON." >&2
  return 1
}

# The package is installed editable, so pip does not byte-compile it as it does a wheel; where
# PYTHONDONTWRITEBYTECODE is set (as on these machines) every command would then compile the
# package's ~150 modules from source (~0.1 s per command). Compile them here (only what changed).
compile_package() {
  .venv/bin/python -m compileall -q src/bayes_ablation >/dev/null
}

stamp_want=$(cat pyproject.toml requirements/lock.txt 2>/dev/null | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ "$(cat .venv/.bayes_ablation_stamp 2>/dev/null)" = "$stamp_want" ]; then
  compile_package
  exit 0
fi

PY=$(find_python)
echo "setting up .venv with $("$PY" --version) ($PY)" >&2
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -c requirements/lock.txt -e ".[test]"
compile_package
echo "$stamp_want" > .venv/.bayes_ablation_stamp
