#!/usr/bin/env bash
# On a machine with a CUDA GPU: build vidpool with its CUDA kernels, run the op tests on the device
# (tests/ops/test_cuda_device.py: against the float64 brute force and the CPU kernels) and the
# pooling benchmarks on CUDA (float32 and bfloat16, and the zoo). One script, so a short loan of a GPU
# is enough:
#     bash tools/gpu_check.sh            # OUT=dir keeps the logs (default output/gpu_check)
# BUILD chooses how vidpool is built first:
#     make     (default) VIDPOOL_CUDA=1 make install: a fresh .venv with the pinned torch
#     inplace  VIDPOOL_CUDA=1 $PY setup.py build_ext --inplace: against the torch $PY already has (a
#              machine without a package index); only the baseline CPU variant, for the comparisons,
#              and no emulated kernels (CI tests those)
#     none     use the existing build (SKIP_INSTALL=1 means the same)
# SANITIZE=1 also runs the geometry tests under compute-sanitizer's memcheck (SANITIZE_TIMEOUT, default 300 s).
# Needs an nvcc whose major version matches torch.version.cuda (see setup.py). The tests run without
# the shared conftest, so a GPU machine needs torch and pytest alone, not the video decoders.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-output/gpu_check}
mkdir -p "$OUT"
BUILD=${BUILD:-make}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the tools import vidpool from this checkout (BUILD=inplace)
[ "${SKIP_INSTALL:-0}" = 1 ] && BUILD=none
if [ -z "${PY:-}" ]; then
  if [ "$BUILD" = make ] || [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

case "$BUILD" in
  make) VIDPOOL_CUDA=1 make install 2>&1 | tee "$OUT/install.log" ;;
  inplace) VIDPOOL_CUDA=1 VIDPOOL_CPU_ISA=none VIDPOOL_EMULATED=0 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
             $PY setup.py build_ext --inplace >"$OUT/install.log" 2>&1 \
             || { tail -n 60 "$OUT/install.log"; exit 1; } ;;
  none) ;;
  *) echo "BUILD=$BUILD: expected make, inplace or none" >&2; exit 2 ;;
esac
$PY - <<'PY' | tee "$OUT/device.txt"
import torch, vidpool._C as c
assert torch.cuda.is_available(), "torch sees no CUDA device"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "CUDA", torch.version.cuda)
print("vidpool build:", c.build_info())
assert c.cuda_compiled, "vidpool was built without CUDA kernels: see the reason above"
PY
status=0
$PY -m pytest -q --noconftest -p no:cacheprovider tests/ops/test_cuda_device.py 2>&1 | tee "$OUT/tests.log" || status=1
for dtype in float32 bfloat16; do
  $PY tools/benchmark_pooling.py --device cuda --dtype $dtype --kernel-time --repeats 30 2>&1 \
    | tee "$OUT/benchmark_cuda_$dtype.txt" || status=1
done
# The same with the kernels' index math forced to 64 bits: what the 32-bit path saves.
VIDPOOL_CUDA_INDEX64=1 $PY tools/benchmark_pooling.py --device cuda --kernel-time --repeats 30 2>&1 \
  | tee "$OUT/benchmark_cuda_index64.txt" || status=1
$PY tools/benchmark_pooling.py --device cuda --zoo --repeats 30 2>&1 | tee "$OUT/benchmark_cuda_zoo.txt" || status=1
if [ "${SANITIZE:-0}" = 1 ]; then  # out-of-bounds and misaligned accesses in the kernels, on the geometry tests
  timeout "${SANITIZE_TIMEOUT:-300}" compute-sanitizer --tool memcheck --error-exitcode 3 \
    $PY -m pytest -q --noconftest -p no:cacheprovider tests/ops/test_cuda_device.py -k "brute_force or adaptive" \
    >"$OUT/memcheck.log" 2>&1 || { status=1; echo "memcheck failed or timed out: see $OUT/memcheck.log"; }
  tail -n 5 "$OUT/memcheck.log"
fi
echo "gpu_check: tests and benchmark logs in $OUT (exit $status)"
exit $status
