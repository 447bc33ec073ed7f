"""experiments/reproduce.py: reads finished runs and prints them beside the references."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reproduce():
    return load_script("experiments/reproduce.py", "reproduce_script")


def _fake_pets_runs(out: Path, seeds):
    """Finished runs: seed s, episode e = 1..12 has return -20 + e - s at env step 50 e."""
    for s in seeds:
        run = out / "pets-reacher" / "runs" / f"seed={s}"
        run.mkdir(parents=True)
        lines = [json.dumps({"episode": e, "env_steps": 50 * e, "return": -20.0 + e - s})
                 for e in range(1, 13)]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        (run / "SWEEP_DONE").write_text("{}\n")


def test_pets_reacher_reads_existing_runs(reproduce, tmp_path, capsys):
    _fake_pets_runs(tmp_path, range(4))
    argv = ["pets-reacher", "--out", str(tmp_path), "--seeds", "0", "1", "2", "3"]
    assert reproduce.main(argv) == 0
    printed = capsys.readouterr().out
    # last 10 episodes (3..12) of seed s average -20 + 7.5 - s = -12.5 - s; over s = 0..3 the
    # IQM drops -12.5 and -15.5 -> mean(-13.5, -14.5) = -14.0
    assert "ours: last-10 mean (iqm of 4 seeds)  -14.0 [" in printed
    # best episode -8 - s -> IQM of (-8, -9, -10, -11) = -9.5
    assert "ours: best episode (iqm of 4 seeds)" in printed and "-9.5 [" in printed
    assert "600-600 env steps per seed" in printed
    for ref in ("CEM on the true simulator", "-4.2 +- 1.0", "random actions", "-43"):
        assert ref in printed
    assert "sweep.png" in printed and "runs: 4 runs, 4 finished before, 0 to run" not in printed
    assert (tmp_path / "pets-reacher" / "plots" / "sweep.png").exists()


def test_near_optimal_episode(reproduce):
    # threshold 1.25 x 14 = 17.5: the first episode at or below it is the 3rd
    assert reproduce.episodes_to_near_optimal(np.array([800.0, 40.0, 17.5, 16.0])) == 3
    assert reproduce.episodes_to_near_optimal(np.array([800.0, 40.0])) is None


@pytest.mark.slow
def test_dyna_maze_tiny_run(reproduce, tmp_path, capsys):
    argv = ["dyna-maze", "--out", str(tmp_path), "--", "--runs", "2", "--episodes", "4"]
    assert reproduce.main(argv) == 0
    printed = capsys.readouterr().out
    for text in ("n=0", "n=5", "n=50", "about 25 episodes", "about 3 episodes",
                 "extra flags: --runs 2 --episodes 4", "fig8_2_steps_per_episode.png"):
        assert text in printed
    assert reproduce.main(argv) == 0  # the second time it only reads
    assert "0 to run" in capsys.readouterr().out


def test_unknown_name_is_one_clear_line(reproduce, capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["pets-cartpole"])
    assert exc.value.code == 2
    assert "invalid choice: 'pets-cartpole'" in capsys.readouterr().err


def _fake_transfer_results(reproduce, suite, context, success: dict):
    """A suite's results CSV as transfer.py --results writes it: success[(model, condition)] per
    seed 0..2 (the oracle: seed 0), 2 episodes each, and the cannot-rows the suite has."""
    transfer = reproduce._load_transfer()
    cfg = transfer.COMMAND.parse([*suite.argv(context), "--seeds", "3", "--eval-episodes", "2"])[0]
    records = [
        {"model": m, "seed": s, "condition": c, "episode": e, "success": v}
        for (m, c), v in success.items()
        for s in transfer.model_seeds(cfg, m)
        for e in range(2)
    ]
    transfer.merge_results(cfg, transfer.per_seed_rows(cfg, records))


def test_transfer_fetch_push_reads_results_and_prints_the_claims(
    reproduce, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(reproduce._load_transfer(), "RESULTS", tmp_path / "results")
    shifts, physics = reproduce.TRANSFERS["transfer-fetch-push"].suites
    hidden = {("structured", "train"): 1.0, ("structured", "goal:test"): 0.5,
              ("ensemble", "train"): 0.5, ("ensemble", "goal:test"): 0.25,
              ("oracle", "train"): 1.0, ("oracle", "goal:test"): 1.0}
    _fake_transfer_results(reproduce, shifts, "hidden", hidden)
    _fake_transfer_results(reproduce, physics, "hidden",
                           {("structured", "train"): 1.0, ("structured", "mass:test"): 0.5})
    _fake_transfer_results(reproduce, physics, "given",
                           {("structured", "train"): 1.0, ("structured", "mass:test"): 1.0})
    argv = ["transfer-fetch-push", "--out", str(tmp_path), "--gather-only", "--",
            "--eval-episodes", "2"]
    assert reproduce.main(argv) == 1  # most rows are missing: unfinished
    printed = capsys.readouterr().out
    # ratio = test / train success: structured 0.5 / 1.0, ensemble 0.25 / 0.5, oracle 1 / 1
    assert "ensemble 0.50, structured 0.50, oracle 1.00" in printed
    assert "Kansky et al. 2017" in printed and "Sanchez-Gonzalez et al. 2018" in printed
    assert "not measured: two blocks have no finished episodes yet" in printed
    assert "(ensemble cannot: fixed observation size)" in printed
    assert "hidden: structured 0.50; given: structured 1.00" in printed  # mass:test
    assert "start:test" in printed and "not measured yet" in printed
    assert "2 evaluation episodes each" in printed  # what the results hold
    assert "transfer_fetch_push_hidden_goal-start-distractors-blocks.csv:" in printed
    assert "unfinished: goal-start-distractors-blocks_hidden, mass-friction_hidden, " \
           "mass-friction_given" in printed
    bad = ["transfer-fetch-push", "--out", str(tmp_path), "--seeds", "1", "2"]
    with pytest.raises(SystemExit):
        reproduce.main(bad)
    assert "must be 0 1 .. n-1" in capsys.readouterr().err


def test_missing_rows_counts_what_the_whole_suite_lacks(reproduce):
    transfer = reproduce._load_transfer()
    shifts = reproduce.TRANSFERS["transfer-fetch-push"].suites[0]
    argv = [*shifts.argv("hidden"), "--seeds", "3", "--eval-episodes", "2"]
    cfg = transfer.COMMAND.parse(argv)[0]
    records = [
        {"model": m, "seed": s, "condition": c, "episode": e, "success": 1.0}
        for m in cfg.model_list
        for s in transfer.model_seeds(cfg, m)
        for c in transfer.model_conditions(cfg, m)
        for e in range(2)
    ]
    rows = transfer.per_seed_rows(cfg, records)
    # 3 ensemble seeds x 6 conditions (+ 3 cannot-rows), 3 structured seeds x 7, 1 oracle seed x 7
    assert len(rows) == 3 * 7 + 3 * 7 + 7
    assert reproduce.missing_rows(transfer, cfg, rows) == 0
    short = [r for r in rows if not (r["model"] == "structured" and r["seed"] == 2)]
    assert reproduce.missing_rows(transfer, cfg, short) == 7
    one_episode = [dict(r, episodes=1) if r["model"] == "oracle" else r for r in rows]
    assert reproduce.missing_rows(transfer, cfg, one_episode) == 7
