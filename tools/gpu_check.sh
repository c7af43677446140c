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
# SANITIZE=1 (the default) also runs the geometry tests under compute-sanitizer's memcheck
# (SANITIZE_TIMEOUT, default 300 s); SANITIZE=0 skips it.
# TRAIN=1 (the default) then times training (tools/benchmark_train.py): r3d-50 16x224^2 in bf16 on
# synthetic clips, max pooling against SoftPool, vidpool's engine against a plain PyTorch loop; the
# same at 8x224^2 for clips/s; and the loader on generated 256x340 videos (tools/make_demo_data.py)
# with WORKERS loader processes (default "8 14"), where the data wait is the number to read; and
# decoding (tools/benchmark_data.py): torchcodec on the GPU against CPU decoding with the last of WORKERS.
# TRAIN=0 skips that part.
#     bash tools/gpu_check.sh --dry-run  # every command above on the CPU with tiny sizes and no build:
#                                        # that the script and its tools run, before a GPU is lent
# Needs an nvcc whose major version matches torch.version.cuda (see setup.py). The op tests run
# without the shared conftest, so a GPU machine needs torch and pytest alone for them; the training
# part needs the decoders too (make install has them).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    *) echo "gpu_check.sh: unknown argument $arg (expected --dry-run)" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-output/gpu_check}
mkdir -p "$OUT"
BUILD=${BUILD:-make}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the tools import vidpool from this checkout (BUILD=inplace)
[ "${SKIP_INSTALL:-0}" = 1 ] && BUILD=none
if [ "$DRY_RUN" = 1 ]; then
  BUILD=none DEV=cpu SANITIZE=0
  TINY_POOL="--quick --repeats 2 --warmup 1" POOL_DTYPES=float32 KERNEL_TIME="" TINY_TRAIN="--steps 2 --warmup 1 --batch 2 --threads 2"
  TINY_SHAPE="DATA.NUM_FRAMES 4 DATA.TRAIN_CROP_SIZE 32 DATA.TRAIN_JITTER_SCALES [36,40] MODEL.BASE_WIDTH 8"
  LOADER_DATA="--videos 8 --classes 2 --frames 24 --size 64x80 --workers 2" WORKERS=${WORKERS:-2}
  DATA_ARGS="--clips 48 --batch 4 --rounds 2"
  # bf16 with channels_last_3d in float32 on the CPU: oneDNN's bf16 weight-gradient kernel for 3-d
  # convolutions never returned there (torch 2.14.1, a CPU with avx512_bf16; 12 minutes on 2x4x32^2)
  CL_AMP=none
else
  CL_AMP=bf16 DEV=cuda TINY_POOL="" POOL_DTYPES="float32 bfloat16" KERNEL_TIME=--kernel-time TINY_TRAIN="" TINY_SHAPE=""
  LOADER_DATA="--videos 320 --classes 10 --frames 96 --fps 30 --size 256x340" WORKERS=${WORKERS:-"8 14"}
  DATA_ARGS="--decode-device cuda --threads 8"
fi
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
# torchcodec finds FFmpeg through the linker's path: PyAV's copy, as make test does
if FFLIBS=$($PY -m vidpool.data.ffmpeg_libs 2>/dev/null); then
  export LD_LIBRARY_PATH="$FFLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  echo "no PyAV FFmpeg to link for torchcodec: it needs the system's FFmpeg libraries"
fi
DRY_RUN=$DRY_RUN $PY - <<'PY' | tee "$OUT/device.txt"
import datetime, os, torch
print("date:", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
if os.environ["DRY_RUN"] == "1":
    print("dry run on the CPU | torch", torch.__version__)
else:
    import vidpool._C as c
    assert torch.cuda.is_available(), "torch sees no CUDA device"
    print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "CUDA", torch.version.cuda)
    print("vidpool build:", c.build_info())
    assert c.cuda_compiled, "vidpool was built without CUDA kernels: see the reason above"
PY
git log -1 --format='commit %h %cd' 2>/dev/null | tee -a "$OUT/device.txt" || true
status=0
if [ "$DRY_RUN" = 0 ]; then
  $PY -m pytest -q --noconftest -p no:cacheprovider tests/ops/test_cuda_device.py 2>&1 | tee "$OUT/tests.log" || status=1
fi
# Kernel time of SoftPool and max_pool3d, fwd+bwd, on the four benchmark shapes (stem and late
# stage, k2 and k3p1); the target is SoftPool <= 1.2x max_pool3d on each, fp32 and bf16.
# (the CPU has no kernel timer and no bf16 avg_pool3d: a dry run times float32 wall clock)
for dtype in $POOL_DTYPES; do
  # shellcheck disable=SC2086
  $PY tools/benchmark_pooling.py --device $DEV --dtype $dtype $KERNEL_TIME --repeats 30 $TINY_POOL 2>&1 \
    | tee "$OUT/benchmark_${DEV}_$dtype.txt" || status=1
