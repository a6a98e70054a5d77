#!/usr/bin/env bash
# torchrun for the tools/*.py entry points; used by dist_train.sh and
# dist_test.sh.
#   bash tools/torchrun.sh NPROC_PER_NODE SCRIPT [script args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR (and MASTER_PORT or PORT)
# on every node.
set -euo pipefail
NPROC=$1
SCRIPT=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-${MASTER_PORT:-29500}}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python3}

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    "$SCRIPT" "${@:3}"
