"""The package build's one addition to pyproject.toml: the compiled forwarding steps
(``sfu._fastpath``, from sfu/fastpath.c through cffi; see sfu/fastpath_build.py)."""

from setuptools import setup

setup(cffi_modules=["sfu/fastpath_build.py:ffi"])
