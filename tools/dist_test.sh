#!/usr/bin/env bash
# Distributed evaluation with torchrun, for mmpretrain / mmdet / mmseg configs.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT) on every
# node. Without CUDA the processes use the gloo backend on CPU.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]" >&2
  exit 2
fi
TOOLS=$(dirname "$0")
exec bash "$TOOLS/torchrun.sh" "$3" "$TOOLS/test.py" "$1" "$2" \
    --launcher pytorch "${@:4}"
