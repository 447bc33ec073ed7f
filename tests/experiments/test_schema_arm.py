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
        "--no-progress",
    ]
    run = sa.main(argv)
    units = [m["unit"] for m in run.metrics()]
    assert units == ["fit/0", "eval/0/train", "eval/0/two_blocks"]
    fit = run.metrics()[0]
    assert fit["pgmpy_events_exported"] >= 1 and 0.0 <= fit["dynamics_recall"] <= 1.0
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("seed,layout,model,episodes,successes,success_rate,ratio_to_train")
    assert sum("cannot take this layout" in line for line in lines) == 1  # two_blocks' DBN row
    assert (tmp_path / "run" / "plots" / "schema_arm.png").exists()
    assert "<-" in (tmp_path / "run" / "rules_seed0.txt").read_text()
    again = sa.main([*argv, "--resume"])
    assert again.metrics() == run.metrics()


def test_bad_layouts_are_named():
    sa = load_script("experiments/schema_arm.py", "schema_arm_script")
    with pytest.raises(SystemExit):
        sa.parse_config(["--layouts", "train,maze"])
    with pytest.raises(SystemExit):
        sa.parse_config(["--layouts", "two_blocks"])
    cfg, _ = sa.parse_config(["--layouts", "train,three_blocks"])
    assert cfg.layout_list == ("train", "three_blocks")
