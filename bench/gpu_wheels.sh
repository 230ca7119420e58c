#!/usr/bin/env bash
# The wheels the GPU run needs beyond what a CUDA machine with torch already has, downloaded here
# (that machine reaches no package index) into build/gpu-wheels, under the 64 MiB a device run
# may carry: the server's dependencies at the lock's versions for CPython 3.11-3.13 (the project needs >= 3.11), without
# torch, the CUDA libraries and numpy (the machine's own are used).
#
#   bash bench/gpu_wheels.sh            # then bench/gpu_device.sh runs there
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/gpu-wheels
rm -rf "$out" && mkdir -p "$out"
PY=${PY:-.venv/bin/python}
reqs=(transformers tokenizers fastapi uvicorn prometheus-client huggingface-hub "pyjwt[crypto]"
      httpx pydantic pyyaml)
common=(-q --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --implementation cp -c constraints/lock.txt -d "$out")
for version in 3.11 3.12 3.13; do
    echo "-- wheels for CPython $version"
    "$PY" -m pip download "${common[@]}" --python-version "$version" "${reqs[@]}" 2>&1 \
        | grep -v "^WARNING: Location" || true
done
# sentence-transformers (the baseline) without its dependencies: they pull torch and its CUDA
# libraries, which the machine has
"$PY" -m pip download -q --no-deps -c constraints/lock.txt -d "$out" sentence-transformers 2>&1 \
    | grep -v "^WARNING: Location" || true
# what the machine brings itself (torch with its CUDA libraries, numpy, scipy, scikit-learn)
find "$out" \( -name 'torch-*' -o -name 'nvidia_*' -o -name 'triton-*' -o -name 'numpy-*' \
    -o -name 'scipy-*' -o -name 'scikit_learn-*' -o -name 'sympy-*' -o -name 'networkx-*' \
    -o -name 'cuda_*' -o -name 'setuptools-*' \) -delete
size=$(du -sm "$out" | cut -f1)
echo "build/gpu-wheels: $(find "$out" -name "*.whl" | wc -l) wheels, ${size} MiB"
if [ "$size" -gt 56 ]; then
    echo "too large to carry with the tree (64 MiB in all)" >&2
    exit 1
fi
