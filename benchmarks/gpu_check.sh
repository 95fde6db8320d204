#!/usr/bin/env bash
# One prepared check for a CUDA machine (about 5 minutes): the CUDA-capable tests, 200 iterations of AMP
# training of scrfd_500m_kps on the 38 WIDER val images, and VGA latency at batch 1 and 32 for every family,
# written as one JSON file. See benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh DATA_ROOT OUT.json
#
# DATA_ROOT holds widerface/ as ../shared/data does (default: $FACESCOPE_SHARED_DATA or ../shared/data).
# Uses the machine's python3 (which must hold torch with CUDA); facescope runs from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
data_root=${1:-${FACESCOPE_SHARED_DATA:-../shared/data}}
out=${2:-benchmarks/results/gpu_check.json}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 FACESCOPE_SHARED_DATA="$data_root"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 benchmarks/gpu_check.py --data "$data_root" --out "$out"
