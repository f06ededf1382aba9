#!/usr/bin/env bash
# The one GPU check: the CUDA part of the test suite, then the GPU benchmark, in one call.
#
#   bash benchmarks/gpu_check.sh [--out DIR]        # on a machine with a CUDA GPU, in the repo's root
#   bash benchmarks/gpu_check.sh --cpu-dry-run      # every step at tiny sizes on the CPU (checks the script)
#
# The GPU machine has torch (CUDA), triton, pytest, hypothesis, safetensors, tqdm and matplotlib but
# no network: lstmkit is installed without dependencies (or put on PYTHONPATH). Sized for under
# 8 minutes on one H100/H200 (an estimate: it has not run on one yet): tests (at most 4 min,
# parallel when pytest-xdist is there), then the benchmark (kernels compiled in parallel first; rows
# past its 4-minute budget are left out and said so). The benchmark runs even when a test fails. Results: benchmarks/results/gpu_<gpu>.json and .md,
# the log beside them; --out DIR copies them there too. Exit status: 0 only if every stage passed.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        *) echo "usage: bash benchmarks/gpu_check.sh [--out DIR] [--cpu-dry-run]" >&2; exit 2 ;;
    esac
    shift
done
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "$DRY" = 1 ] && PY=.venv/bin/python
RESULTS=benchmarks/results
[ "$DRY" = 1 ] && RESULTS=$(mktemp -d /tmp/gpu_check_dry.XXXXXX)
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
exec > >(tee "$LOG") 2>&1
status=0
stage() { echo; echo "== $* ($(date +%H:%M:%S))"; }

stage "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), '| triton', triton.__version__)"

stage "install lstmkit (no dependencies: there is no network)"
if ! "$PY" -m pip install --quiet --no-deps --no-build-isolation -e . ; then
    echo "pip could not install it: using PYTHONPATH=$PWD"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# The C++ CPU engine is the CPU suite's business; building it here would cost GPU minutes
# (automatic engine choice on packed input asks it before it looks at the device).
export LSTMKIT_CPU_ENGINE=0

stage "tests: CUDA readiness and the triton kernels at full size"
PARALLEL=""
"$PY" -c "import xdist" 2>/dev/null && PARALLEL="-n 4"
if [ "$DRY" = 1 ]; then
    export LSTMKIT_TEST_DEVICE=cpu
    PARALLEL=""
fi
timeout 240 "$PY" -m pytest -q -p no:cacheprovider $PARALLEL tests/test_cuda.py \
    "tests/test_triton_engine.py::test_gpu_kernels_match_the_specification_at_full_size" \
    "tests/test_triton_engine.py::test_kernels_compile_for_an_h100_barrier_included" -rfEs || status=1
unset LSTMKIT_TEST_DEVICE

stage "benchmark"
if [ "$DRY" = 1 ]; then
    TRITON_INTERPRET=1 timeout 600 "$PY" benchmarks/bench_gpu.py --cpu-dry-run --workers 2 --budget 400 || status=1
else
    timeout 300 "$PY" benchmarks/bench_gpu.py --out-dir "$RESULTS" --budget 240 || status=1
fi

stage "done: status $status"
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp "$RESULTS"/gpu_*.json "$RESULTS"/gpu_*.md "$LOG" "$OUT"/ 2>/dev/null
    echo "copied the results to $OUT"
fi
exit $status
