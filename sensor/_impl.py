"""Pick the compiled fast paths or their pure-Python twins, once, at import.

Set ``SENSOR_NO_EXTENSIONS=1`` to force the pure-Python twins; the same tests
run against both. When the compiled modules are missing (not built yet) the
twins are used and :data:`COMPILED` says so.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: True when the environment asks for the pure-Python twins.
FORCED_PYTHON = os.environ.get("SENSOR_NO_EXTENSIONS", "") not in ("", "0")


def load(compiled: str, twin: str) -> ModuleType:
    """Return the compiled module ``sensor._ext.<compiled>`` or the twin.

    The twin (a dotted module path under ``sensor``) is used when
    SENSOR_NO_EXTENSIONS is set or when the extension was not built.
    """
    if not FORCED_PYTHON:
        try:
            return importlib.import_module(f"sensor._ext.{compiled}")
        except ImportError:
            pass
    return importlib.import_module(twin)


def compiled_available(compiled: str) -> bool:
    """Whether ``sensor._ext.<compiled>`` was built and imports."""
    try:
        importlib.import_module(f"sensor._ext.{compiled}")
    except ImportError:
        return False
    return True
