"""experiments/shell.py --no-repl builds the namespace the REPL opens with."""

from pathlib import Path

import numpy as np
import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_shell_namespace_and_plan(capsys):
    module = load_script("experiments/shell.py", "shell_script")
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
