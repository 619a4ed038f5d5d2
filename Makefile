# ddml: the two commands of the README are `make demo` and `make test`.
# Both do all the set-up they need (`make install`) on a fresh machine.
#
#   DDML_VENV      virtual environment to use/create (default: .venv here)
#   PYTEST_ARGS    extra arguments for pytest (e.g. -m "not slow")
#   DEMO_ARGS      extra arguments for the demo (e.g. --iters 2000)

SHELL := /bin/bash
DDML_VENV ?= $(CURDIR)/.venv
export DDML_VENV
PYTHON := $(DDML_VENV)/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help install test demo waymo-oracle clean

help:
	@echo "make install       create $(DDML_VENV) with the pinned stack (mmcv builds from source once: 10 min on 2 cores, measured)"
	@echo "make test          install if needed, then run the test suite"
	@echo "make demo          install if needed, then render the synthetic KITTI data, train and compare baseline and method"
	@echo "make waymo-oracle  build the separate TensorFlow environment holding Waymo's own metric op (for cross-checks)"

install:
	@bash tools/install_stack.sh

test: install
	$(PYTHON) -m pytest tests $(PYTEST_ARGS)

demo: install
	$(PYTHON) tools/run_demo.py $(DEMO_ARGS)

waymo-oracle:
	@bash tools/setup_waymo_oracle.sh

clean:
	rm -rf work_dirs .pytest_cache
