# Two commands do everything: `make demo` and `make test` (see README.md).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := data/demo
RESULTS ?= results

.PHONY: env demo test figures clean-demo

# torch is pinned first so pip takes the CPU wheel on this disk instead of a CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

env: $(STAMP)

$(DEMO)/mmneuro.toml: | $(STAMP)
	$(BIN)/mmneuro datasets demo --out $(DEMO) --overwrite

demo: $(STAMP) $(DEMO)/mmneuro.toml
	HF_HUB_OFFLINE=1 $(BIN)/mmneuro encode --dataset $(DEMO) --model minilm --subject 1 --out $(RESULTS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# Every figure the README shows, from analyses/fig_*.py (features come from the cache when present).
figures: $(STAMP) $(DEMO)/mmneuro.toml
	for script in analyses/fig_*.py; do MMNEURO_DEMO=$(DEMO) HF_HUB_OFFLINE=1 $(BIN)/python $$script --out figures || exit 1; done

clean-demo:
	rm -rf $(DEMO)
