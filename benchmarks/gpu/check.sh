#!/usr/bin/env bash
# GPU check for a lent device (fresh machine, repository copied, maybe PyPI, no other network):
# prepares a Python environment, then runs benchmarks/gpu/gpu_check.py (CPU-vs-GPU agreement on
# random-init total/total-fast, wall time and peak GPU memory on a 512x512x458 phantom).
# Results (gpu_check.md, gpu_check.json, log.txt, env.txt, nvidia-smi.txt) go to $OUT.
#
#   OUT=/some/dir benchmarks/gpu/check.sh                    # on the GPU machine (< 5 minutes)
#   OUT=/tmp/gc PYTHON=.venv/bin/python benchmarks/gpu/check.sh --device cpu --small
#
# PYTHON: an interpreter that already has the project's dependencies (skips the venv). Otherwise
# a venv .venv-gpu is made with --system-site-packages (a preinstalled torch is reused), torch is
# installed from PyPI only if missing, then the checkout (`pip install -e .`) if not importable.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/benchmarks/gpu/out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
start=$(date +%s)
echo "== $(date -u) on $(hostname); args: $*"

if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
else
    base="$(command -v python3 || command -v python)"
    if [ ! -x .venv-gpu/bin/python ]; then
        "$base" -m venv --system-site-packages .venv-gpu
    fi
    PY="$PWD/.venv-gpu/bin/python"
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
    echo "== torch missing: installing it from PyPI"
    "$PY" -m pip install --quiet torch
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda available:', torch.cuda.is_available())" | tee "$OUT/env.txt"
if ! "$PY" -c "import totalseg, numpy, scipy, nibabel, typer, rich, platformdirs" 2>/dev/null; then
    echo "== installing the checkout (pip install -e .)"
    "$PY" -m pip install --quiet -e .
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
(nvidia-smi || echo "nvidia-smi not available") > "$OUT/nvidia-smi.txt" 2>&1
device=cuda
for ((i = 1; i <= $#; i++)); do
    if [ "${!i}" = "--device" ]; then j=$((i + 1)); device="${!j}"; fi
done
if [[ "$device" == cuda* ]] && ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "Expected a CUDA device, got none visible to torch (see $OUT/nvidia-smi.txt); use --device cpu --small for a dry run."
    exit 1
fi
echo "== environment ready after $(( $(date +%s) - start )) s"
"$PY" benchmarks/gpu/gpu_check.py --device "$device" --out "$OUT" "$@"
echo "== done in $(( $(date +%s) - start )) s"
