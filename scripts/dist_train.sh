#!/usr/bin/env bash
# Run a dltune training job under torchrun, one call per node.
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0.example bash scripts/dist_train.sh 8 \
#       --config configs/ctr_deepfm.yaml data.path=hdfs://ns/path data.label_cols=label
#
# Environment: NNODES (default 1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# MASTER_PORT (29500), PYTHON (python). First argument: processes per node
# (default: the number of visible GPUs, else 1). The rest goes to dltune:
# --config FILE, key=value overrides, --resume, --overwrite.
# With GPUs visible, scaling.use_gpu=true is passed (backend nccl); without, gloo on CPU.
set -euo pipefail

NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
PYTHON=${PYTHON:-python}

count_gpus() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
  else
    "$PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0
  fi
}

GPUS=$(count_gpus)
GPUS=${GPUS:-0}
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  NPROC_PER_NODE=$1
  shift
elif [[ $GPUS -gt 0 ]]; then
  NPROC_PER_NODE=$GPUS
else
  NPROC_PER_NODE=1
fi

EXTRA=()
if [[ $GPUS -gt 0 ]]; then
  EXTRA+=(scaling.use_gpu=true)
fi

echo "dist_train: node ${NODE_RANK}/${NNODES}, ${NPROC_PER_NODE} process(es) per node, master ${MASTER_ADDR}:${MASTER_PORT}, GPUs visible: ${GPUS}" >&2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# User arguments come after EXTRA so an explicit scaling.use_gpu=false still wins.
exec "$PYTHON" -m torch.distributed.run \
  --nnodes "$NNODES" --node_rank "$NODE_RANK" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  --nproc_per_node "$NPROC_PER_NODE" \
  -m dltune.launch.torchrun ${EXTRA[@]+"${EXTRA[@]}"} "$@"
