"""experiments/schema_arm.py: a tiny end-to-end run (rows, CSV, plot, rules file, resume gives
the same numbers) and bad input."""

import pytest

from tests.scripts import load_script


@pytest.mark.slow
def test_tiny_run_writes_rows_csv_plot_and_resumes_identically(tmp_path):
    sa = load_script("experiments/schema_arm.py", "schema_arm_script")
    csv_path = tmp_path / "rows.csv"
    argv = [
        "--seeds", "0", "--train-episodes", "4", "--eval-episodes", "1",
        "--layouts", "train,two_blocks", "--horizon", "6", "--max-nodes", "16",
        "--substeps", "40", "--out", str(tmp_path / "run"), "--results-csv", str(csv_path),
        "--no-progress", "--baseline-episodes", "1", "--mcts-simulations", "4",
        "--mcts-depth", "2", "--mcts-rollout-steps", "1", "--ensemble-members", "2",
        "--ensemble-epochs", "1",
    ]
    run = sa.main(argv)
    units = [m["unit"] for m in run.metrics()]
    assert units == [
        "fit/0", "eval/0/train", "eval/0/two_blocks",
        *(f"eval/0/{lay}/{b}" for b in sa.BASELINES for lay in ("train", "two_blocks")),
    ]
    fit = run.metrics()[0]
    assert fit["pgmpy_events_exported"] >= 1 and 0.0 <= fit["dynamics_recall"] <= 1.0
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("seed,layout,model,episodes,successes,success_rate,ratio_to_train")
    assert sum("n/a: fixed input size" in line for line in lines) == 1  # two_blocks' DBN row
    assert len(lines) == 1 + 2 * 4  # header, 2 layouts x 4 models
    assert (tmp_path / "run" / "plots" / "schema_arm.png").exists()
    assert "<-" in (tmp_path / "run" / "rules_seed0.txt").read_text()
    again = sa.main([*argv, "--resume"])
    assert again.metrics() == run.metrics()
    # a new run reusing this one's baseline rows: the same baseline records (marked reused),
    # the schema rows evaluated afresh
    argv2 = [*argv[: argv.index("--out")], "--out", str(tmp_path / "run2"),
             "--results-csv", "", "--no-progress", *argv[argv.index("--baseline-episodes"):],
             "--reuse-baselines", str(tmp_path / "run")]
    reuse = sa.main(argv2)
    old = {m["unit"]: m for m in run.metrics()}
    for m in reuse.metrics():
        if m.get("model") in sa.BASELINES:
            assert m.pop("reused_from") == str(tmp_path / "run") and m == old[m["unit"]]
        else:
            assert "reused_from" not in m


def test_bad_layouts_are_named():
    sa = load_script("experiments/schema_arm.py", "schema_arm_script")
    with pytest.raises(SystemExit):
        sa.parse_config(["--layouts", "train,maze"])
    with pytest.raises(SystemExit):
        sa.parse_config(["--layouts", "two_blocks"])
    cfg, _ = sa.parse_config(["--layouts", "train,three_blocks"])
    assert cfg.layout_list == ("train", "three_blocks")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--planner", "greedy"], "planner must be one of guided, exact, relaxed, got 'greedy'"),
        (["--search-nodes", "0"], "search_nodes must be >= 1, got 0"),
        (["--reuse-baselines", "/nonexistent/run"], "is not a run directory"),
        (["--baselines", "dbn_mcts,mlp"], "unknown baseline 'mlp'"),
        (["--baseline-episodes", "0"], "baseline_episodes must be >= 1, got 0"),
        (["--solve-nodes", "0"], "solve_nodes must be >= 1, got 0"),
    ],
)
def test_bad_planner_and_baselines_end_with_one_line(argv, fragment, capsys):
    sa = load_script("experiments/schema_arm.py", "schema_arm_script")
    with pytest.raises(SystemExit) as exc:
        sa.parse_config(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1]
