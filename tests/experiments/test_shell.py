"""experiments/shell.py --no-repl builds the namespace the REPL opens with."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_shell_namespace_and_plan(capsys):
    spec = importlib.util.spec_from_file_location("shell_script", ROOT / "experiments" / "shell.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["shell_script"] = module
    spec.loader.exec_module(module)
    ns = module.main(["--no-repl"])
    printed = capsys.readouterr().out
    for name in ("jax", "jnp", "np", "envs", "models", "planning", "agents", "graphs", "env",
                 "model", "model_state", "planner", "plan", "obs"):
        assert name in ns and name in printed
    before = np.asarray(ns["plan_state"].mean)
    action = np.asarray(ns["plan"](ns["obs"]))
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
    assert not np.array_equal(before, np.asarray(ns["plan_state"].mean))  # warm start kept
    assert ns["data"].obs.shape == (50, 10)
