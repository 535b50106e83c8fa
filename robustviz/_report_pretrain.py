"""Moved to :mod:`robustviz.report.pretrain`; this name stays so that old imports work
(``import robustviz._report_pretrain`` gives that module itself)."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module("robustviz.report.pretrain")
