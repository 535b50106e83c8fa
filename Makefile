# The README's two commands: `make demo` (the main job) and `make test` (the suite).
# Both run scripts/setup.sh first: it creates .venv with python3 -m venv if missing,
# installs robustviz with its dev extras, and (as root on Debian) apt-gets Fashion-MNIST.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup bench teach clean lab notebooks docs

demo: setup
	$(PY) -m robustviz demo

test: setup
	$(PY) -m pytest -n 2 --dist loadscope --durations=10

setup:
	@bash scripts/setup.sh

teach: setup
	@bash scripts/teach.sh

bench: setup
	$(PY) benchmarks/attacks.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/diagnostics.py

# JupyterLab on the notebooks (jupytext pairs NN_*.py with NN_*.ipynb; widgets work).
lab: setup
	$(VENV)/bin/jupyter lab notebooks

# Rewrite every notebook's .ipynb from its .py source, outputs stripped.
notebooks: setup
	$(PY) -m robustviz notebooks sync

# The site (build/site/index.html): executed notebooks, API reference, quick start, sample
# report; offline. Reuses the executed notebooks in build/notebooks/ (make test writes them)
# whose source is unchanged and executes the others (all 13: about 12 minutes on 2 cores).
docs: setup
	$(PY) scripts/build_docs.py

clean:
	rm -rf $(VENV) build *.egg-info
