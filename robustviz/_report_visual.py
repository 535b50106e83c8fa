"""Moved to :mod:`robustviz.report.visual`; this name stays so that old imports work
(``import robustviz._report_visual`` gives that module itself)."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("robustviz.report.visual")
