#!/usr/bin/env bash
# Distributed training with torchrun, for mmpretrain / mmdet / mmseg configs.
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT) on every
# node. Without CUDA the processes use the gloo backend on CPU.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py args...]" >&2
  exit 2
fi
TOOLS=$(dirname "$0")
exec bash "$TOOLS/torchrun.sh" "$2" "$TOOLS/train.py" "$1" \
    --launcher pytorch "${@:3}"
