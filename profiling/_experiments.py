"""Load an `experiments/` script as a module (experiments/ is a folder of scripts, not a package),
so a harness can run the real experiment or read its per-task defaults."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_experiment(name: str) -> ModuleType:
    """experiments/<name>.py, imported once per process as module `<name>_experiment`."""
    module_name = f"{name}_experiment"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
