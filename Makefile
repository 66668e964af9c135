# `make demo` and `make test` work on a fresh machine: each first makes sure the
# virtual environment and the Debian tools exist (both steps are idempotent).

VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
DEBIAN_TOOLS := c2enc:codec2 opusenc:opus-tools ffmpeg:ffmpeg sox:sox espeak-ng:espeak-ng

.PHONY: setup system-tools demo test lint corpus clean

setup: $(STAMP) system-tools

$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Installs only the Debian packages whose command is missing.
system-tools:
	@missing=""; \
	for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: setup
	$(PYTHON) examples/demo.py

test: setup
	$(PYTHON) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check unicomp tests benchmarks examples
	$(VENV)/bin/mypy

corpus: setup
	$(PYTHON) benchmarks/corpus.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
