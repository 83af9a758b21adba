#!/usr/bin/env bash
# Creates the reference environment (PyTorch Detoxify, transformers,
# onnxruntime, ...) in DIR from scripts/reference-requirements.txt.
#
#   scripts/reference-env.sh DIR
#   PYTHON=DIR/bin/python
#   HF_HUB_OFFLINE=1 $PYTHON fixtures/generate.py
#
# About 6 GB (torch brings its CUDA libraries from PyPI). Set PYTHON3 to pick
# the interpreter that creates it (default python3; the fixtures were made
# with 3.11).
set -euo pipefail
if [[ $# -ne 1 ]]; then
    echo "usage: scripts/reference-env.sh DIR" >&2
    exit 2
fi
dir=$1
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"${PYTHON3:-python3}" -m venv "$dir"
"$dir/bin/python" -m pip install --quiet --upgrade pip
"$dir/bin/python" -m pip install --quiet -r "$here/reference-requirements.txt"
"$dir/bin/python" - <<'PY'
import importlib.metadata as metadata
for name in ["detoxify", "torch", "transformers", "tokenizers", "sentencepiece", "onnxruntime"]:
    print(f"{name} {metadata.version(name)}")
PY
echo "reference environment ready: PYTHON=$dir/bin/python"
