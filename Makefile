# Every target, in one place (the README's two commands are the first two):
#   make demo       the main job: `robustviz demo` (zoo models -> report/index.html)
#   make test       the test suite on 2 workers, slowest tests listed
#   make setup      what every target runs first: scripts/setup.sh creates .venv with
#                   python3 -m venv if missing, installs robustviz with its dev extras, and
#                   (as root on Debian) apt-gets Fashion-MNIST
#   make teach      scripts/teach.sh: train the six teaching configurations on Fashion-MNIST
#                   from the CLI and check each defense's robust gain over NAT
#   make bench      the attack, training and diagnostics benchmarks (benchmarks/*.py)
#   make lab        JupyterLab on notebooks/ (jupytext pairs NN_*.py with NN_*.ipynb)
#   make notebooks  rewrite every notebook's .ipynb from its .py source, outputs stripped
#   make clean      remove .venv, build/ and the egg-info
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup bench teach clean lab notebooks docs

demo: setup
	$(PY) -m robustviz demo

test: setup
	$(PY) -m pytest -n 2 --dist loadscope --no-loadscope-reorder --durations=10

setup:
	@bash scripts/setup.sh

teach: setup
	@bash scripts/teach.sh

bench: setup
	$(PY) benchmarks/attacks.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/diagnostics.py

lab: setup
	$(VENV)/bin/jupyter lab notebooks

notebooks: setup
	$(PY) -m robustviz notebooks sync

# The site (build/site/index.html): executed notebooks, API reference, quick start, sample
# report; offline. Reuses the executed notebooks in build/notebooks/ (make test writes them)
# whose source is unchanged and executes the others (all 13: about 12 minutes on 2 cores).
docs: setup
	$(PY) scripts/build_docs.py

clean:
	rm -rf $(VENV) build *.egg-info
