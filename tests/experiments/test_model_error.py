"""experiments/model_error.py: the error bookkeeping against hand-made episodes, one tiny run, and
bad input."""

import csv
import json

import numpy as np
import pytest

from prototypes.types import Transition
from tests.scripts import load_script


@pytest.fixture(scope="module")
def me():
    return load_script("experiments/model_error.py", "model_error_script")


def _episode(positions: np.ndarray) -> Transition:
    """An episode whose 1-D observation is the object's x position at each step."""
    obs = positions[:-1, None].astype(np.float32)
    nxt = positions[1:, None].astype(np.float32)
    T = obs.shape[0]
    return Transition(
        obs=obs,
        action=np.zeros((T, 1), np.float32),
        reward=np.zeros(T, np.float32),
        next_obs=nxt,
        done=np.zeros(T, bool),
    )


def test_object_errors_of_a_model_that_predicts_no_motion(me):
    # the object sits still, is pushed 5 mm per step for two steps, then sits still again
    x = np.array([0.0, 0.0, 0.005, 0.010, 0.010, 0.010])
    still = lambda obs, action: obs  # noqa: E731
    err = me.object_errors(still, [_episode(x)], slice(0, 1), horizon=2, threshold=1e-3)
    # one step: the error is the real motion, 5 mm on the two contact steps (1 and 2), else 0
    np.testing.assert_allclose(err["one_step"], [0, 0.005, 0.005, 0, 0], atol=1e-7)
    assert err["one_contact"].tolist() == [False, True, True, False, False]
    # two steps from s_t: |x_{t+2} - x_t| for t = 0..3: 5, 10, 5, 0 mm; windows 0-2 hold contact
    np.testing.assert_allclose(err["k_step"], [0.005, 0.010, 0.005, 0.0], atol=1e-7)
    assert err["k_contact"].tolist() == [True, True, True, False]
    assert err["k_episode"].tolist() == [0, 0, 0, 0] and err["k_start"].tolist() == [0, 1, 2, 3]
    two = me.object_errors(still, [_episode(x), _episode(x[:4])], slice(0, 1), 2, 1e-3)
    assert two["k_episode"].tolist() == [0, 0, 0, 0, 1, 1]  # 3 steps: windows at 0 and 1
    assert two["k_start"].tolist() == [0, 1, 2, 3, 0, 1]
    rows = me.summarise("still", err, 2)
    by = {(r["steps"], r["split"]): (round(r["mean_error_m"], 7), r["count"]) for r in rows}
    assert by == {
        (1, "contact"): (0.005, 2),
        (1, "no_contact"): (0.0, 3),
        (2, "contact"): (round(0.02 / 3, 7), 3),
        (2, "no_contact"): (0.0, 1),
    }


def test_a_perfect_model_has_zero_error(me):
    x = np.array([0.0, 0.002, 0.004, 0.004])
    lookup = {round(float(a), 6): float(b) for a, b in zip(x[:-1], x[1:], strict=True)}
    exact = lambda obs, action: np.array([[lookup[round(float(o[0]), 6)]] for o in obs])  # noqa: E731
    err = me.object_errors(exact, [_episode(x)], slice(0, 1), horizon=3, threshold=1e-3)
    assert np.all(err["one_step"] < 1e-7) and np.all(err["k_step"] < 1e-7)


@pytest.mark.slow
def test_tiny_run_writes_metrics_plot_and_csv(me, tmp_path):
    out, table = tmp_path / "run", tmp_path / "errors.csv"
    argv = ["--models", "ensemble", "--train-episodes", "2", "--test-episodes", "2"]
    me.main(argv + ["--horizon", "3", "--out", str(out), "--results-csv", str(table)])
    every = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    lines = [r for r in every if r["model"] == "ensemble"]
    # beside it, the reference that predicts no motion: 4 rows, fitted on nothing
    still = [r for r in every if r["model"] == "no_motion"]
    assert len(still) == 4 and all(r["train_transitions"] == 0 for r in still)
    assert {(r["steps"], r["split"]) for r in lines} == {
        (1, "contact"),
        (1, "no_contact"),
        (3, "contact"),
        (3, "no_contact"),
    }
    # 2 held-out episodes of 50 steps: 100 one-step errors and 2 x 48 three-step windows
    assert sum(r["count"] for r in lines if r["steps"] == 1) == 100
    assert sum(r["count"] for r in lines if r["steps"] == 3) == 96
    assert all(r["train_transitions"] == 100 for r in lines)
    assert (out / "plots" / "model_error.png").stat().st_size > 0
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 8 and {r["model"] for r in rows} == {"ensemble", "no_motion"}


def test_changed_model_fields_name_the_rows_and_the_results_csv(me):
    """A lever run is reported under the fields it changed and never overwrites the default CSV;
    --ensemble.* and --structured.* reach the models that are built."""
    default, _ = me.COMMAND.parse([])
    assert default.label("structured") == "structured" and default.label("ensemble") == "ensemble"
    assert str(default.results_path) == "experiments/results/model_error_fetch_push_0.csv"
    # the structured model's defaults before 2026-12-05, as flags
    earlier = ["--structured.nll-beta", "0", "--structured.rollout-horizon", "0"]
    cfg, _ = me.COMMAND.parse(["--seed", "2", *earlier, "--no-structured.surface-features"])
    assert not cfg.model_config("structured").surface_features and cfg.structured.nll_beta == 0
    assert cfg.label("structured") == (
        "structured nll_beta=0.0 rollout_horizon=0 surface_features=False"
    )
    assert cfg.label("ensemble") == "ensemble"
    assert str(cfg.results_path) == (
        "experiments/results/model_error_fetch_push_2_structured-nll_beta0.0_"
        "structured-rollout_horizon0_structured-surface_featuresoff.csv"
    )
    off, _ = me.COMMAND.parse(["--no-structured.solid-top", "--results-csv", ""])
    assert off.label("structured") == "structured solid_top=False" and off.results_path is None


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--env", "reacher"], "env 'reacher' has no object to push"),
        (["--models", "gp"], "unknown model 'gp'"),
        (["--models", "oracle"], "model 'oracle' is not a learned model of continuous actions"),
        (["--horizon", "0"], "horizon must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_line(me, argv, fragment, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        me.main(argv + ["--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1] and err[-1].startswith("model_error.py: error:")
