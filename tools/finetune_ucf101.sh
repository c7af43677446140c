#!/usr/bin/env bash
# The paper's UCF-101 fine-tuning: a max-pool and a SoftPool model of MODEL fine-tuned on UCF-101
# (split 1), tested, and compared on the same test videos.
#
#   tools/finetune_ucf101.sh [MODEL] [KEY VALUE ...]
#
# MODEL (default r3d50), the same names as tools/finetune_k700.sh: r3d50, r3d101, r2plus1d50, i3d,
# srtg_r3d50, srtg_r3d101, srtg_r2plus1d50 — configs/ucf101/MODEL_ft.yaml and MODEL_softpool_ft.yaml,
# from the last checkpoints of the HACS runs (train configs/hacs/MODEL*.yaml first). One more:
#   r3d50_from_k700_hara    from 3D-ResNets-PyTorch's Kinetics-700 r3d-50 (weights/r3d50_K_200ep.pth),
#                           max pooling as published vs SoftPool swapped in
# See tools/finetune_compare.sh for PYTHON, LAUNCH and DRY_RUN.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
model=${1:-r3d50}
[ $# -gt 0 ] && shift
if [ "$model" = r3d50_from_k700_hara ]; then
    exec tools/finetune_compare.sh configs/ucf101/r3d50_from_k700_hara.yaml \
        configs/ucf101/r3d50_softpool_from_k700_hara.yaml "$@"
fi
exec tools/finetune_compare.sh "configs/ucf101/${model}_ft.yaml" "configs/ucf101/${model}_softpool_ft.yaml" "$@"
