"""Import a script of experiments/ or research/ as a module: those folders hold scripts, not
packages, so the tests load them by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relpath: str, module_name: str) -> ModuleType:
    """Execute ROOT/relpath as a fresh module registered as `module_name` in sys.modules
    (dataclasses resolve string annotations through it, and pickles find its classes)."""
    spec = importlib.util.spec_from_file_location(module_name, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
