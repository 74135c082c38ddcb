#!/usr/bin/env bash
# One-time, idempotent set-up on a fresh Linux machine with Python >= 3.10 and no GPU:
# a virtual environment in .venv with the CPU build of torch and this package (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
# MOSES splits ship inside molsets; its own pins are obsolete, so take only the data package.
if ! .venv/bin/python -c "import importlib.util as u; assert u.find_spec('moses')" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps "molsets==0.3.1"
fi
