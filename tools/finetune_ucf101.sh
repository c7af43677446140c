#!/usr/bin/env bash
# The paper's UCF-101 fine-tuning: a max-pool and a SoftPool model fine-tuned on UCF-101 (split 1),
# tested, and compared with McNemar's test.
#
#   tools/finetune_ucf101.sh [PAIR] [KEY VALUE ...]
#
# PAIR names the max-pool config in configs/ucf101/; its SoftPool twin has "_softpool" after the
# first word:
#   r3d50_ft (default)      from the HACS-trained r3d-50s (run configs/hacs/r3d50*.yaml first)
#   i3d_ft                  from the HACS-trained I3Ds
#   r3d50_from_k700_hara    from 3D-ResNets-PyTorch's Kinetics-700 r3d-50 (weights/r3d50_K_200ep.pth),
#                           max pooling as published vs SoftPool swapped in
# See tools/finetune_compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
pair=${1:-r3d50_ft}
[ $# -gt 0 ] && shift
exec tools/finetune_compare.sh "configs/ucf101/${pair}.yaml" "configs/ucf101/${pair%%_*}_softpool_${pair#*_}.yaml" "$@"
