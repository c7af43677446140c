#!/usr/bin/env bash
# The paper's Kinetics-700 fine-tuning: the HACS-trained max-pool and SoftPool models (run their
# configs/hacs/ configs first) fine-tuned on Kinetics-700, tested, and compared with McNemar's test.
#
#   tools/finetune_k700.sh [MODEL] [KEY VALUE ...]     MODEL: r3d50 (default) or i3d
#
# uses configs/kinetics700/MODEL_ft.yaml and MODEL_softpool_ft.yaml; see tools/finetune_compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-r3d50}
[ $# -gt 0 ] && shift
exec tools/finetune_compare.sh "configs/kinetics700/${model}_ft.yaml" "configs/kinetics700/${model}_softpool_ft.yaml" "$@"
