"""Each research script runs end to end on a tiny budget (STYLE.md section 1: no other tests)."""

import json
from pathlib import Path

import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    return load_script(f"research/{name}.py", f"research_{name}")


def _records(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_pets_reacher_onefile_tiny(tmp_path):
    mod = _load("pets_reacher_onefile")
    args = mod.parse_args([
        "--total-steps", "100", "--propagation", "ts1", "--population", "16", "--elites", "4",
        "--iterations", "2", "--horizon", "3", "--particles", "2", "--members", "2",
        "--hidden-size", "16", "--hidden-layers", "1", "--max-epochs", "2",
        "--seed", "0", "--out", str(tmp_path / "run"),
    ])
    out = mod.main(args)
    records = _records(out)
    assert [r["global_step"] for r in records] == [50, 100]
    assert records[0]["charts/random"] and not records[1]["charts/random"]
    assert "model/train_nll" in records[0] and "perf/sps" in records[1]
    assert json.loads((out / "config.json").read_text())["config"]["propagation"] == "ts1"


@pytest.mark.slow
def test_factored_mcts_idea_tiny(tmp_path):
    mod = _load("factored_mcts_idea")
    args = mod.parse_args([
        "--total-steps", "40", "--eval-episodes", "1", "--max-steps", "4", "--simulations", "8",
        "--horizon", "4", "--seed", "0", "--out", str(tmp_path / "run"),
    ])
    records = _records(mod.main(args))
    assert records[0]["global_step"] == 40 and 0 <= records[0]["model/edge_recall"] <= 1
    assert [r["policy"] for r in records[1:]] == ["random", "mcts", "shooting"]
    for r in records[1:]:
        assert 0.0 <= r[f"eval/{r['policy']}/success_rate"] <= 1.0
