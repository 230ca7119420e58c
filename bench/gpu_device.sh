#!/usr/bin/env bash
# The GPU run on a lent CUDA machine (torch and sentence-transformers installed, no package index):
# a venv over the machine's own packages, the server's missing wheels from build/gpu-wheels
# (bench/gpu_wheels.sh, carried along), then bench/gpu.py once; its report goes to $OUT (the
# folder a device run brings back) or bench/runs.
#
#   run(command="bash bench/gpu_device.sh", carry=["build/gpu-wheels"], timeout_s=580)
#   bash bench/gpu_device.sh --dry-run      # the same steps on a CPU (tiny shapes)
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=build/gpu-wheels
[ -d "$wheels" ] || { echo "no $wheels: run bash bench/gpu_wheels.sh first" >&2; exit 2; }
venv=${GPU_VENV:-/tmp/reranker-gpu-venv}
python3 -m venv --system-site-packages "$venv"
pip=("$venv/bin/python" -m pip install -q --no-index --find-links "$wheels")
# where the machine's versions already satisfy the project's ranges they stay
"${pip[@]}" "transformers>=5,<6" "tokenizers>=0.22,<1" "fastapi>=0.110" "uvicorn>=0.29" \
    "prometheus-client>=0.20" "huggingface-hub>=0.23" "pyjwt[crypto]>=2.8,<3" "httpx>=0.27,<1" \
    "pydantic>=2.6,<3" pyyaml
"${pip[@]}" --no-deps "sentence-transformers>=3"
export PYTHONPATH="$PWD/server:$PWD/contract:$PWD/devtools${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$venv/bin/python" - <<'PY'
import torch, transformers, sentence_transformers
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, available {torch.cuda.is_available()}), "
      f"transformers {transformers.__version__}, sentence-transformers {sentence_transformers.__version__}")
PY
out=${OUT:-bench/runs}
"$venv/bin/python" bench/gpu.py --out "$out" "$@"