done
if [ "$DRY_RUN" = 0 ]; then
  # The same with the kernels' index math forced to 64 bits: what the 32-bit path saves.
  VIDPOOL_CUDA_INDEX64=1 $PY tools/benchmark_pooling.py --device cuda --kernel-time --repeats 30 2>&1 \
    | tee "$OUT/benchmark_cuda_index64.txt" || status=1
  # And with overlapping windows gathered per input cell instead of per block: what the blocked gather saves.
  VIDPOOL_CUDA_GATHER=cell $PY tools/benchmark_pooling.py --device cuda --kernel-time --repeats 30 2>&1 \
    | tee "$OUT/benchmark_cuda_cell_gather.txt" || status=1
  $PY tools/benchmark_pooling.py --device cuda --zoo --repeats 30 2>&1 | tee "$OUT/benchmark_cuda_zoo.txt" || status=1
fi
if [ "${TRAIN:-1}" = 1 ]; then
  # r3d-50 16x224^2, bf16, clips already on the device: SoftPool step / max step (target <= 1.03),
  # engine / plain loop (<= 1.05); then 8x224^2 for clips/s (aim >= 200 on an H100/H200)
  CFG=configs/hacs/r3d50_softpool.yaml
  # shellcheck disable=SC2086
  $PY tools/benchmark_train.py --device $DEV --cfg $CFG --amp bf16 $TINY_TRAIN $TINY_SHAPE 2>&1 \
    | tee "$OUT/train_r3d50_16x224_bf16.txt" || status=1
  # shellcheck disable=SC2086
  $PY tools/benchmark_train.py --device $DEV --cfg $CFG --amp $CL_AMP --channels-last $TINY_TRAIN $TINY_SHAPE 2>&1 \
    | tee "$OUT/train_r3d50_16x224_bf16_channels_last.txt" || status=1
  # shellcheck disable=SC2086
  $PY tools/benchmark_train.py --device $DEV --cfg $CFG --amp bf16 $TINY_TRAIN ${TINY_SHAPE:-DATA.NUM_FRAMES 8} 2>&1 \
    | tee "$OUT/train_r3d50_8x224_bf16.txt" || status=1
  # the loader: generated videos (10 classes, 30 fps) decoded with PyAV by WORKERS processes,
  # clips handed over as uint8 and normalised on the device; "data" is the wait per step
  LOADER_DIR="$OUT/loader_data"
  if [ ! -d "$LOADER_DIR/ucf101" ]; then
    # shellcheck disable=SC2086
    $PY tools/make_demo_data.py --out "$LOADER_DIR" $LOADER_DATA >"$OUT/loader_data.log" 2>&1 \
      || { tail -n 20 "$OUT/loader_data.log"; status=1; }
  fi
  for w in $WORKERS; do
    # shellcheck disable=SC2086
    $PY tools/benchmark_train.py --device $DEV --cfg $CFG --amp bf16 --pools softpool --input loader --workers "$w" \
      $TINY_TRAIN $TINY_SHAPE TRAIN.DATASET ucf101 DATA.PATH_TO_DATA_DIR "$LOADER_DIR/ucf101" \
      DATA.PATH_PREFIX "$LOADER_DIR/ucf101" MODEL.NUM_CLASSES 10 \
      2>&1 | tee "$OUT/train_loader_${w}_workers.txt" || status=1
  done
  # decoding: torchcodec on the GPU (NVDEC, in the training process) against PyAV and torchcodec on
  # the CPU with the loader's workers, on the project's H.264 clips, 16x224^2 training clips
  # shellcheck disable=SC2086
  $PY tools/benchmark_data.py --videos tests/assets/videos/*.mp4 --workers "0,${WORKERS##* }" $DATA_ARGS 2>&1 \
    | tee "$OUT/decoding.txt" || status=1
fi
if [ "${SANITIZE:-1}" = 1 ]; then  # out-of-bounds and misaligned accesses in the kernels, on the geometry tests
  timeout "${SANITIZE_TIMEOUT:-300}" compute-sanitizer --tool memcheck --error-exitcode 3 \
    $PY -m pytest -q --noconftest -p no:cacheprovider tests/ops/test_cuda_device.py -k "brute_force or adaptive" \
    >"$OUT/memcheck.log" 2>&1 || { status=1; echo "memcheck failed or timed out: see $OUT/memcheck.log"; }
  tail -n 5 "$OUT/memcheck.log"
fi
echo "gpu_check: tests and benchmark logs in $OUT (exit $status)"
exit $status
