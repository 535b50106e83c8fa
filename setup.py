"""Packaging beyond what pyproject.toml declares: the teaching zoo goes into the wheel.

The zoo stays at ``data/zoo/`` in the repository (its configs, scripts and manifest name it
there); in a wheel it becomes the package data folder ``robustviz/zoo_data/``, so that
``pip install robustviz-*.whl`` carries the models the demo and the notebooks load, with
their sha256 manifest (checked on every load). :func:`robustviz.zoo.root` looks there first.
"""
from pathlib import Path

from setuptools import find_packages, setup

ZOO = Path(__file__).resolve().parent / "data" / "zoo"
# every <dataset>/<model> folder is a data-only package under robustviz.zoo_data (listed so
# that setuptools neither warns about nor skips folders it sees as importable)
zoo_packages = ["robustviz.zoo_data"] + sorted(
    "robustviz.zoo_data." + p.relative_to(ZOO).as_posix().replace("/", ".")
    for p in ZOO.glob("*/*") if p.is_dir()) + sorted(
    f"robustviz.zoo_data.{p.name}" for p in ZOO.glob("*") if p.is_dir())

setup(
    packages=find_packages(include=["robustviz", "robustviz.*"]) + zoo_packages,
    package_dir={"robustviz.zoo_data": "data/zoo"},
    # the report page's Jinja2 template lives beside the report package's modules
    package_data={"robustviz.report": ["*.j2"], "robustviz.zoo_data": ["MANIFEST.json"],
                  **{p: ["*"] for p in zoo_packages[1:]}},
    exclude_package_data={p: [".*"] for p in zoo_packages},
)
