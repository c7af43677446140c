#!/usr/bin/env bash
# The paper's Kinetics-700 fine-tuning: the HACS-trained max-pool and SoftPool models of MODEL
# (train configs/hacs/MODEL.yaml and MODEL_softpool.yaml first) fine-tuned on Kinetics-700, tested,
# and compared on the same test videos.
#
#   tools/finetune_k700.sh [MODEL] [KEY VALUE ...]
#
# MODEL (default r3d50): r3d50, r3d101, r2plus1d50, i3d, srtg_r3d50, srtg_r3d101, srtg_r2plus1d50 —
# the configs configs/kinetics700/MODEL_ft.yaml and MODEL_softpool_ft.yaml. Each starts from the
# last checkpoint of its HACS run folder (TRAIN.CHECKPOINT_FILE_PATH). See tools/finetune_compare.sh
# for PYTHON, LAUNCH and DRY_RUN.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
model=${1:-r3d50}
[ $# -gt 0 ] && shift
exec tools/finetune_compare.sh "configs/kinetics700/${model}_ft.yaml" "configs/kinetics700/${model}_softpool_ft.yaml" "$@"
