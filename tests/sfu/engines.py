"""The compiled steps' module, for the tests that hold it byte for byte to the Python path.

``fastpath`` is :mod:`sfu.fastpath` (the package build makes it: a test that uses it fails
when it is missing). ``COMPILED``: this process runs the compiled engine; tests that build
tracks and subscriptions through the engine and check the compiled path are skipped on the
Python engine (``SFU_FASTPATH=0``), and tests/sfu/test_fastpath.py fails if the engine is
Python without being asked to be.
"""

from __future__ import annotations

import importlib
from typing import Any

from sfu.engine import ENGINE

COMPILED = ENGINE.name == "compiled"
try:
    fastpath: Any = importlib.import_module("sfu.fastpath")
except ImportError:  # not built: the tests that need it fail on it
    fastpath = None
