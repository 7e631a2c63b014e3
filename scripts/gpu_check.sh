#!/usr/bin/env bash
# GPU check: ResNet-18 (fp32, bf16, bf16 + channels_last, + torch.compile), DeepFM and a
# one-process torchrun run through dltune's own loop; samples/s and peak GPU memory of each.
#
#   bash scripts/gpu_check.sh [--quick]
#
# Run from anywhere; dltune need not be installed (the repository goes on PYTHONPATH).
# Environment: PYTHON (default python), GPU_CHECK_OUT (where gpu.md goes, default bench/results).
# About 5 minutes on one H100. Without a CUDA device it says so and exits 0 without writing anything.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export PYTHON=${PYTHON:-python}
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
OUT=${GPU_CHECK_OUT:-bench/results}

# Import (not just find) each package, so a broken install counts as missing too.
"$PYTHON" - <<'PY' || exit 2
import importlib
import sys

needed = {"torch": "torch", "torchvision": "torchvision", "yaml": "pyyaml", "numpy": "numpy",
          "pyarrow": "pyarrow", "pandas": "pandas", "tensorboard": "tensorboard"}
missing = []
for module, package in needed.items():
    try:
        importlib.import_module(module)
    except ImportError as exc:
        missing.append(f"{package} ({exc})")
if missing:
    print("gpu_check: missing Python packages: " + "; ".join(missing), file=sys.stderr)
    print(f"gpu_check: install them into {sys.executable}, e.g. pip install " + " ".join(m.split()[0] for m in missing), file=sys.stderr)
    sys.exit(1)
PY

exec "$PYTHON" bench/gpu_throughput.py --out "$OUT" "$@"
