"""experiments/transfer.py: conditions, ratios and the table by hand; on a tiny suite (Reacher,
ensemble and oracle, 1 seed, 2 training and 2 evaluation episodes): every model faces the same
episodes, and an interrupted suite resumes without recomputing anything that finished and ends
with the same table as an uninterrupted run of the same seed (so the same seed gives the same
table)."""

import json
from collections import defaultdict

import pytest

import experiments.mpc_episodes as mpc_episodes
import prototypes.agents.episode as episode_lib
from tests.scripts import load_script

transfer = load_script("experiments/transfer.py", "transfer_script")

TINY = [
    "--env", "reacher", "--models", "ensemble,oracle", "--factors", "mass", "--seeds", "1",
    "--train-episodes", "2", "--eval-episodes", "2", "--population", "16",
    "--planner.elites", "4", "--horizon", "3", "--iterations", "1", "--particles", "2",
    "--ensemble.members", "2", "--ensemble.hidden-size", "8", "--ensemble.max-epochs", "2",
    "--no-progress",
]  # fmt: skip
EPISODES = 2 + 2 * 3 * 2  # training (ensemble) + eval: 2 models x 3 conditions x 2 episodes


def _cfg(*argv):
    return transfer.COMMAND.parse(["--env", "pusher", *argv])[0]


def test_conditions_by_hand():
    conds = transfer.conditions(_cfg("--factors", "mass,distractors"))
    assert {k: str(v) for k, v in conds.items()} == {
        "train": "distractors=Atrain,mass=Atrain",
        "mass:held": "distractors=Atrain,mass=Aheld",
        "mass:test": "distractors=Atrain,mass=B",
        "distractors:test": "distractors=B,mass=Atrain",  # no held-out count: A is {0}
    }
    own = transfer.conditions(_cfg("--factors", "damping=0.1~0.3"))
    assert str(own["damping:test"]) == "damping=0.1~0.3"


def test_given_context_env_matches_the_models_spec():
    cfg = _cfg("--factors", "mass,goal", "--context", "given")
    conds = transfer.conditions(cfg)
    width = transfer.context_width(conds["train"])
    assert width == 2 + 1  # goal x, y and the mass multiplier
    spec = transfer.planning_spec(cfg, width)
    for name in ("train", "goal:test"):
        env = transfer.make_env(cfg, conds[name], context=True)
        obs, info = env.reset(seed=0)
        assert obs.shape == (spec.obs_dim,) == (23 + 3,)
        assert obs[-1] == info["variant"]["mass"]
        assert list(obs[-3:-1]) == info["variant"]["goal"]
    assert transfer.make_env(cfg, conds["train"], context=False).reset(seed=0)[0].shape == (23,)


def test_ratio_by_hand():
    assert transfer.ratio(0.8, 0.6, success=True) == pytest.approx(0.75)  # 0.6 / 0.8
    assert transfer.ratio(-40.0, -50.0, success=False) == pytest.approx(0.8)  # costs: 40 / 50
    assert transfer.ratio(-40.0, -20.0, success=False) == pytest.approx(2.0)  # better than train


def test_summary_and_table_by_hand():
    cfg = _cfg("--models", "ensemble", "--factors", "mass", "--seeds", "2")
    rows = [
        {"model": "ensemble", "seed": s, "condition": c, "return": v}
        for s, c, v in [
            (0, "train", -40.0), (1, "train", -60.0),  # mean -50
            (0, "mass:held", -50.0), (1, "mass:held", -50.0),
            (0, "mass:test", -100.0), (1, "mass:test", -100.0),
        ]
    ]  # fmt: skip
    summary = {s["condition"]: s for s in transfer.summarize(cfg, rows)}
    assert summary["train"]["return"] == -50.0
    # two seeds: the bootstrap resamples {-40, -60}, so the interval spans [-60, -40]
    assert (summary["train"]["ci_low"], summary["train"]["ci_high"]) == (-60.0, -40.0)
    assert summary["mass:test"]["ratio"] == pytest.approx(0.5)  # cost 50 at train, 100 at test
    assert summary["mass:held"]["ratio"] == pytest.approx(1.0)
    table = transfer.format_table(cfg, list(summary.values()))
    assert "| ensemble | -50.0 [-60.0, -40.0] | -50.0 [-50.0, -50.0] (1.00) |" in table


def _counting(monkeypatch, stop_at=None):
    """Count episodes (training and evaluation); raise KeyboardInterrupt at call `stop_at`."""
    calls = []
    real = episode_lib.drive_episode

    def drive(*args, **kw):
        calls.append(1)
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(episode_lib, "drive_episode", drive)
    monkeypatch.setattr(mpc_episodes, "drive_episode", drive)
    return calls


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "run"
    transfer.main([*TINY, "--out", str(out)])
    return out


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_model_faces_the_same_episodes(tiny_run):
    seen = defaultdict(set)
    records = _metrics(tiny_run)
    assert len(records) == 2 * 3 * 2
    for r in records:
        seen[(r["condition"], r["episode"])].add((r["reset_seed"], json.dumps(r["variant"])))
    assert all(len(v) == 1 for v in seen.values())  # one reset seed and draw per episode
    assert len({r["model"] for r in records}) == 2
    masses = {r["condition"]: [] for r in records}
    for r in records:
        masses[r["condition"]].append(r["variant"]["mass"])
    assert all(2.5 <= m <= 4.0 for m in masses["mass:test"])  # range B
    assert all(int((m - 0.5) // 0.1875) % 2 == 1 for m in masses["mass:held"])  # odd bins of A
    assert all(int((m - 0.5) // 0.1875) % 2 == 0 for m in masses["train"])  # even bins of A
    for name in ("table.md", "per_seed.csv", "summary.csv", "plots/transfer.png"):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / "train" / "ensemble_seed0" / "metrics.jsonl").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [2, 5])  # in training episode 2; in the 3rd evaluation
def test_interrupted_suite_resumes_and_recomputes_nothing(tiny_run, tmp_path, monkeypatch, stop_at):
    out = tmp_path / "run"
    _counting(monkeypatch, stop_at)
    with pytest.raises(KeyboardInterrupt):
        transfer.main([*TINY, "--out", str(out)])
    finished = stop_at - 1  # episodes that ended (and were logged) before the interrupt
    calls = _counting(monkeypatch)
    transfer.main([*TINY, "--out", str(out), "--resume"])
    assert len(calls) == EPISODES - finished
    train_log = (out / "train" / "ensemble_seed0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["episode"] for line in train_log] == [1, 2]  # trained once
    # same seed, another directory, interrupted or not: the same table, to the last digit
    for name in ("table.md", "per_seed.csv"):
        assert (out / name).read_text() == (tiny_run / name).read_text()
    calls.clear()
    transfer.main([*TINY, "--out", str(out), "--resume"])  # all finished: nothing runs
    assert calls == []
