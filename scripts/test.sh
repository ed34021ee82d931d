#!/usr/bin/env bash
# Set up .venv (if needed), install hector-py with its test extras, then lint, type-check
# and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test]"
ruff check hector_py tests scripts
ruff format --check hector_py tests scripts
mypy
python -m pytest "$@"
