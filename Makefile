# `make demo` and `make test` set everything up on a fresh machine (venv + requirements + facecore,
# installed editable, with the checkout's root on the venv's path for the notebooks' config.py) and run.
# Users install the package alone: pip install . (dependencies from pyproject.toml; facecore-realtime).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test smoke full bench clean-runs

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing requirements.txt into $(VENV) (first run only) ..."
	@$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
	@echo "installing facecore into $(VENV) (editable: notebooks, tests, benches and realtime.py import it from anywhere) ..."
	@$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e . 2>/dev/null \
		|| $(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@# the notebooks' config.py is not part of the package: the checkout's root goes on the dev venv's path
	@$(PY) -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'facecore-checkout.pth').write_text('$(CURDIR)\n')"
	@cd /tmp && $(abspath $(PY)) -c "import torch, facenet_pytorch, efficientnet_pytorch, cv2, papermill, facecore, config" \
		|| (echo "install failed"; exit 1)
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

demo: $(STAMP)
	$(PY) -m facecore.pipeline --profile demo

test: $(STAMP)
	$(PY) -m pytest tests

smoke: $(STAMP)
	$(PY) -m facecore.pipeline --profile smoke

full: $(STAMP)
	$(PY) -m facecore.pipeline --profile full

clean-runs:
	rm -rf runs
