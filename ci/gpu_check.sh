#!/usr/bin/env bash
# The GPU check: run on a machine with a CUDA GPU, in the repository root.
#
#   ci/gpu_check.sh OUT_DIR
#
# 1. the CUDA kernel tests (tests/cuda) on the real device, and the layer, engine, ops and
#    kernel tests, whose `backend` fixture adds CuPy when a GPU is present;
# 2. benchmarks/kernels.py --backend cuda (kernels vs the CuPy composition, bandwidth);
# 3. benchmarks/mlp.py --backend cuda (xpnet vs PyTorch CUDA on the seed model);
# 4. ci/nccl_check.py: xpnet.distributed's NCCL all-reduce of a flat buffer across the GPUs
#    present (one process per GPU under mpiexec where mpi4py and mpiexec exist and there are
#    several GPUs; one process otherwise) and two data-parallel steps on "cuda".
# Each part has its own time limit, and a failing part does not stop the others; every part
# writes its log and JSON under OUT_DIR, and summary.txt collects the exit codes. Works with
# no network: wheels in .whl/ (ci/fetch_wheels.sh) are installed from there, and xpnet is
# imported from the source tree, so nothing is built. MNIST is read from $XPNET_MNIST
# (default shared/data/mnist in the checkout: copy it in, or carry it, for the MLP part).
set -u
OUT=${1:?usage: ci/gpu_check.sh OUT_DIR}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SITE=$(mktemp -d)
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl
fi
export PYTHONPATH="$SITE:$ROOT:$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 NUMBA_CACHE_DIR="$SITE/.numba"
export XPNET_MNIST="${XPNET_MNIST:-$ROOT/shared/data/mnist}"

summary="$OUT/summary.txt"
: > "$summary"
part() {  # part NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$summary"
}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import sys, numpy, cupy, numba, xpnet; print(sys.version); \
print('numpy', numpy.__version__, 'cupy', cupy.__version__, 'numba', numba.__version__); \
print('xpnet', xpnet.__file__, xpnet.get_backend('auto'))"
} > "$OUT/env.txt" 2>&1

# The CUDA kernel tests on the real device, and the layer, engine and kernel tests whose
# `backend` fixture adds CuPy on a GPU (the whole suite needs packages the device lacks:
# mpi4py, tensorboard, pycocotools; it runs in CI on the CPU).
part tests 240 python3 -m pytest "$ROOT/tests/cuda" "$ROOT/tests/test_backend.py" \
    "$ROOT/tests/test_kernels.py" "$ROOT/tests/test_layers_core.py" \
    "$ROOT/tests/test_engine.py" "$ROOT/tests/test_ops.py" -q -p no:cacheprovider \
    --junitxml="$OUT/tests.xml"
part kernels 90 python3 "$ROOT/benchmarks/kernels.py" --backend cuda --repeats 5 \
    --json "$OUT/kernels_gpu.json"
part mlp 90 python3 "$ROOT/benchmarks/mlp.py" --backend cuda --epochs 3 --rounds 3 \
    --json "$OUT/mlp_gpu.json"
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$NGPU" -gt 1 ] && command -v mpiexec >/dev/null && python3 -c "import mpi4py" 2>/dev/null
then
    part nccl 120 mpiexec -n "$NGPU" python3 "$ROOT/ci/nccl_check.py"
else
    part nccl 120 python3 "$ROOT/ci/nccl_check.py"
fi
cat "$summary"
