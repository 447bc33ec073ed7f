"""experiments/summarize.py: results rows of hand-made run directories, finished or not."""

import csv
import json

import pytest

from experiments import mcts, pets, summarize
from prototypes.config import to_dict


def _fake_run(path, successes, random_episodes, episodes, script=pets):
    """A FetchPush run directory of `script` (pets.py or mcts.py) with the given per-episode
    successes."""
    path.mkdir()
    argv = ["--env", "fetch_push", "--model", "structured", "--episodes", str(episodes)]
    meta = {"argv": argv, "config": to_dict(script.parse_config(argv)[0])}  # as the script saves it
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


def test_when_the_last_50_first_held_the_target_and_the_worst_after(tmp_path):
    """pets.py's FetchPush target is 0.8: 40 of the last 50. Episodes 1-10 fail, 11-60 succeed,
    61-75 fail, 76-125 succeed. The last 50 first hold 40 at episode 50 (episodes 1-50); the
    fewest from then on are at episode 75 (episodes 26-75: the 35 successes 26-60)."""
    _fake_run(tmp_path / "r", [0] * 10 + [1] * 50 + [0] * 15 + [1] * 50, 0, episodes=200)
    (row,) = summarize.main([str(tmp_path / "r")])
    assert row["first_episode_last50_at_target"] == 50
    assert row["fewest_last50_after"] == "35/50" and row["successes_last50"] == "50/50"


def test_the_last_50_figures_are_empty_until_they_mean_something(tmp_path):
    """Fewer than 50 episodes, or 50 that never held 40 (39 here): no episode to name."""
    _fake_run(tmp_path / "short", [1] * 49, 0, episodes=100)
    _fake_run(tmp_path / "never", [0] * 11 + [1] * 39, 0, episodes=100)
    for row in summarize.main([str(tmp_path / "short"), str(tmp_path / "never")]):
        assert row["first_episode_last50_at_target"] == row["fewest_last50_after"] == ""


def test_not_a_run_directory_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        summarize.main([str(tmp_path)])
    assert e.value.code == 2
    assert f"{tmp_path}: no config.json here" in capsys.readouterr().err


def test_an_mcts_run_gets_the_same_figures_and_its_simulations(tmp_path):
    """An mcts.py run directory is recognised by its config and summarised by mcts.py's row:
    the same success figures as pets.py's for the same episodes, its search's simulations, and
    the rolling rate's first time at mcts.py's target (0.9 here, 0.8 for pets.py on FetchPush)."""
    successes = [0] * 5 + [1] * 20  # the rolling rate: 16/20 at episode 21, 18/20 at episode 23
    _fake_run(tmp_path / "m", successes, random_episodes=5, episodes=25, script=mcts)
    _fake_run(tmp_path / "p", successes, random_episodes=5, episodes=25)
    m, p = summarize.main([str(tmp_path / "m"), str(tmp_path / "p")])
    assert m["status"] == p["status"] == "finished"
    default = mcts.parse_config(["--env", "fetch_push"])[0]
    assert m["simulations"] == default.mcts.num_simulations == 32
    assert "simulations" not in p and "evals_per_call" not in m
    assert m["planned_solved"] == p["planned_solved"] == "20/20"
    assert m["first_steps_at_target"] == 23 * 50 and p["first_steps_at_target"] == 21 * 50


def test_block_curve_is_the_rate_of_each_block_of_50_at_its_last_episode():
    """10, 50 and 0 successes over 120 episodes: blocks 1-50, 51-100 and the partial 101-120."""
    row = {"episodes": 120, "successes_per50": "10 50 0"}
    assert summarize.block_curve(row) == ([50, 100, 120], [0.2, 1.0, 0.0])
    assert summarize.block_curve({"episodes": 100, "successes_per50": "40 45"}) == (
        [50, 100],
        [0.8, 0.9],
    )
    assert summarize.block_curve({"episodes": 30, "last10_return": -5.0}) == ([], [])  # not Fetch


def test_plot_draws_the_runs_and_reads_back_their_curves(tmp_path, monkeypatch):
    """--plot draws every run's block_curve (a partial last block apart from the line) into the
    PNG it names; the lines drawn are read back from the figure before it is closed."""
    import matplotlib.pyplot as plt

    _fake_run(tmp_path / "a", [1] * 10 + [0] * 40 + [1] * 50 + [0] * 20, 0, episodes=200)
    _fake_run(tmp_path / "b", [1] * 50, 0, episodes=50)
    drawn = []
    monkeypatch.setattr(plt, "close", lambda fig: drawn.extend(fig.axes[0].get_lines()))
    out = tmp_path / "figs" / "fp.png"
    argv = [str(tmp_path / "a"), str(tmp_path / "b"), "--plot", str(out)]
    rows = summarize.main([*argv, "--results", str(tmp_path / "rows.csv")])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = [(list(line.get_xdata()), list(line.get_ydata())) for line in drawn]
    assert ([50, 100], [0.2, 1.0]) in curves and ([120], [0.0]) in curves  # run a, its parts
    assert ([50], [1.0]) in curves  # run b: one full block
    assert ([0, 1], [0.8, 0.8]) in curves  # pets.py's FetchPush target (axhline's own x)
    with open(tmp_path / "rows.csv", newline="") as f:  # the CSV's rows give the same curves
        assert [summarize.block_curve(r) for r in csv.DictReader(f)] == [
            summarize.block_curve(r) for r in rows
        ]
