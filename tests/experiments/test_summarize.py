"""experiments/summarize.py: results rows of hand-made run directories, finished or not."""

import csv
import json

import pytest

from experiments import pets, summarize
from prototypes.config import to_dict


def _fake_run(path, successes, random_episodes, episodes):
    """A pets.py-shaped FetchPush run directory with the given per-episode successes."""
    path.mkdir()
    argv = ["--env", "fetch_push", "--model", "structured", "--episodes", str(episodes)]
    meta = {"argv": argv, "config": to_dict(pets.parse_config(argv)[0])}  # as pets.py saves it
    (path / "config.json").write_text(json.dumps(meta))
    with open(path / "metrics.jsonl", "w") as m, open(path / "perf.jsonl", "w") as p:
        for i, s in enumerate(successes):
            window = successes[max(0, i - 19) : i + 1]
            record = {"episode": i + 1, "env_steps": 50 * (i + 1), "return": -50.0 + 49 * s,
                      "random": i < random_episodes, "success": float(s),
                      "success_rate_last20": sum(window) / len(window)}  # fmt: skip
            m.write(json.dumps(record) + "\n")
            p.write(json.dumps({"episode": i + 1, "act_seconds": 6.0, "fit_seconds": 3.0}) + "\n")


def test_a_partial_run_gets_its_row_and_status(tmp_path, capsys):
    # two random episodes (the first a lucky success), then 4 failures and 18 successes:
    # the rolling rate over 20 first reaches 0.8 at episode 22 (eps 3-22: 16 of 20); episode 1's
    # rate of 1.0 over one episode is not a full window and does not count
    run = tmp_path / "fp_s0"
    successes = [1, 0] + [0] * 4 + [1] * 18
    _fake_run(run, successes, random_episodes=2, episodes=30)
    (row,) = summarize.main([str(run), "--results", str(tmp_path / "out.csv")])
    assert row["status"] == "partial 24/30" and row["episodes"] == 24
    assert row["env_steps"] == 1200 and row["last10_return"] == pytest.approx(-1.0)
    assert row["planned_solved"] == "18/22" and row["successes_last50"] == "19/24"
    assert row["first_steps_at_target"] == 22 * 50
    assert row["successes_per50"] == "19"  # one partial block of 24 episodes
    assert row["act_minutes"] == pytest.approx(24 * 6 / 60) and row["fit_minutes"] == 1.2
    with open(tmp_path / "out.csv", newline="") as f:
        (written,) = list(csv.DictReader(f))
    assert written["run"] == "fp_s0" and written["planned_solved"] == "18/22"
    assert "partial 24/30" in capsys.readouterr().out


def test_successes_per_block_of_50(tmp_path):
    run = tmp_path / "fp_s1"
    _fake_run(run, [1] * 10 + [0] * 40 + [1] * 50 + [0] * 20, random_episodes=0, episodes=200)
    (row,) = summarize.main([str(run)])
    assert row["successes_per50"] == "10 50 0" and row["successes_last50"] == "30/50"


def test_not_a_run_directory_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        summarize.main([str(tmp_path)])
    assert e.value.code == 2
    assert f"{tmp_path}: no config.json here" in capsys.readouterr().err
