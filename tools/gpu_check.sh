#!/usr/bin/env bash
# On a machine with a CUDA GPU: build vidpool with its CUDA kernels, run the op tests on the device
# (tests/ops/test_cuda_device.py: against the float64 brute force and the CPU kernels) and the
# pooling benchmark on CUDA. One script, so a short loan of a GPU is enough:
#     bash tools/gpu_check.sh            # OUT=dir keeps the logs (default output/gpu_check)
# Needs: an nvcc whose major version matches torch.version.cuda (see setup.py), or an existing
# build with CUDA kernels (SKIP_INSTALL=1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-output/gpu_check}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  VIDPOOL_CUDA=1 make install 2>&1 | tee "$OUT/install.log"
fi
$PY - <<'PY' | tee "$OUT/device.txt"
import torch, vidpool._C as c
assert torch.cuda.is_available(), "torch sees no CUDA device"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "CUDA", torch.version.cuda)
print("vidpool build:", c.build_info())
assert c.cuda_compiled, "vidpool was built without CUDA kernels: see the reason above"
PY
status=0
$PY -m pytest -q tests/ops/test_cuda_device.py tests/ops/test_cuda_emulated.py 2>&1 | tee "$OUT/tests.log" || status=1
$PY tools/benchmark_pooling.py --device cuda --repeats 30 2>&1 | tee "$OUT/benchmark_cuda.txt" || status=1
echo "gpu_check: tests and benchmark logs in $OUT (exit $status)"
exit $status
