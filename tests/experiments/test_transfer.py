"""experiments/transfer.py: conditions, ratios and the table by hand; on a tiny suite (Reacher,
ensemble and oracle, 1 seed, 2 training and 2 evaluation episodes): every model faces the same
episodes, and an interrupted suite resumes without recomputing anything that finished and ends
with the same table as an uninterrupted run of the same seed (so the same seed gives the same
table), also when the training was saved by code that lacked a config field. --trained, on a
tiny 2-episode pets.py run on Pusher: no training runs, the evaluated model is the pets
checkpoint's to the bit, the rows say where it was trained, a resumed suite
needs no pets run and recomputes nothing; each refusal is one line, exit status 2. A suite in
parts (--first-seed, --only-conditions, --results): the seeds and conditions by hand, the results
CSV merged by hand and refused for another suite, and the tiny suite's parts add up to its whole,
to the last digit. Two blocks: tests/experiments/test_transfer_blocks.py."""

import csv
import json
import shutil
from collections import defaultdict

import jax
import numpy as np
import pytest
from flax import serialization

import experiments.mpc_episodes as mpc_episodes
import prototypes.agents.episode as episode_lib
import prototypes.config as cfglib
from prototypes.data.runs import RunDir
from prototypes.envs.variants import FACTORS, DistractorFactor, RegionFactor
from tests.scripts import load_script

transfer = load_script("experiments/transfer.py", "transfer_script")
pets = load_script("experiments/pets.py", "pets_script_for_transfer")

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
# in training episode 2; in the 1st episode of the 2nd condition; in its 2nd episode (its 1st,
# logged, is kept: a FetchPush oracle episode takes a minute)
@pytest.mark.parametrize("stop_at", [2, 5, 6])
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


@pytest.mark.slow
def test_training_saved_before_a_field_was_added_resumes(tiny_run, tmp_path, monkeypatch):
    # interrupted in training episode 2, by code that had no structured.surface_features yet (so
    # it ran without them: the field's `absent` value, off, not today's default)
    out = tmp_path / "run"
    older_flags = [*TINY, "--no-structured.surface-features"]
    real = cfglib.to_dict

    def older_to_dict(cfg, *args, **kw):
        flat = real(cfg, *args, **kw)
        flat.pop("structured.surface_features", None)
        return flat

    with monkeypatch.context() as older:
        older.setattr(cfglib, "to_dict", older_to_dict)
        older.setattr(transfer, "to_dict", older_to_dict)
        _counting(older, stop_at=2)
        with pytest.raises(KeyboardInterrupt):
            transfer.main([*older_flags, "--out", str(out)])
    for path in (out / "config.json", out / "train" / "ensemble_seed0" / "config.json"):
        assert "structured.surface_features" not in json.loads(path.read_text())["config"]
    calls = _counting(monkeypatch)
    transfer.main([*older_flags, "--out", str(out), "--resume"])
    assert len(calls) == EPISODES - 1
    assert (out / "per_seed.csv").read_text() == (tiny_run / "per_seed.csv").read_text()
    with pytest.raises(SystemExit):  # another value of the missing field is a difference
        transfer.main([*TINY, "--out", str(out), "--resume"])  # today's default: on


# --- --trained: models trained by experiments/pets.py ------------------------------------------

PETS_TINY = [
    "--env", "pusher", "--episodes", "2", "--random-episodes", "1", "--population", "16",
    "--elites", "4", "--horizon", "3", "--iterations", "1", "--particles", "2", "--ensemble", "2",
    "--model.hidden-size", "16", "--model.hidden-layers", "1", "--model.max-epochs", "2",
    "--no-progress",
]  # fmt: skip
REUSE_TINY = [
    "--env", "pusher", "--models", "ensemble", "--factors", "start", "--seeds", "1",
    "--eval-episodes", "2", "--population", "16", "--planner.elites", "4", "--horizon", "3",
    "--iterations", "1", "--particles", "2", "--ensemble.members", "2",
    "--ensemble.hidden-size", "16", "--ensemble.hidden-layers", "1", "--ensemble.max-epochs", "2",
    "--no-progress",
]  # fmt: skip
REUSE_EPISODES = 2 * 2  # evaluation only: conditions train and start:test (start:held skipped)


