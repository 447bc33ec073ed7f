"""A world model registered in one place (here, in the test) runs under pets.py, mcts.py and
mbpo.py with no edit to them: `--model toy` and its `--model.<field>` flags come from the
registry."""

import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from prototypes.config import arg, check
from prototypes.models import registry
from prototypes.models.base import WorldModel
from prototypes.types import Step
from tests.scripts import load_script


@dataclass(frozen=True)
class MeanDeltaConfig:
    shrink: float = arg(1.0, "the predicted change is shrink x the mean change in the data")

    def __post_init__(self) -> None:
        check(self.shrink >= 0, f"shrink must be >= 0, got {self.shrink}")


def make_mean_delta(cfg: MeanDeltaConfig, spec) -> WorldModel:
    """next obs = obs + shrink * mean(next_obs - obs) over the data it was fit on; the task's
    own reward and termination. Its summary counts the transitions of the last fit."""
    reward_fn, done_fn = jax.vmap(spec.reward_fn), jax.vmap(spec.done_fn)

    def init(key, example):
        del key
        return {"delta": jnp.zeros_like(example.obs), "seen": jnp.int32(0)}

    def predict(state, key, obs, action):
        del key
        nxt = obs + cfg.shrink * state["delta"][None, :]
        return Step(obs=nxt, reward=reward_fn(obs, action, nxt), done=done_fn(nxt))

    def fit(state, key, data):
        del key
        delta = jnp.mean(data.next_obs - data.obs, axis=0)
        return {"delta": delta, "seen": jnp.int32(data.obs.shape[0])}, {"toy/loss": 0.0}

    def summary(state):
        return {"model/toy_transitions": int(state["seen"])}

    return WorldModel(init=init, predict=predict, fit=fit, name="toy", summary=summary)


@pytest.fixture
def toy():
    # the one registration line a new model needs
    registry.register_model(
        "toy", MeanDeltaConfig, lambda cfg, spec, env: make_mean_delta(cfg, spec), "mean delta"
    )
    yield "toy"
    registry.unregister_model("toy")


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _config(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())["config"]


TOY = ["--model", "toy", "--model.shrink", "0.5", "--no-progress"]


@pytest.mark.slow
def test_toy_model_runs_under_pets(toy, tmp_path):
    pets = load_script("experiments/pets.py", "pets_toy")
    out = tmp_path / "pets"
    argv = ["--env", "reacher", "--episodes", "3", "--population", "8", "--elites", "2"]
    argv += ["--variant", "mass=A"]  # and on a task variant: the env is built by make(variant=)
    pets.main(
        argv + ["--horizon", "2", "--iterations", "1", "--particles", "1", *TOY, "--out", str(out)]
    )
    cfg, records = _config(out), _records(out)
    assert cfg["model_kind"] == "toy" and cfg["model.shrink"] == 0.5
    assert cfg["variant"] == "mass=A"
    assert "model.hidden_size" not in cfg  # the ensemble's fields belong to the ensemble
    # refits after episodes 1 and 2 of 50 steps see all data so far
    assert [r.get("model/toy_transitions") for r in records] == [50, 100, None]


@pytest.mark.slow
def test_toy_model_runs_under_mcts(toy, tmp_path):
    mcts = load_script("experiments/mcts.py", "mcts_toy")
    out = tmp_path / "mcts"
    argv = ["--env", "fetch_reach", "--episodes", "3", "--random-episodes", "1"]
    mcts.main(argv + ["--simulations", "4", "--mcts.max-depth", "2", *TOY, "--out", str(out)])
    cfg, records = _config(out), _records(out)
    assert cfg["model_kind"] == "toy" and cfg["model.shrink"] == 0.5
    assert [r.get("model/toy_transitions") for r in records] == [50, 100, None]
    assert all(0.0 <= r["success"] <= 1.0 for r in records)


@pytest.mark.slow
def test_toy_model_runs_under_mbpo(toy, tmp_path):
    mbpo = load_script("experiments/mbpo.py", "mbpo_toy")
    out = tmp_path / "mbpo"
    argv = ["--env", "reacher", "--steps", "100", "--start-steps", "50"]
    argv += ["--model-train-every", "1000", "--rollout-length", "2", "--dyna.rollout-every", "10"]
    argv += ["--dyna.rollout-batch", "8", "--dyna.model-capacity", "64"]
    argv += ["--dyna.updates-per-step", "1", "--sac.hidden-size", "8", "--sac.hidden-layers", "1"]
    argv += ["--sac.batch-size", "16"]
    mbpo.main(argv + TOY + ["--out", str(out)])
    cfg, records = _config(out), _records(out)
    assert cfg["model_kind"] == "toy" and cfg["use_model"] is True
    # one fit, at env step 50 = start_steps, on the 50 real transitions so far
    assert records[0]["model/toy_transitions"] == 50
    # the second episode branches rollouts through the toy; Reacher never terminates
    assert records[1]["dyna/valid_fraction"] == 1.0


@pytest.mark.parametrize(
    "script, argv, fragment",
    [
        ("pets", ["--model", "factored"], "model 'factored' exists for fetch_reach only"),
        ("pets", ["--model", "toy", "--model.shrink", "-1"], "shrink must be >= 0, got -1.0"),
        ("mbpo", ["--model", "oracle"], "cannot branch rollouts from stored observations"),
        ("mcts", ["--env", "fetch_push", "--model", "factored"], "exists for fetch_reach only"),
        ("pets", ["--model", "toy", "--model.hidden-size", "8"], "unrecognized arguments"),
    ],
)
def test_a_model_where_it_cannot_run_is_one_line(toy, script, argv, fragment, tmp_path, capsys):
    module = load_script(f"experiments/{script}.py", f"{script}_toy_bad")
    with pytest.raises(SystemExit) as exc:
        module.main(argv + ["--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1] and err[-1].startswith(f"{script}.py: error:")
    assert not (tmp_path / "r").exists()
