"""experiments/transfer.py: conditions, ratios and the table by hand; on a tiny suite (Reacher,
ensemble and oracle, 1 seed, 2 training and 2 evaluation episodes): every model faces the same
episodes, and an interrupted suite resumes without recomputing anything that finished and ends
with the same table as an uninterrupted run of the same seed (so the same seed gives the same
table). --trained, on a tiny 2-episode pets.py run on Pusher: no training runs, the evaluated
model is the pets checkpoint's to the bit, the rows say where it was trained, a resumed suite
needs no pets run and recomputes nothing; each refusal is one line, exit status 2. Two blocks
(blocks:test, FetchPush -> fetch_push2): a condition only when asked; the ensemble's 'cannot' row
and the ratio by hand; the oracle of two blocks against the env while block 2 is pushed; on a tiny
suite the structured and oracle rows face the same episode and a resumed suite recomputes
nothing."""

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


# --- blocks: more objects than trained on (fetch_push -> fetch_push2) --------------------------

BLOCKS_TINY = [
    "--env", "fetch_push", "--models", "ensemble,structured,oracle", "--factors", "blocks",
    "--seeds", "1", "--train-episodes", "1", "--random-episodes", "1", "--eval-episodes", "1",
    "--population", "8", "--planner.elites", "2", "--horizon", "2", "--iterations", "1",
    "--particles", "2", "--ensemble.members", "2", "--ensemble.hidden-size", "8",
    "--ensemble.max-epochs", "1", "--structured.members", "2", "--structured.hidden-size", "8",
    "--structured.hidden-layers", "1", "--structured.max-epochs", "1", "--oracle.threads", "1",
    "--no-progress",
]  # fmt: skip
# drive_episode calls, in order: ensemble training (1), ensemble train (2), structured training
# (3), structured train (4) and blocks:test (5), oracle train (6) and blocks:test (7); the
# ensemble has no blocks:test episode (it cannot take a second block)
BLOCKS_EPISODES = 7


def _fp(*argv):
    return transfer.COMMAND.parse(["--env", "fetch_push", *argv])[0]


def test_blocks_is_a_condition_only_when_asked():
    assert "blocks:test" not in transfer.conditions(_fp("--factors", "goal"))
    cfg = _fp("--models", "ensemble,structured,oracle", "--factors", "goal,blocks")
    conds = transfer.conditions(cfg)
    assert list(conds) == ["train", "goal:held", "goal:test", "blocks:test"]
    assert str(conds["train"]) == "goal=Atrain"  # blocks adds no setting to the others
    assert (conds["blocks:test"].task, str(conds["blocks:test"])) == ("fetch_push2", "none")
    assert transfer.model_conditions(cfg, "ensemble") == ["train", "goal:held", "goal:test"]
    for kind in ("structured", "oracle"):
        assert transfer.model_conditions(cfg, kind)[-1] == "blocks:test"
    # --factors blocks alone: train is plain fetch_push, blocks:test plain fetch_push2
    alone = transfer.conditions(_fp("--factors", "blocks"))
    assert {k: (v.task, str(v)) for k, v in alone.items()} == {
        "train": ("fetch_push", "none"),
        "blocks:test": ("fetch_push2", "none"),
    }
    # a pets.py run trained on one block: that is range A of blocks, so --trained allows it
    trained = _fp("--models", "structured", "--factors", "goal,blocks",
                  "--trained", "structured=/r/s{seed}")  # fmt: skip
    assert transfer.model_conditions(trained, "structured") == ["train", "goal:test", "blocks:test"]