def _key_data(tree):
    def data(x):
        return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    return jax.tree.map(data, tree)


@pytest.fixture(scope="module")
def pets_run(tmp_path_factory):
    """A finished 2-episode pets.py run on Pusher (seed 0) and its --trained pattern."""
    root = tmp_path_factory.mktemp("pets")
    pets.main([*PETS_TINY, "--seed", "0", "--out", str(root / "pets_s0")])
    return root / "pets_s0", str(root / "pets_s{seed}")


@pytest.fixture(scope="module")
def reused_run(pets_run, tmp_path_factory):
    """transfer.py --trained ensemble=<the pets run>: its run directory, the episodes driven and
    the model state every evaluation planned with."""
    out = tmp_path_factory.mktemp("reuse") / "run"
    calls, evaluated = [], []
    real_drive, real_evaluate = episode_lib.drive_episode, transfer.evaluate

    def drive(*args, **kw):
        calls.append(1)
        return real_drive(*args, **kw)

    def evaluate(cfg, run, kind, seed, condition, agent, state, *rest):
        evaluated.append((kind, seed, condition, state.model))
        return real_evaluate(cfg, run, kind, seed, condition, agent, state, *rest)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(episode_lib, "drive_episode", drive)
        mp.setattr(mpc_episodes, "drive_episode", drive)
        mp.setattr(transfer, "evaluate", evaluate)
        transfer.main([*REUSE_TINY, "--trained", f"ensemble={pets_run[1]}", "--out", str(out)])
    return out, calls, evaluated


@pytest.mark.slow
def test_trained_evaluates_the_pets_model_without_training(pets_run, reused_run):
    pets_dir, _ = pets_run
    out, calls, evaluated = reused_run
    assert not (out / "train").exists()  # nothing trained here
    assert len(calls) == REUSE_EPISODES  # only evaluation episodes ran
    assert [c for _, _, c, _ in evaluated] == ["train", "start:test"]  # start:held skipped
    saved = RunDir(pets_dir).load_checkpoint()["state"]["model"]
    for *_, model in evaluated:  # the very parameters (and normaliser...) of the pets checkpoint
        mine = serialization.to_state_dict(_key_data(model))
        assert jax.tree.structure(mine) == jax.tree.structure(saved)
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(saved), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # pets.py refits after every episode but the last: after episode 1 of 2, on 1 episode
    origin = f"pets run {pets_dir.resolve()}, fit on 1 episode (checkpoint after episode 2 of 2)"
    with open(out / "per_seed.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["condition"] for r in rows] == ["train", "start:test"]
    assert all(r["trained_on"] == origin + ", whole of A" for r in rows)
    with open(out / "summary.csv") as f:
        assert all(r["trained_on"] == origin + ", whole of A" for r in csv.DictReader(f))
    table = (out / "table.md").read_text()
    assert "| ensemble (pets.py run) |" in table and "| not held out |" in table
    assert origin in table
    marker = json.loads((out / "reused" / "ensemble_seed0" / "origin.json").read_text())
    assert marker["source_config"] == json.loads((pets_dir / "config.json").read_text())
    assert (marker["episode"], marker["episodes"], marker["fit_on"]) == (2, 2, 1)


@pytest.mark.slow
def test_trained_suite_resumes_without_the_pets_run(pets_run, reused_run, tmp_path, monkeypatch):
    source = tmp_path / "pets_s0"
    shutil.copytree(pets_run[0], source)
    argv = [*REUSE_TINY, "--trained", f"ensemble={tmp_path}/pets_s{{seed}}", "--out"]
    out = tmp_path / "run"
    _counting(monkeypatch, stop_at=2)  # in the second evaluation episode
    with pytest.raises(KeyboardInterrupt):
        transfer.main([*argv, str(out)])
    source.rename(tmp_path / "moved")  # the copy in reused/ is all a resume needs
    calls = _counting(monkeypatch)
    transfer.main([*argv, str(out), "--resume"])
    assert len(calls) == REUSE_EPISODES - 1
    returns = [(r["condition"], r["episode"], r["return"]) for r in _metrics(out)]
    assert sorted(returns) == sorted(
        (r["condition"], r["episode"], r["return"]) for r in _metrics(reused_run[0])
    )  # the same model and episodes as the uninterrupted suite, to the last digit
    calls.clear()
    transfer.main([*argv, str(out), "--resume"])
    assert calls == []


@pytest.mark.slow
def test_oracle_seeds_runs_the_oracle_with_seed_0_only(tiny_run, tmp_path, monkeypatch):
    """--seeds 2 --oracle-seeds 1, the oracle alone: 3 conditions x 2 episodes of seed 0, the
    very returns seed 0 of the full tiny suite got (same episodes, same planner keys)."""
    calls = _counting(monkeypatch)
    argv = [*TINY, "--models", "oracle", "--seeds", "2", "--oracle-seeds", "1"]
    transfer.main([*argv, "--out", str(tmp_path / "run")])
    assert len(calls) == 3 * 2
    mine = {(r["condition"], r["episode"]): r["return"] for r in _metrics(tmp_path / "run")}
    full = {
        (r["condition"], r["episode"]): r["return"]
        for r in _metrics(tiny_run)
        if r["model"] == "oracle"
    }
    assert mine == full
    with open(tmp_path / "run" / "per_seed.csv") as f:
        assert {r["seed"] for r in csv.DictReader(f)} == {"0"}
    with open(tmp_path / "run" / "summary.csv") as f:
        assert {r["seeds"] for r in csv.DictReader(f)} == {"1"}
    assert "mean over 2 seed(s) (1 for the oracle)" in (tmp_path / "run" / "table.md").read_text()


def _pets_config(tmp_path, **changed):
    """A pets.py run directory holding only config.json (PETS_TINY's config, `changed` fields
    replaced): enough for every refusal that comes before reading a checkpoint."""
    from prototypes.config import to_dict

    config = {**to_dict(pets.COMMAND.parse(PETS_TINY)[0]), **changed}
    run = tmp_path / "pets_s0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": config}))
    return str(tmp_path / "pets_s{seed}")


