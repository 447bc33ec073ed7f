"""experiments/sweep.py on a trivial experiment (tests/experiments/fake_experiment.py).

The fake's run with seed s and --scale c logs return = c * e + s at episode e, so with
--episodes 4 a run's final value is 4c + s; over seeds {0, 1} the mean is 4c + 0.5 and the
bootstrap of two runs {4c, 4c + 1} puts the 95% interval at the two atoms (4c, 4c + 1).
"""

import csv
import os
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).resolve().parent / "fake_experiment.py"
ARGS = [str(FAKE), "--seeds", "0", "1", "--grid", "scale=1,2", "--jobs", "2"]


def _load(name):
    return load_script(f"experiments/{name}.py", f"{name}_script")


@pytest.fixture(scope="module")
def sweep():
    return _load("sweep")


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _check_table(out):
    summary = _csv(out / "summary.csv")
    assert [r["scale"] for r in summary] == ["1", "2"]
    assert [r["runs"] for r in summary] == ["2", "2"]
    assert [r["statistic"] for r in summary] == ["mean", "mean"]
    # final = 4c + s; mean over s in {0, 1} = 4c + 0.5; CI = the two atoms (4c, 4c + 1)
    assert [float(r["final"]) for r in summary] == [4.5, 8.5]
    assert [(float(r["ci_low"]), float(r["ci_high"])) for r in summary] == [(4, 5), (8, 9)]
    runs = _csv(out / "runs.csv")
    assert [r["run"] for r in runs] == [
        "scale=1__seed=0", "scale=1__seed=1", "scale=2__seed=0", "scale=2__seed=1"]
    assert [float(r["final"]) for r in runs] == [4, 5, 8, 9]
    assert [r["status"] for r in runs] == ["done"] * 4
    assert (out / "plots" / "sweep.png").stat().st_size > 1000


@pytest.mark.slow
def test_local_sweep_two_seeds_two_configs(sweep, tmp_path, capsys):
    out = tmp_path / "sw"
    assert sweep.main(ARGS + ["--out", str(out), "--", "--episodes", "4"]) == 0
    _check_table(out)
    printed = capsys.readouterr().out
    assert "return (last)" in printed and "4.5" in printed and "[8, 9]" in printed
    inv = (out / "runs" / "scale=2__seed=1" / "invocations.txt").read_text().split()
    assert inv[:6] == ["--episodes", "4", "--scale", "2", "--seed", "1"]


@pytest.mark.slow
def test_interrupted_sweep_skips_finished_and_resumes_the_rest(sweep, tmp_path, monkeypatch):
    out = tmp_path / "sw"
    argv = ARGS + ["--out", str(out), "--", "--episodes", "4"]
    monkeypatch.setenv("FAKE_DIE_SEED", "1")  # seed-1 runs die after episode 2
    assert sweep.main(argv) == 1
    runs = {r["run"]: r for r in _csv(out / "runs.csv")}
    assert runs["scale=1__seed=1"]["status"] == "partial"
    assert runs["scale=1__seed=1"]["records"] == "2"
    assert runs["scale=1__seed=0"]["status"] == "done"
    monkeypatch.delenv("FAKE_DIE_SEED")
    assert sweep.main(argv) == 0
    _check_table(out)
    inv = lambda name: (out / "runs" / name / "invocations.txt").read_text().splitlines()
    assert len(inv("scale=1__seed=0")) == 1  # finished: skipped
    resumed = inv("scale=2__seed=1")
    assert len(resumed) == 2 and "--resume" not in resumed[0] and resumed[1].endswith("--resume")
    assert sweep.main(argv) == 0  # nothing left to run
    assert all(len(inv(r)) == 1 for r in ("scale=1__seed=0", "scale=2__seed=0"))


def test_plan_and_commands(sweep, tmp_path):
    grid = sweep.parse_grid(["planner.population=100,200", "model.hidden_size=8"])
    specs = sweep.plan_runs(grid, [0, 1], tmp_path)
    assert [s.name for s in specs] == [
        "planner.population=100__model.hidden_size=8__seed=0",
        "planner.population=100__model.hidden_size=8__seed=1",
        "planner.population=200__model.hidden_size=8__seed=0",
        "planner.population=200__model.hidden_size=8__seed=1",
    ]
    cmd = sweep.command(Path("x.py"), specs[3], ["--episodes", "5"], resume=True)
    assert cmd[1:] == ["x.py", "--episodes", "5", "--planner.population", "200",
                       "--model.hidden-size", "8", "--seed", "1", "--out", str(specs[3].out),
                       "--resume"]
    assert sweep.supports_resume(ROOT / "experiments" / "pets.py")
    assert sweep.supports_resume(FAKE)
    # true / false are boolean flags: --model and --no-model (mbpo.py: MBPO vs plain SAC)
    specs = sweep.plan_runs(sweep.parse_grid(["model=true,false"]), [0], tmp_path)
    assert [s.name for s in specs] == ["model=true__seed=0", "model=false__seed=0"]
    on, off = (sweep.command(Path("x.py"), s, [], resume=False)[2:-4] for s in specs)
    assert on == ["--model"] and off == ["--no-model"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--grid", "scale"], "must look like KEY=V1,V2"),
        (["--grid", "scale=1,,2"], "has an empty value"),
        (["--grid", "seed=1,2"], "is set by the sweep itself; use --seeds"),
        (["--grid", "scale=1", "--grid", "scale=2"], "is given twice"),
        (["--jobs", "0"], "--jobs must be >= 1, got 0"),
        (["--", "--seed", "3"], "--seed after -- is set by the sweep itself"),
    ],
)
def test_bad_input_is_one_clear_line(sweep, tmp_path, capsys, argv, fragment):
    with pytest.raises(SystemExit) as exc:
        sweep.main([str(FAKE), "--out", str(tmp_path / "sw"), *argv])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sweep.py: error:") and fragment in last


def test_a_different_sweep_in_the_same_directory_is_refused(sweep, tmp_path, capsys):
    out = str(tmp_path / "sw")
    assert sweep.main([str(FAKE), "--out", out, "--gather-only", "--grid", "scale=1"]) == 0
    with pytest.raises(SystemExit):
        sweep.main([str(FAKE), "--out", out, "--gather-only", "--grid", "scale=3"])
    assert "holds a different sweep (differs in: grid)" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_backend_gives_the_same_table(sweep, tmp_path):
    if os.environ.get("PMBRL_REQUIRE_RAY"):  # CI (.ci/run): the Ray path must be tested
        import ray
    else:
        ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[ray]'")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "sw"
        argv = ARGS + ["--out", str(out), "--backend", "ray", "--", "--episodes", "4"]
        assert sweep.main(argv) == 0
        _check_table(out)
    finally:
        ray.shutdown()
