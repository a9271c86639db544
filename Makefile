# The README's commands. Every target sets up what it needs first, so that
# `.venv/bin/sensord` exists after any of them.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
DEMO_PCAP := pcaps/office/office.pcap
DEMO_LOGS ?= demo-logs

.PHONY: install demo test test-fast bench system clean deep-fuzz deb

install: $(VENV)/.installed
	$(PY) setup.py -q build_ext --inplace

$(VENV)/.installed: pyproject.toml setup.py
	scripts/install-system
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "Cython>=3.0,<4" "setuptools>=77" wheel "numpy>=1.26" "grpcio-tools>=1.85.1,<2"
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $@

demo: install
	rm -rf $(DEMO_LOGS)
	$(VENV)/bin/sensord --replay $(DEMO_PCAP) --logdir $(DEMO_LOGS)
	@echo "logs written to $(DEMO_LOGS)/: $$(ls $(DEMO_LOGS) | tr '\n' ' ')"

test: install
	$(PY) -m pytest -q tests

deep-fuzz: install
	SENSOR_FUZZ=deep $(PY) -m pytest -q tests -k fuzz

bench: install
	$(PY) bench/replay.py

# sensor_<version>_<arch>.deb in build/deb/ (packaging/README.md);
# DEB_VERSION=... builds another version, LINTIAN=0 skips lintian.
deb:
	scripts/install-system
	packaging/build-deb

clean:
	rm -rf build $(VENV) sensor/_ext/*.so ext/*.c demo-logs