@pytest.mark.parametrize(
    "changed, extra, fragment",
    [
        (None, [], "trained ensemble seed 0: no pets.py run at {tmp}/pets_s0 (no config.json)"),
        ({}, [], "no checkpoint in {tmp}/pets_s0/checkpoints"),
        ({"env": "reacher"}, [], "differs from this suite in env: the run has 'reacher', "
         "this suite 'pusher'"),
        ({"model_kind": "structured"}, [], "differs from this suite in model_kind: the run has "
         "'structured', this suite 'ensemble'"),
        ({"variant": "mass=2"}, [], "differs from this suite in variant: the run has 'mass=2.0', "
         "this suite 'none'"),
        ({"model.hidden_size": 32}, [], "differs from this suite in model.hidden_size: the run "
         "has 32, this suite 16"),
        ({}, ["--context", "given"], "a pets.py run never saw context features"),
        ({}, ["--factors", "start,mass"], "trained with factor 'mass': a pets.py run (variant "
         "none) trained on pusher's own distribution, which is range A only for distractors, "
         "start"),
        ({}, ["--models", "structured"], "trained model 'ensemble' is not in --models"),
        ({}, ["--models", "ensemble,oracle", "--trained", "oracle={tmp}/x"],
         "trained model 'oracle' is the true simulator"),
        ({}, ["--seeds", "2", "--trained", "ensemble={tmp}/pets_s0"],
         "names one run for all 2 seeds"),
    ],
)  # fmt: skip
def test_trained_refusals_are_one_line(changed, extra, fragment, tmp_path, capsys):
    pattern = str(tmp_path / "pets_s{seed}")
    if changed is not None:
        pattern = _pets_config(tmp_path, **changed)
    extra = [a.format(tmp=tmp_path) for a in extra]
    trained = [] if "--trained" in extra else ["--trained", f"ensemble={pattern}"]
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        transfer.main([*REUSE_TINY, *trained, *extra, "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("transfer.py: error: ") and "Traceback" not in "\n".join(err)
    assert fragment.format(tmp=tmp_path) in err[-1], err[-1]
    assert not out.exists()  # refused before anything was written


def test_trained_run_saved_before_a_field_was_added(tmp_path, capsys):
    """A run whose config lacks a model field matches at the field's declared default only."""
    from prototypes.config import declared_defaults

    cfg = pets.COMMAND.parse(PETS_TINY)[0]
    declared = declared_defaults(cfg.model)
    at_default = next(k for k, v in declared.items() if getattr(cfg.model, k) == v)
    for missing, fragment in (
        (at_default, "no checkpoint in"),  # the config check passed
        ("hidden_size", "differs from this suite in model.hidden_size: the run has "
         "'(no such field)', this suite 16"),
    ):  # fmt: skip
        pattern = _pets_config(tmp_path / missing)
        config_path = tmp_path / missing / "pets_s0" / "config.json"
        meta = json.loads(config_path.read_text())
        del meta["config"][f"model.{missing}"]
        config_path.write_text(json.dumps(meta))
        with pytest.raises(SystemExit):
            transfer.main(
                [*REUSE_TINY, "--trained", f"ensemble={pattern}", "--out", str(tmp_path / "o")]
            )
        assert fragment in capsys.readouterr().err.strip().splitlines()[-1]


def test_trained_flags_join_and_pets_fits_by_hand():
    assert transfer.join_repeated(
        ["--env", "x", "--trained", "a=1", "--seeds", "2", "--trained=b=2"], "--trained"
    ) == ["--env", "x", "--trained", "a=1,b=2", "--seeds", "2"]
    cfg = _cfg("--models", "ensemble,structured", "--factors", "start",
               "--trained", "ensemble=/r/e{seed}, structured=/r/s{seed}")  # fmt: skip
    assert cfg.trained_runs == {"ensemble": "/r/e{seed}", "structured": "/r/s{seed}"}
    assert transfer.model_conditions(cfg, "ensemble") == ["train", "start:test"]
    # pets.py (500 episodes, 10 random, one env) refits after every episode but the last
    fetch = {"episodes": 500, "random_episodes": 10}
    assert transfer.fitted_episodes(fetch, 171) == 171
    assert transfer.fitted_episodes(fetch, 500) == 499
    # 5 episodes, 1 random, 2 envs: rounds [0], [1, 2], [3, 4]; a fit after rounds 1 and 2 only
    batched = {"episodes": 5, "random_episodes": 1, "num_envs": 2}
    assert [transfer.fitted_episodes(batched, n) for n in (1, 3, 5)] == [1, 3, 3]


def test_own_is_a_matches_the_variants():
    """OWN_IS_A lists exactly the factors whose A is the task's own reset distribution:
    distractors (A = 0) and the region factors variants.py marks "gymnasium: A"."""
    for env, factors in FACTORS.items():
        own = {
            name
            for name, f in factors.items()
            if (isinstance(f, DistractorFactor) and f.a == (0, 0))
            or (isinstance(f, RegionFactor) and f.changes.endswith("gymnasium: A"))
        }
        assert transfer.OWN_IS_A.get(env, set()) == own, env


# --- a suite in parts: --first-seed, --only-conditions and the results CSV -----------------------


def test_parts_seeds_and_conditions_by_hand():
    only = ("--only-conditions", "train,mass:test")
    cfg = _cfg("--models", "ensemble,oracle", "--factors", "mass", "--first-seed", "2",
               "--seeds", "2", "--oracle-seeds", "1", *only)  # fmt: skip
    assert list(transfer.suite_seeds(cfg)) == [2, 3]
    assert list(transfer.model_seeds(cfg, "ensemble")) == [2, 3]
    assert list(transfer.model_seeds(cfg, "oracle")) == [2]
    assert transfer.model_conditions(cfg, "ensemble") == ["train", "mass:test"]
    assert list(transfer.conditions(cfg)) == ["train", "mass:held", "mass:test"]  # the table's
    assert transfer.results_path(cfg).name == "transfer_pusher_hidden_mass.csv"
    ranged = _cfg("--factors", "mass=0.25~0.4,goal", "--context", "given")
    assert transfer.results_path(ranged).name == "transfer_pusher_given_mass_0.25_0.4-goal.csv"
    records = [
        {"model": "ensemble", "seed": s, "condition": c, "return": -1.0}
        for s in (2, 3)
        for c in ("train", "mass:test")
    ]
    rows = transfer.per_seed_rows(cfg, records)
    assert [(r["seed"], r["condition"]) for r in rows] == [
        (2, "train"), (2, "mass:test"), (3, "train"), (3, "mass:test"),
    ]  # fmt: skip


def _part_rows(model, seed, values):
    return [
        {"env": "pusher", "context": "hidden", "model": model, "seed": seed, "condition": c,
         "variant": "", "return": v, "episodes": 2, "trained_on": "", "note": ""}
        for c, v in values.items()
    ]  # fmt: skip


def test_results_parts_merge_and_refuse_another_suite_by_hand(tmp_path):
    path = tmp_path / "transfer_pusher_hidden_mass.csv"
    part = ("--models", "ensemble", "--factors", "mass", "--seeds", "1")
    older = "--no-structured.surface-features"  # how the older code below ran
    part = (*part, older)
    cfg0 = _cfg(*part)
    transfer.merge_results(cfg0, _part_rows("ensemble", 0, {"train": -40.0, "mass:test": -80.0}),
                           path)  # fmt: skip
    # the first part's sidecar, written by older code before structured.surface_features existed
    side = path.with_suffix(".json")
    first = json.loads(side.read_text())
    assert first.pop("structured.surface_features") is False
    side.write_text(json.dumps(first))
    cfg1 = _cfg(*part, "--first-seed", "1")  # another seed: a part of the same suite
    merged = transfer.merge_results(
        cfg1, _part_rows("ensemble", 1, {"train": -60.0, "mass:test": -70.0}), path
    )
    assert side.read_text() == json.dumps(first)  # matched (a field added since, at the value
    # that older code meant) and left as the first part wrote it, so its parts still match it
    today = _cfg("--models", "ensemble", "--factors", "mass", "--first-seed", "2")  # table on
    with pytest.raises(transfer.ConfigError, match="structured.surface_features None there, True"):
        transfer.check_results(today, path)
    assert [(r["seed"], r["condition"], r["return"]) for r in merged] == [
        (0, "train", -40.0), (0, "mass:test", -80.0), (1, "train", -60.0), (1, "mass:test", -70.0),
    ]  # fmt: skip
    # seed 1's mass:test again: replaced, not added; the oracle's part adds its rows
    transfer.merge_results(cfg1, _part_rows("ensemble", 1, {"mass:test": -120.0}), path)
    oracle = _cfg("--models", "oracle", "--factors", "mass", "--seeds", "1", older)
    merged = transfer.merge_results(oracle, _part_rows("oracle", 0, {"train": -30.0}), path)
    assert len(merged) == 5 and merged[-1]["model"] == "oracle"
    assert transfer.read_results(cfg0, path) == merged
    table, table_cfg = transfer.results_table(cfg0, merged)
    assert (table_cfg.model_list, table_cfg.seeds, table_cfg.oracle_seeds) == (
        ["ensemble", "oracle"], 2, 1,
    )  # fmt: skip
    # ensemble train: mean of -40 and -60; mass:test: mean of -80 and -120 = -100, ratio 50/100
    assert "| ensemble | -50.0 [-60.0, -40.0] | - | -100.0 [-120.0, -80.0] (0.50) |" in table
    assert "| oracle (true sim) | -30.0 [-30.0, -30.0] | - | - |" in table
    assert "mean over 2 seed(s) (1 for the oracle)" in table
    # another suite (other evaluation episodes): refused, naming the field; nothing written
    before = path.read_text()
    other = _cfg(*part, "--eval-episodes", "10")
    with pytest.raises(transfer.ConfigError, match="eval_episodes 50 there, 10 here"):
        transfer.merge_results(other, _part_rows("ensemble", 2, {"train": -1.0}), path)
    assert path.read_text() == before
    path.with_suffix(".json").unlink()  # rows whose suite nobody can tell: refused too
    with pytest.raises(transfer.ConfigError, match="has no transfer_pusher_hidden_mass.json"):
        transfer.check_results(cfg0, path)


def test_results_table_names_cells_with_fewer_seeds():
    cfg = _cfg("--models", "ensemble", "--factors", "mass", "--seeds", "1")
    rows = [*_part_rows("ensemble", 0, {"train": -40.0, "mass:test": -80.0}),
            *_part_rows("ensemble", 1, {"train": -60.0})]  # fmt: skip
    table, _ = transfer.results_table(cfg, rows)
    assert table.splitlines()[-1] == "fewer seeds so far (seeds): ensemble mass:test (1)"


@pytest.mark.slow
def test_parts_add_up_to_the_whole_suite(tiny_run, tmp_path, monkeypatch):
    """The tiny suite in two parts (train; then mass:held and mass:test), each in its own run
    directory, with --results: the results CSV holds the whole suite's per-seed rows and its
    table is the whole suite's, to the last digit; `--results-table` prints it, running nothing."""
    monkeypatch.setattr(transfer, "RESULTS", tmp_path / "results")
    for i, only in enumerate(["train", "mass:held,mass:test"]):
        transfer.main(
            [*TINY, "--only-conditions", only, "--results", "--out", str(tmp_path / f"p{i}")]
        )
    csv_path = tmp_path / "results" / "transfer_reacher_hidden_mass.csv"
    assert csv_path.read_text() == (tiny_run / "per_seed.csv").read_text()
    cfg = transfer.COMMAND.parse([*TINY, "--results"])[0]
    table, _ = transfer.results_table(cfg, transfer.read_results(cfg))
    assert table + "\n" == (tiny_run / "table.md").read_text()
    calls = _counting(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        transfer.main([*TINY, "--results-table"])
    assert exc.value.code == 0 and calls == []


def test_results_table_without_results_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(transfer, "RESULTS", tmp_path)
    with pytest.raises(SystemExit) as exc:
        transfer.main(["--env", "pusher", "--factors", "goal", "--results-table"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    want = (
        f"no results of this suite yet: {tmp_path}/transfer_pusher_hidden_goal.csv does not exist"
    )
    assert err[-1].startswith("transfer.py: error: " + want), err[-1]


@pytest.mark.slow
def test_a_given_suite_takes_the_oracle_rows_of_its_hidden_twin(tmp_path, monkeypatch):
    """The oracle never sees the context: planned in a context-given suite, its per-seed rows
    equal the context-hidden suite's to the last digit. So with --results a given suite plans no
    oracle episode that the hidden suite's results CSV holds, and its tables carry those rows."""
    monkeypatch.setattr(transfer, "RESULTS", tmp_path / "results")
    oracle = [*TINY[: TINY.index("--models")], "--models", "oracle",
              *TINY[TINY.index("--models") + 2 :]]  # fmt: skip
    given = [*oracle, "--context", "given"]
    transfer.main([*oracle, "--results", "--out", str(tmp_path / "hidden")])
    transfer.main([*given, "--out", str(tmp_path / "given_alone")])  # no --results: it plans
    hidden_rows = transfer.read_results(transfer.COMMAND.parse([*oracle, "--results"])[0])
    with open(tmp_path / "given_alone" / "per_seed.csv", newline="") as f:
        alone = list(csv.DictReader(f))
    assert len(hidden_rows) == len(alone) == 3  # train, mass:held, mass:test
    for h, g in zip(hidden_rows, alone, strict=True):
        assert (h["condition"], repr(h["return"])) == (g["condition"], repr(float(g["return"])))
    calls = _counting(monkeypatch)
    transfer.main([*given, "--results", "--out", str(tmp_path / "given")])
    assert calls == []  # every oracle row came from the hidden suite
    cfg = transfer.COMMAND.parse([*given, "--results"])[0]
    assert not transfer.results_path(cfg).exists()  # nothing of its own to write
    twin = transfer.with_twin_oracle(cfg, [])
    assert [(r["condition"], r["return"], r["context"]) for r in twin] == [
        (h["condition"], h["return"], "given") for h in hidden_rows
    ]
    assert all(r["trained_on"].endswith("from transfer_reacher_hidden_mass.csv") for r in twin)
