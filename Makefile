# The README's two commands: `make demo` (the embedded benchmark) and `make test` (the test suite).
# Both create .venv, install hirobust with everything it needs and obtain the offline data first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.hirobust-installed
DEBS   := dataset-fashion-mnist wordnet-base wordnet-sense-index

.PHONY: demo test setup data lint bench clean

demo: setup data
	$(BIN)/hirobust demo

test: setup data
	$(BIN)/python -m pytest -q

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); if [ "$$free" -lt 8 ]; then \
	  echo "warning: $${free} GB free here; PyTorch with its CUDA libraries takes about 6 GB in $(VENV) and pip stops" \
	       "with 'No space left on device' when it runs out: free some space first (old clones' .venv folders)"; fi
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'   # pip's own progress: installing torch takes minutes
	# a test dependency: its class-name and template lists (tests/test_clip_benchmark.py); its own heavy
	# dependencies (transformers, pycocoevalcap, webdataset) are not needed to read them
	$(BIN)/python -m pip install --no-deps 'clip-benchmark==1.6.2'
	touch $(STAMP)

# Fashion-MNIST and WordNet from Debian packages when we are root on Debian/Ubuntu and they are missing;
# elsewhere hirobust looks in its data root, then torchvision's download, and says what to install.
data:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	fi

lint: setup
	$(BIN)/ruff check src tests benchmarks tools

clean:
	rm -rf $(VENV) runs .pytest_cache
