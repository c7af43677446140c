#!/usr/bin/env bash
# Fine-tune a max-pool and a SoftPool model the same way, test both (vidpool train tests after
# training when TEST.ENABLE is on) and compare them on the same test videos (vidpool compare: the
# per-video McNemar table of this one seed pair; a verdict needs several seeds, see docs/experiments.md).
#
#   tools/finetune_compare.sh MAX_CFG SOFTPOOL_CFG [KEY VALUE ...]
#
# KEY VALUE pairs override both configs (e.g. DATA_LOADER.NUM_WORKERS 8). A run that
# already finished resumes at its last checkpoint and only tests again. Set PYTHON to choose the
# interpreter (default: .venv/bin/python when it exists, else python). For several GPUs, set
# LAUNCH="torchrun --nproc_per_node 8" (the script then runs "$LAUNCH -m vidpool train ...").
# DRY_RUN=1 prints the commands instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
if [ $# -lt 2 ]; then
    echo "usage: $0 MAX_CFG SOFTPOOL_CFG [KEY VALUE ...]" >&2
    exit 2
fi
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
LAUNCH=${LAUNCH:-$PY}
max_cfg=$1
soft_cfg=$2
shift 2
for cfg in "$max_cfg" "$soft_cfg"; do
    [ -f "$cfg" ] || { echo "$0: no config $cfg" >&2; exit 2; }
done
run() {
    if [ -n "${DRY_RUN:-}" ]; then echo "$*"; else "$@"; fi
}
output_dir() {
    "$PY" -c 'import sys; from vidpool.config import load_cfg; print(load_cfg(sys.argv[1], sys.argv[2:]).OUTPUT_DIR)' "$@"
}
for cfg in "$max_cfg" "$soft_cfg"; do
    echo "== $cfg"
    run $LAUNCH -m vidpool train --cfg "$cfg" TEST.ENABLE True "$@"
done
max_out=$(output_dir "$max_cfg" "$@")
soft_out=$(output_dir "$soft_cfg" "$@")
echo "== the two runs on the same test videos: $max_out vs $soft_out"
run "$PY" -m vidpool compare --names max softpool "$max_out/predictions.csv" "$soft_out/predictions.csv"
