#!/usr/bin/env bash
# Installs Python torch for the PyTorch baseline of the training step
# (adapters/torch/bench/pytorch_step.py) into a virtual environment at
# ${CARGO_TARGET_DIR:-target}/pytorch, from the same PyPI wheel scripts/libtorch.sh takes
# libtorch from (torch 2.13.0, cp311, manylinux), with its dependencies (the CUDA libraries
# the wheel's Python module links against, ~4 GB; no GPU is needed). Not part of CI: the
# baseline's test skips without it. Idempotent: a fast no-op when the environment has torch.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_version=2.13.0
venv="${CARGO_TARGET_DIR:-target}/pytorch"
python=${PYTHON:-python3}

if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c \
  "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')" 2>/dev/null; then
  exit 0
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "pytorch.sh: $python is not Python 3.11 (the wheel is cp311); set PYTHON" >&2
  exit 1
fi
echo "pytorch.sh: torch $torch_version into $venv/"
"$python" -m venv "$venv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python3" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$work" \
  "torch==$torch_version"
"$venv/bin/python3" -m pip install -q --no-cache-dir "$work"/torch-"$torch_version"-*.whl
"$venv/bin/python3" -c "import torch; print('pytorch.sh: torch', torch.__version__)"
echo "pytorch.sh: done ($(du -sh "$venv" | cut -f1))"
