# The two commands of the README: `make demo` (the main job) and `make test` (the whole suite).
# Both do all set-up first (scripts/setup.sh: apt packages + .venv), so they work on a fresh
# Debian machine.  Run as root.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test bench notebooks clean

setup:
	./scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests notebooks --nbval --nbval-sanitize-with notebooks/sanitize.cfg

bench: setup
	$(PY) bench/run.py

notebooks: setup  # re-run the tutorials and store their outputs (never the widgets' state)
	$(PY) scripts/refresh_notebooks.py

clean:
	rm -rf .venv build *.egg-info .pytest_cache
