"""experiments/mcts.py end to end on a tiny FetchReach config: determinism, resume, bad input."""

import json
from pathlib import Path

import pytest

from prototypes.data.runs import has_checkpoint
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--env",
    "fetch_reach",
    "--episodes",
    "3",
    "--random-episodes",
    "1",
    "--simulations",
    "4",
    "--mcts.max-depth",
    "2",
    "--mcts.value",
    "zero",
    "--ensemble",
    "2",
    "--model.hidden-size",
    "8",
    "--model.hidden-layers",
    "1",
    "--model.max-epochs",
    "1",
    "--no-progress",
]


def _load_script():
    return load_script("experiments/mcts.py", "mcts_script")


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def reference_run(script, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    script.main(TINY + ["--seed", "3", "--out", str(out)])
    return out


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_run_directory_contents(reference_run):
    meta = json.loads((reference_run / "config.json").read_text())
    assert meta["config"]["seed"] == 3 and meta["config"]["mcts.num_simulations"] == 4
    assert meta["config"]["mcts.codebook"] == "cartesian"
    records = _metrics(reference_run)
    assert [r["episode"] for r in records] == [1, 2, 3]
    assert [r["env_steps"] for r in records] == [50, 100, 150]
    assert records[0]["random"] and not records[1]["random"]
    for r in records:
        assert r["success"] in (0.0, 1.0) and r["final_distance"] >= 0
        assert r["return"] == pytest.approx(-50 * (1 - r["success"]), abs=50)  # sparse, 50 steps
    # the rolling rate is the mean of the successes so far (window 20 > 3 episodes)
    s = [r["success"] for r in records]
    assert records[-1]["success_rate_last20"] == pytest.approx(sum(s) / 3)
    assert has_checkpoint(reference_run, complete=True)
    assert (reference_run / "plots" / "success.png").stat().st_size > 1000
    assert (reference_run / "plots" / "distance.png").stat().st_size > 1000


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(script, reference_run, tmp_path):
    script.main(TINY + ["--seed", "3", "--out", str(tmp_path / "again")])
    assert (tmp_path / "again" / "metrics.jsonl").read_bytes() == (
        reference_run / "metrics.jsonl"
    ).read_bytes()


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(script, reference_run, tmp_path, monkeypatch):
    """Killed after episode 2's metrics line but before its checkpoint: --resume drops that
    line, redoes episode 2 (a planning episode) and ends identical to the uninterrupted run."""
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
        script.main(TINY + ["--seed", "3", "--out", str(out)])
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # one line too many
    script.main(TINY + ["--seed", "3", "--out", str(out), "--resume"])
    assert (out / "metrics.jsonl").read_bytes() == (reference_run / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (
            ["--env", "reacher"],
            "unknown env 'reacher': choose from fetch_push, fetch_push2, fetch_reach",
        ),
        (["--episodes", "0"], "episodes must be >= 1, got 0"),
        (["--random-episodes", "0"], "random_episodes must be in [1, episodes=400]"),
        (["--env", "fetch_push", "--episodes", "5"], "random_episodes must be in [1, episodes=5]"),
        (["--fit-every", "0"], "fit_every must be >= 1, got 0"),
        (["--num-envs", "0"], "num_envs must be >= 1, got 0"),
        (["--simulations", "0"], "mcts.num_simulations must be >= 1, got 0"),
        (["--mcts.codebook", "axes"], "mcts.codebook must be cartesian for Fetch"),
        (["--mcts.magnitude", "1.5"], "mcts.magnitude must be in (0, 1]"),
        (["--reward", "exp"], "invalid choice: 'exp'"),
        (["--model.propagation", "ts2"], "invalid choice: 'ts2'"),
        (["--world-model", "gp"], "invalid choice: 'gp'"),
        (
            ["--env", "fetch_push", "--world-model", "factored"],
            "model 'factored' exists for fetch_reach only, got env 'fetch_push'",
        ),
        (
            ["--model", "factored", "--model.grid.cell", "-1"],
            "grid.cell must be > 0 metres, got -1.0",
        ),
    ],
)
def test_bad_input_is_one_clear_line_with_status_2(script, argv, fragment, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        script.main(argv + ["--out", str(tmp_path / "r")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1] and err[-1].startswith("mcts.py: error:")
    assert not (tmp_path / "r").exists()  # nothing was written


def test_resume_without_a_run_or_with_a_corrupt_checkpoint(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        script.main(["--out", str(tmp_path / "none"), "--resume"])
    assert exc.value.code == 2
    assert "no run to resume" in capsys.readouterr().err

    from prototypes import config as cfglib
    from prototypes.data.runs import open_run

    argv = ["--out", str(tmp_path / "bad")]
    cfg, _ = script.parse_config(argv)
    run = open_run(tmp_path / "bad", cfglib.to_dict(cfg), resume=False)
    with pytest.raises(SystemExit):
        script.main(argv + ["--resume"])
    assert "no checkpoint at" in capsys.readouterr().err
    run.checkpoint_path.parent.mkdir(parents=True)
    run.checkpoint_path.write_bytes(b"not a pickle")
    with pytest.raises(SystemExit) as exc:
        script.main(argv + ["--resume"])
    assert exc.value.code == 2
    assert "is corrupt" in capsys.readouterr().err.strip().splitlines()[-1]
    # and resuming with different flags names the differing field
    with pytest.raises(SystemExit) as exc:
        script.main(argv + ["--resume", "--seed", "9"])
    assert "differs in: seed" in capsys.readouterr().err


@pytest.mark.slow
def test_factored_model_learns_its_parents_and_plans(script, tmp_path):
    """Ten episodes of random codebook actions, then a refit and one planning episode on the
    learned DBN. From these 500 transitions (seed 0) the structure search recovers the true
    parents: each axis of the goal offset moves with its own value and the action only (from
    the first 100 it still misses the action edge of two axes)."""
    out = tmp_path / "factored"
    argv = ["--env", "fetch_reach", "--world-model", "factored", "--episodes", "11"]
    argv += ["--random-episodes", "10", "--simulations", "4", "--mcts.max-depth", "2"]
    script.main(argv + ["--seed", "0", "--out", str(out), "--no-progress"])
    records = _metrics(out)
    assert [r["random"] for r in records] == [True] * 10 + [False]
    assert records[9]["model/parents"] == (
        "goal_dx<-goal_dx,action; goal_dy<-goal_dy,action; goal_dz<-goal_dz,action"
    )
    assert records[9]["model/num_edges"] == 6
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["model_kind"] == "factored"
    assert meta["config"]["model.factored.score"] == "bdeu"
    assert meta["config"]["model.grid.cell"] == 0.03
    # the random episodes took codebook rows only (else the refit would have raised)
    assert (out / "plots" / "success.png").exists()


def test_help_explains_every_flag(script, capsys):
    with pytest.raises(SystemExit) as exc:
        script.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--env", "--reward", "--fit-every", "--mcts.num-simulations", "--resume"):
        assert flag in out
    # every option line carries help text (argparse prints "(default: ...)" after it)
    assert out.count("(default:") >= 30


def test_rolling_success_and_first_reaching(script):
    # 19 failures then successes: the window of 20 first holds >= 18 successes at episode 37
    records = []
    for i in range(40):
        s = [0.0] * 19 + [1.0] * 21
        window = s[max(0, i - 19) : i + 1]
        records.append(
            {"env_steps": 50 * (i + 1), "success_rate_last20": sum(window) / len(window)}
        )
    # at episode 37 (index 36) the window is episodes 18..37: 2 failures, 18 successes = 0.9
    assert script.first_reaching(records) == 50 * 37
    assert script.first_reaching(records[:30]) is None


@pytest.mark.slow
def test_num_envs_acts_in_rounds(script, tmp_path):
    """--num-envs 2 on 3 episodes (1 random): rounds {1} and {2, 3} (a planning episode never
    shares a round with random ones, so it plans on the fitted model), one metrics line per
    episode in order, a fit after the random round only. (Resume at round boundaries is tested
    on pets.py, through the same run_batched_episodes.)"""
    lines = script.main(TINY + ["--num-envs", "2", "--out", str(tmp_path / "b2")]).metrics()
    assert [r["episode"] for r in lines] == [1, 2, 3]
    assert [r["random"] for r in lines] == [True, False, False]
    assert ["model/epochs" in r for r in lines] == [True, False, False]
    assert all(r["success"] in (0.0, 1.0) for r in lines)


def test_fetch_push2_searches_with_fetch_push_defaults(script):
    """Two blocks get FetchPush's search, reward and (for the ensemble) model settings."""
    from prototypes.config import to_dict

    for model in ("ensemble", "structured"):
        one, two = (to_dict(script.parse_config(["--env", e, "--model", model])[0])
                    for e in ("fetch_push", "fetch_push2"))  # fmt: skip
        assert two.pop("env") == "fetch_push2" and one.pop("env") == "fetch_push"
        assert one == two and two["reward"] == "shaped"
