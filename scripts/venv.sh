#!/usr/bin/env bash
# Create (or refresh) the project virtualenv in .venv and install go-reports into it.
# Sourced by scripts/sample and scripts/test; re-runs are cheap (pip skips what is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.installed-$(cat pyproject.toml examples/plugin-stage/pyproject.toml | sha256sum | cut -c1-16)-${1:-base}
if [ ! -f "$stamp" ]; then
  if [ "${1:-base}" = test ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
    .venv/bin/python -m pip install -q -e examples/plugin-stage  # the example plugin (docs/plugins.md)
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi
