# The two commands a newcomer needs:  `make demo`  and  `make test`.
# Everything installs into .venv; torch is pinned to the CPU build first so that no
# multi-GB CUDA wheel is pulled on a laptop or in CI.
PYTHON ?= python3
# The folder operator/ would shadow the standard library's `operator` for any `python -m ...`
# run from the repository root (Python puts the working directory first on sys.path).
# PYTHONSAFEPATH (Python 3.11+) stops that for every Python process make starts.
export PYTHONSAFEPATH := 1
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-bench demo test bench render sync-crds e2e clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -c constraints/torch-cpu.txt -e '.[server,operator,test]'
	touch $@

install-bench: install
	$(PY) -m pip install -q -c constraints/torch-cpu.txt -e '.[bench]'

## demo: emulated Kubernetes API + the real operator + the real server on a tiny offline model
demo: install
	$(PY) -m reranker_operator.demo

## test: the whole suite (no cluster, no GPU, no network)
test: install
	$(PY) -m pytest -q

bench: install-bench
	$(PY) bench/run.py

render: install
	$(VENV)/bin/reranker-operator render -f examples/qwen3-reranker-0.6b.yaml

## sync-crds: kustomize cannot reach ../crds, so deploy/ keeps a copy (a test checks they match)
sync-crds:
	cp crds/rerankerservices.yaml deploy/crds/rerankerservices.yaml

e2e:
	bash tests/e2e/kind-e2e.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
