"""experiments/pets.py end to end on a tiny config: determinism, resume, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from prototypes.config import to_dict
from prototypes.data.runs import RunDir, has_checkpoint
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--env",
    "reacher",
    "--episodes",
    "3",
    "--random-episodes",
    "1",
    "--population",
    "16",
    "--elites",
    "4",
    "--horizon",
    "3",
    "--iterations",
    "2",
    "--particles",
    "2",
    "--ensemble",
    "2",
    "--model.hidden-size",
    "16",
    "--model.hidden-layers",
    "1",
    "--model.max-epochs",
    "2",
    "--no-progress",
]


def _load_pets():
    return load_script("experiments/pets.py", "pets_script")


@pytest.fixture(scope="module")
def pets():
    return _load_pets()


@pytest.fixture(scope="module")
def reference_run(pets, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    pets.main(TINY + ["--seed", "3", "--out", str(out)])
    return out


@pytest.mark.slow
def test_run_directory_contents(reference_run):
    meta = json.loads((reference_run / "config.json").read_text())
    assert meta["config"]["seed"] == 3 and meta["config"]["planner.population"] == 16
    assert "git_revision" in meta and meta["packages"]["jax"]
    records = [
        json.loads(line) for line in (reference_run / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["episode"] for r in records] == [1, 2, 3]
    assert [r["env_steps"] for r in records] == [50, 100, 150]
    assert records[0]["random"] and not records[1]["random"]
    assert has_checkpoint(reference_run, complete=True)
    assert (reference_run / "plots" / "learning_curve.png").stat().st_size > 1000


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(pets, reference_run, tmp_path):
    pets.main(TINY + ["--seed", "3", "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / "metrics.jsonl").read_bytes() == (
        reference_run / "metrics.jsonl"
    ).read_bytes()


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(pets, reference_run, tmp_path, monkeypatch):
    """Kill the run after episode 2's metrics line is written but before its checkpoint (the
    worst moment): --resume must drop that line, redo episode 2, and end identical."""
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
        pets.main(TINY + ["--seed", "3", "--out", str(out)])
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # one line too many
    pets.main(TINY + ["--seed", "3", "--out", str(out), "--resume"])
    assert (out / "metrics.jsonl").read_bytes() == (reference_run / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (
            ["--env", "cartpole"],
            "unknown env 'cartpole': choose from fetch_push, fetch_push2, fetch_reach, pusher, "
            "reacher",
        ),
        (["--reward", "dense"], "reward 'dense' is for the Fetch tasks; reacher takes task or"),
        (
            ["--reward", "shaped"],  # Reacher's arm is joint angles: no arm position to push with
            "reward 'shaped' on reacher: the push reward needs exactly one arm entity",
        ),
        (["--horizon", "0"], "planner.horizon must be >= 1, got 0"),
        (["--population", "-5"], "planner.population must be >= 1, got -5"),
        (
            ["--population", "10", "--elites", "20"],
            "planner.elites must be in [1, population=10], got 20",
        ),
        (["--episodes", "0"], "episodes must be >= 1, got 0"),
        (["--planner", "beam"], "invalid choice: 'beam'"),
    ],
)
def test_bad_input_is_one_clear_line_with_status_2(pets, argv, fragment, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        pets.main(argv + ["--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1] and err[-1].startswith("pets.py: error:")
    assert not (tmp_path / "r").exists()  # nothing was written


def test_resume_without_a_run_or_with_a_corrupt_checkpoint(pets, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        pets.main(["--out", str(tmp_path / "none"), "--resume"])
    assert exc.value.code == 2
    assert "no run to resume" in capsys.readouterr().err

    from prototypes import config as cfglib
    from prototypes.data.runs import open_run

    argv = ["--out", str(tmp_path / "bad"), "--env", "reacher"]
    cfg, _ = pets.parse_config(argv)
    run = open_run(tmp_path / "bad", cfglib.to_dict(cfg), resume=False)
    with pytest.raises(SystemExit):
        pets.main(argv + ["--resume"])
    assert "no checkpoint at" in capsys.readouterr().err
    run.checkpoint_path.parent.mkdir(parents=True)
    run.checkpoint_path.write_bytes(b"not a pickle")
    with pytest.raises(SystemExit) as exc:
        pets.main(argv + ["--resume"])
    assert exc.value.code == 2
    assert "is corrupt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pets.main(argv)  # a new run refuses to overwrite the existing one
    assert "already holds a run" in capsys.readouterr().err


def test_planning_reward_by_name(pets):
    """task: the env's own; shaped: the layout's push reward (envs/costs.py), on Pusher too."""
    from prototypes.envs import costs, fetch, get_spec

    for env, reward, expected in [
        ("pusher", "task", get_spec("pusher").reward_fn),
        ("fetch_push", "task", fetch.reward_fns("fetch_push")["sparse"]),
        ("fetch_push", "dense", fetch.reward_fns("fetch_push")["dense"]),
        ("fetch_push", "shaped", fetch.reward_fns("fetch_push")["shaped"]),
        ("fetch_reach", "shaped", fetch.reward_fns("fetch_reach")["dense"]),
    ]:
        chosen = pets.planning_reward(reward, get_spec(env))
        # an observation 0.3 m from its goal with the gripper 0.04 m off: the rewards differ
        obs = np.zeros(get_spec(env).obs_dim, np.float32)
        obs[-3:] = [0.3, 0.0, 0.0]
        obs[:3] = [0.0, 0.04, 0.0]
        act = np.zeros(get_spec(env).act_dim, np.float32)
        np.testing.assert_allclose(chosen(obs, act, obs), expected(obs, act, obs), rtol=1e-7)
    shaped = pets.planning_reward("shaped", get_spec("pusher"))
    obs = np.linspace(-1, 1, 23, dtype=np.float32)
    push = costs.push_reward(get_spec("pusher").layout)
    np.testing.assert_allclose(shaped(obs, None, obs), push(obs, None, obs), rtol=1e-7)


@pytest.mark.slow
def test_fetch_push_on_the_oracle_records_the_env_success(pets, tmp_path):
    """One planned FetchPush episode on the true simulator: the metrics line carries the env's
    success, the rolling rate and the final distance, and the success plot is drawn."""
    out = tmp_path / "push"
    tiny = ["--population", "4", "--elites", "2", "--horizon", "2", "--iterations", "1"]
    pets.main(["--env", "fetch_push", "--model", "oracle", "--episodes", "1", "--no-progress"]
              + tiny + ["--out", str(out)])  # fmt: skip
    (record,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert record["success"] in (0.0, 1.0) and not record["random"]
    assert record["success_rate_last20"] == record["success"]
    assert record["final_distance"] >= 0
    assert record["return"] == pytest.approx(-50 * (1 - record["success"]), abs=50)  # sparse
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["reward"] == "shaped"  # the fetch_push default
    assert (out / "plots" / "success.png").stat().st_size > 1000
    row = pets.results_row(pets.parse_config(["--env", "fetch_push"])[0], RunDir(out))
    assert row["successes_last50"] == f"{int(record['success'])}/1"
    assert row["first_steps_at_target"] == ""  # one episode is not a full window of 20


@pytest.mark.parametrize("model", ["ensemble", "structured"])
def test_fetch_push2_plans_with_fetch_push_defaults(pets, model):
    """Two blocks get FetchPush's episodes, reward and planner, so a zero-shot or in-task run on
    fetch_push2 is comparable with fetch_push; success is still judged against 0.8."""
    one, two = (to_dict(pets.parse_config(["--env", e, "--model", model])[0])
                for e in ("fetch_push", "fetch_push2"))  # fmt: skip
    assert two.pop("env") == "fetch_push2" and one.pop("env") == "fetch_push"
    assert one == two and two["reward"] == "shaped" and two["episodes"] == 500
    assert pets.TARGETS["fetch_push2"] == pets.TARGETS["fetch_push"]


@pytest.mark.slow
def test_load_run_reads_back_the_config_and_the_final_state(pets, reference_run):
    from prototypes.data import replay

    loaded = pets.load_run(reference_run)
    assert (loaded.cfg.seed, loaded.cfg.planner.population, loaded.cfg.episodes) == (3, 16, 3)
    assert int(loaded.state.episode) == 3
    data = replay.contents(loaded.state.buffer)
    assert data.obs.shape == (150, loaded.built.spec.obs_dim)
    # the buffer holds the env's own transitions: per-episode reward sums are the logged returns
    returns = [r["return"] for r in RunDir(reference_run).metrics()]
    np.testing.assert_allclose(np.asarray(data.reward).reshape(3, 50).sum(1), returns, rtol=1e-5)


def test_load_run_refuses_a_directory_without_a_run_or_with_changed_defaults(pets, tmp_path):
    with pytest.raises(ValueError, match="no config.json here"):
        pets.load_run(tmp_path)
    cfg, _ = pets.parse_config(TINY)
    config = to_dict(cfg)
    meta = {"argv": TINY, "config": {**config, "planner.population": 17}}  # ran with another
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"differs in: planner\.population\): the defaults"):
        pets.load_run(tmp_path)
    del config["model.nll_beta"]  # a run from before the field existed: it ran the default
    (tmp_path / "config.json").write_text(json.dumps({"argv": TINY, "config": config}))
    assert pets.run_config(tmp_path) == cfg
