"""experiments/mbpo.py end to end on a tiny budget: run directory, resume, plain SAC, bad input."""

import json
from pathlib import Path

import pytest

from prototypes.data.runs import has_checkpoint
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--env", "reacher",
    "--steps", "100",  # two 50-step episodes
    "--start-steps", "50",
    "--eval-every", "1",
    "--model-train-every", "1000",  # one fit, at step 50: one compile of the fit
    "--rollout-length", "2",
    "--real-ratio", "0.5",
    "--dyna.rollout-every", "10",
    "--dyna.rollout-batch", "8",
    "--dyna.model-capacity", "64",
    "--dyna.updates-per-step", "1",
    "--sac.hidden-size", "8",
    "--sac.hidden-layers", "1",
    "--sac.batch-size", "16",
    "--ensemble", "2",
    "--model.hidden-size", "8",
    "--model.hidden-layers", "1",
    "--model.max-epochs", "1",
    "--no-progress",
]  # fmt: skip


def _load():
    return load_script("experiments/mbpo.py", "mbpo_script")


@pytest.fixture(scope="module")
def mbpo():
    return _load()


@pytest.fixture(scope="module")
def reference_run(mbpo, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    mbpo.main(TINY + ["--seed", "3", "--out", str(out)])
    return out


@pytest.mark.slow
def test_run_directory_contents(reference_run):
    meta = json.loads((reference_run / "config.json").read_text())
    assert meta["config"]["dyna.rollout_length"] == 2 and meta["config"]["use_model"] is True
    records = [json.loads(x) for x in (reference_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in records] == [1, 2]
    assert [r["env_steps"] for r in records] == [50, 100]
    assert records[0]["random"] and not records[1]["random"]
    assert "model/train_nll" in records[0]  # the one fit, at step 50 = start_steps
    assert "sac/critic_loss" in records[1] and "dyna/valid_fraction" in records[1]
    assert "eval_return" in records[0] and "eval_return" in records[1]
    assert has_checkpoint(reference_run, complete=True)
    assert (reference_run / "plots" / "learning_curve.png").stat().st_size > 1000


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(mbpo, reference_run, tmp_path, monkeypatch):
    """Die after episode 2's metrics line but before its checkpoint: --resume drops the line,
    redoes episode 2 from the episode-1 checkpoint and ends byte-identical."""
    out = tmp_path / "killed"
    from prototypes.data.runs import RunDir

    original = RunDir.save_checkpoint
    calls = {"n": 0}

    def dying_save(self, state):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        original(self, state)

    monkeypatch.setattr(RunDir, "save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        mbpo.main(TINY + ["--seed", "3", "--out", str(out)])
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    mbpo.main(TINY + ["--seed", "3", "--out", str(out), "--resume"])
    assert (out / "metrics.jsonl").read_bytes() == (reference_run / "metrics.jsonl").read_bytes()


@pytest.mark.slow
def test_plain_sac_from_the_same_code(mbpo, tmp_path):
    out = tmp_path / "sac"
    mbpo.main(TINY + ["--no-model", "--seed", "1", "--out", str(out)])
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and "sac/critic_loss" in records[1]
    assert not any(k.startswith(("dyna/", "model/")) for k in records[1])


@pytest.mark.slow
def test_num_envs_evaluates_several_episodes_in_one_batch(mbpo, tmp_path):
    """--num-envs 3: three evaluation episodes per evaluation, eval_return their mean, and
    training untouched. (Over a 50-step closed loop the batched and the single policy call's
    float rounding drift apart, so episodes are compared through their actions, below.)"""
    argv = TINY + ["--no-model", "--seed", "1"]
    one = mbpo.main(argv + ["--out", str(tmp_path / "b1")]).metrics()
    three = mbpo.main(argv + ["--num-envs", "3", "--out", str(tmp_path / "b3")]).metrics()
    assert "eval_returns" not in one[0]
    for a, b in zip(one, three, strict=True):
        assert len(b["eval_returns"]) == 3
        assert b["eval_return"] == pytest.approx(sum(b["eval_returns"]) / 3)
        assert a["return"] == b["return"] and a.get("sac/critic_loss") == b.get("sac/critic_loss")
    assert len(set(three[0]["eval_returns"])) == 3  # three different reset seeds


def test_batched_evaluation_policy_rows_equal_single_calls(mbpo):
    """The evaluation's one batched policy call: row i equals the deterministic action of obs i
    alone (the call --num-envs 1 makes), to 1e-6."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    cfg, _ = mbpo.parse_config(TINY + ["--no-model"])
    agent = mbpo.build_agent(cfg)
    state = agent.init(jax.random.key(0))
    obs = np.asarray(jax.random.normal(jax.random.key(1), (3, 10)), np.float32)
    rows = agent.sac.act(state.sac, None, jnp.asarray(obs), deterministic=True)
    for i in range(3):
        single = agent.act(state, None, obs[i], deterministic=True)
        np.testing.assert_allclose(rows[i], single, atol=1e-6)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--env", "cartpole"], "unknown env 'cartpole': choose from pusher, reacher"),
        (["--steps", "0"], "steps must be >= 1, got 0"),
        (["--real-ratio", "2"], "dyna.real_ratio must be in [0, 1], got 2.0"),
        (["--rollout-length", "0"], "dyna.rollout_length must be >= 1, got 0"),
        (["--steps", "10", "--start-steps", "20"], "start_steps must be in [1, steps=10], got 20"),
        (["--model.propagation", "mean"], "invalid choice: 'mean'"),
        (["--num-envs", "0"], "num_envs must be >= 1, got 0"),
    ],
)
def test_bad_input_is_one_clear_line_with_status_2(mbpo, argv, fragment, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        mbpo.main(argv + ["--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1] and err[-1].startswith("mbpo.py: error:")
    assert not (tmp_path / "r").exists()


def test_resume_without_a_run(mbpo, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        mbpo.main(["--out", str(tmp_path / "none"), "--resume"])
    assert exc.value.code == 2
    assert "no run to resume" in capsys.readouterr().err


def test_no_model_flag_selects_plain_sac(mbpo):
    # a bool field named no_model made "--no-model" (BooleanOptionalAction's negation) set False
    parse = mbpo.parse_config
    assert parse([])[0].use_model is True
    cfg, _ = parse(["--no-model"])
    assert cfg.use_model is False and cfg.model.propagation == "ts1"