def test_blocks_rows_table_and_ratio_by_hand():
    cfg = _fp("--models", "ensemble,structured", "--factors", "blocks", "--seeds", "2")
    records = [
        {"model": m, "seed": s, "condition": c, "success": v}
        for m, s, c, v in [
            ("ensemble", 0, "train", 0.5), ("ensemble", 1, "train", 0.5),
            ("structured", 0, "train", 1.0), ("structured", 1, "train", 0.6),  # mean 0.8
            ("structured", 0, "blocks:test", 0.6), ("structured", 1, "blocks:test", 0.6),
        ]
    ]  # fmt: skip
    rows = transfer.per_seed_rows(cfg, records)
    cannot = [r for r in rows if r["note"]]
    assert [(r["model"], r["seed"], r["condition"]) for r in cannot] == [
        ("ensemble", 0, "blocks:test"),
        ("ensemble", 1, "blocks:test"),
    ]
    assert all(r["note"] == "cannot: fixed observation size" for r in cannot)
    assert all((r["success"], r["episodes"]) == ("", 0) for r in cannot)  # no number
    assert {r["variant"] for r in rows if r["condition"] == "blocks:test"} == {"fetch_push2: none"}
    summary = {(s["model"], s["condition"]): s for s in transfer.summarize(cfg, rows)}
    assert summary[("ensemble", "blocks:test")]["note"] == "cannot: fixed observation size"
    assert summary[("ensemble", "blocks:test")]["success"] == ""
    assert summary[("structured", "blocks:test")]["ratio"] == pytest.approx(0.75)  # 0.6 / 0.8
    table = transfer.format_table(cfg, list(summary.values()))
    assert "| ensemble | 0.50 [0.50, 0.50] | cannot: fixed observation size |" in table
    assert "| structured | 0.80 [0.60, 1.00] | 0.60 [0.60, 0.60] (0.75) |" in table
    # one record per seed and condition; the ensemble's 0 episodes on blocks:test do not count
    assert table.splitlines()[0].endswith("; 1 evaluation episodes each")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--env", "pusher", "--factors", "mass,blocks"],
         "factor 'blocks' (more objects than trained on) exists for fetch_push only, not pusher"),
        (["--env", "fetch_push", "--factors", "blocks", "--context", "given"],
         "factor 'blocks' with --context given"),
        (["--env", "fetch_push", "--factors", "blocks=3"], "blocks takes no value"),
        (["--env", "fetch_push", "--factors", "blocks,blocks"], "factor 'blocks' is given twice"),
    ],
)  # fmt: skip
def test_blocks_refusals_are_one_line(argv, fragment, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        transfer.main([*argv, "--seeds", "1", "--no-progress", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("transfer.py: error: ") and "Traceback" not in "\n".join(err)
    assert fragment in err[-1], err[-1]
    assert not out.exists()


def test_blocks_oracle_predicts_the_two_block_env():
    """The oracle of blocks:test, stepped from the env's own states while the gripper pushes
    block 2, predicts fetch_push's view of fetch_push2's next observation and the planning
    reward of fetch_push2 (block 1's) to float32 precision: it simulates both blocks."""
    from prototypes.envs import make
    from prototypes.models.registry import OracleConfig, make_model

    cfg = _fp("--models", "oracle", "--factors", "blocks")
    env = make("fetch_push2")
    spec = transfer.planning_spec(cfg, 0)
    model = transfer.oracle_view(
        make_model("oracle", OracleConfig(threads=1), spec, env), "fetch_push2"
    )
    reward2 = jax.jit(transfer.blocks_spec(cfg).reward_fn)
    predict = jax.jit(model.predict)
    cols = list(range(25)) + [40, 41, 42]  # fetch_push's flat obs inside fetch_push2's
    obs, _ = env.reset(seed=4)
    start = obs[25:28].copy()
    for t in range(16):  # at block 2 (down to its height first), as tests/envs/test_fetch_push2.py
        target = obs[25:28] if t >= 4 else np.r_[obs[25:27], obs[2]]
        action = np.r_[np.clip((target - obs[0:3]) / 0.05, -1, 1), 0.0].astype(np.float32)
        root = jax.tree.map(lambda x: x[None], model.encode((), obs))
        step = predict((), jax.random.key(0), root, action[None])
        nxt, *_ = env.step(action)
        np.testing.assert_allclose(np.asarray(step.obs.obs[0]), nxt[cols], atol=2e-5, rtol=0)
        want = reward2(obs.astype(np.float32), action, nxt.astype(np.float32))
        np.testing.assert_allclose(float(step.reward[0]), float(want), atol=1e-5)
        obs = nxt
    assert np.linalg.norm(obs[25:27] - start[:2]) > 0.01  # block 2 was pushed (> 1 cm)


@pytest.mark.slow
def test_blocks_suite_same_episodes_cannot_row_and_resume(tmp_path, monkeypatch):
    """A tiny blocks suite, interrupted in structured's blocks:test episode and resumed: the
    structured and oracle rows of blocks:test face the same episode (reset seed and block 2's
    start), the ensemble's row says it cannot, and nothing finished is recomputed."""
    out = tmp_path / "run"
    _counting(monkeypatch, stop_at=5)
    with pytest.raises(KeyboardInterrupt):
        transfer.main([*BLOCKS_TINY, "--out", str(out)])
    calls = _counting(monkeypatch)
    transfer.main([*BLOCKS_TINY, "--out", str(out), "--resume"])
    assert len(calls) == BLOCKS_EPISODES - 4  # episodes 1-4 had finished
    records = {(r["model"], r["condition"]): r for r in _metrics(out)}
    assert sorted(records) == [
        ("ensemble", "train"), ("oracle", "blocks:test"), ("oracle", "train"),
        ("structured", "blocks:test"), ("structured", "train"),
    ]  # fmt: skip
    assert len({r["reset_seed"] for r in records.values()}) == 1  # episode 0 of every condition
    two = [records[(m, "blocks:test")]["variant"] for m in ("structured", "oracle")]
    assert two[0] == two[1] and two[0]["blocks"] == 2 and len(two[0]["block2_start"]) == 3
    with open(out / "per_seed.csv") as f:
        rows = {(r["model"], r["condition"]): r for r in csv.DictReader(f)}
    assert rows[("ensemble", "blocks:test")]["note"] == "cannot: fixed observation size"
    assert rows[("ensemble", "blocks:test")]["success"] == ""
    assert rows[("structured", "blocks:test")]["success"] in ("0.0", "1.0")
    assert "| ensemble | " in (out / "table.md").read_text()
    assert "cannot: fixed observation size" in (out / "table.md").read_text()
    calls.clear()
    transfer.main([*BLOCKS_TINY, "--out", str(out), "--resume"])  # all finished: nothing runs
    assert calls == []
