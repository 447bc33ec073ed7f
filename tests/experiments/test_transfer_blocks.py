"""experiments/transfer.py, two blocks (blocks:test, FetchPush -> fetch_push2): a condition only
when asked; the ensemble's 'cannot' row and the ratio by hand; the oracle of two blocks against
the env while block 2 is pushed; on a tiny suite the structured and oracle rows face the same
episode and a resumed suite recomputes nothing. (Apart from tests/experiments/test_transfer.py so
that the two heavy files run on both pytest-xdist workers.)"""

import csv

import jax
import numpy as np
import pytest

from tests.experiments.test_transfer import _counting, _metrics, transfer

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
