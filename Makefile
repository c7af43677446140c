# make install  - create .venv (unless a virtualenv is active), install pinned torch and the
#                 dependencies, and build vidpool._C in place (pip install -e).
# make test     - install if needed, then run the test suite.
# make bench    - run the pooling, model and data benchmarks.
PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vidpool-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
BUILD_INPUTS := setup.py requirements.txt $(wildcard csrc/*.h csrc/*.cpp csrc/*.cu)

.PHONY: install test bench clean

install: $(STAMP)

$(STAMP): $(BUILD_INPUTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --no-build-isolation -e .
	$(PY) -c "import vidpool.ops as o; print('vidpool installed; SoftPool backend on CPU:', o.backend('cpu'))"
	touch $(STAMP)

test: install
	$(PY) -m pytest tests

bench: install
	$(PY) tools/benchmark_pooling.py
	$(PY) tools/benchmark_models.py
	$(PY) tools/benchmark_data.py

clean:
	rm -rf build *.egg-info vidpool/_C*.so $(STAMP)
