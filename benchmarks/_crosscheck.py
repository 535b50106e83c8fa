"""torchattacks, the peer several benchmarks measure against, is installed beside the
environment rather than in it (``<venv>/crosscheck``; its pin of an old ``requests`` cannot
be installed with JupyterLab: see scripts/setup.sh). Importing this module puts that folder
at the end of ``sys.path``, as tests/conftest.py does for the suite, so that it never
shadows an installed package."""
import sys
from pathlib import Path

FOLDER = Path(sys.prefix) / "crosscheck"
if FOLDER.is_dir() and str(FOLDER) not in sys.path:
    sys.path.append(str(FOLDER))
