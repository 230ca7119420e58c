# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Everything installs into .venv from one lock (constraints/lock.txt, compiled by `make lock`);
# torch is pinned to the CPU build first so that no multi-GB CUDA wheel is pulled on a laptop
# or in CI.
PYTHON ?= python3
# The folder operator/ would shadow the standard library's `operator` for any `python -m ...`
# run from the repository root (Python puts the working directory first on sys.path).
# PYTHONSAFEPATH (Python 3.11+) stops that for every Python process make starts.
export PYTHONSAFEPATH := 1
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
EXTRAS := server,operator,test

.PHONY: install install-bench demo test test-latest lock bench render generate crds e2e clean

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

## test: the whole suite (no cluster, no GPU, no network)
test: install
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

## lock: recompile $(LOCK) from pyproject.toml (every extra) and devtools/pyproject.toml for
## CPython 3.11 on x86_64 Linux (CI and both images); torch is pinned at $(TORCH_VERSION).
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

bench: install-bench
	$(PY) bench/run.py

render: install
	$(VENV)/bin/reranker-operator render -f examples/qwen3-reranker-0.6b.yaml

## generate: rewrite every generated file from its source (reranker_devtools.generate; a test
## fails when a committed one differs): the Prometheus Adapter rules, the CRD (from the spec
## models in operator/spec.py) and deploy/'s copy of it, the field reference.
generate: install
	$(PY) -m reranker_devtools.generate

## crds: the CRD and everything made from it; the same files as `make generate`.
crds: generate

e2e:
	bash tests/e2e/kind-e2e.sh

clean:
	rm -rf $(VENV) $(LATEST_VENV) $(LOCK_VENV) .pytest_cache build *.egg-info
