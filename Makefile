# Two commands for a new user: `make train` and `make test` (`make test-fast`: the suite without the tests marked
# slow, the long trainers; minutes instead of ~12 on 2 cores). On first use they create .venv and install the pinned
# requirements; they re-install only when a requirements file changed (the stamp is older than it).
# Users who manage their own environment pass it: `make test PYTHON=/path/to/python` (nothing is installed then).

VENV      ?= .venv
SEED      ?= 202003
ARGS      ?=
PYTEST_ARGS ?=
# pytest-xdist workers; each test module stays on one worker (its fixtures are built once). 0: one process.
TEST_WORKERS ?= 2

ifdef PYTHON
PY    := $(PYTHON)
DEPS  :=
else
PY    := $(VENV)/bin/python
DEPS  := $(VENV)/.requirements.stamp
endif

.PHONY: train test test-fast ray export clean-venv

$(VENV)/.requirements.stamp: requirements.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

# Optional: Ray for `train.py --launcher ray` (requirements-ray.txt), into the same environment (CI runs it).
ray: $(DEPS)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-ray.txt

# Optional: onnx, onnxruntime, onnxscript for `export.py --format onnx` (requirements-export.txt; CI runs it).
export: $(DEPS)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-export.txt

train: $(DEPS)
	$(PY) train.py --seed $(SEED) $(ARGS)

test: $(DEPS)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# The quick tier while working: every test but those marked slow (pytest.ini), on the same workers.
test-fast: $(DEPS)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not slow" $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
