"""Batched acting: B environments planned in one call give what B separate calls give."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.agents.episode import drive_episode, drive_episodes, make_vector_env
from prototypes.agents.mpc import batch_plan_state, make_mpc_agent, planning_act, planning_act_batch
from prototypes.envs import get_spec, make
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.planning import PlannerConfig, make_planner
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _agent(**planner):
    spec = get_spec("reacher")
    model = make_ensemble(EnsembleConfig(members=2, hidden_size=16, hidden_layers=1), spec)
    cfg = PlannerConfig(population=24, elites=4, iterations=2, horizon=3, particles=2, **planner)
    return make_mpc_agent(model, make_planner(cfg, spec), spec, capacity=1), spec


@pytest.mark.parametrize(
    "planner",
    [dict(kind="cem"), dict(kind="cem", noise_beta=2.0, population_decay=1.5, shift_elites=0.5)],
)
def test_batched_rows_equal_single_calls(planner):
    """Row i of one act_batch call equals act on (warm start i, key i, root i), actions and
    warm starts, to 1e-6 (B = 1 and B = 3; the warm starts differ per row after one call)."""
    agent, spec = _agent(**planner)
    state = agent.init(jax.random.key(0))
    obs = np.asarray(jax.random.normal(jax.random.key(1), (3, spec.obs_dim)), np.float32)
    keys = jax.random.split(jax.random.key(2), 3)
    for B in (1, 3):
        batched = state.replace(plan=batch_plan_state(agent, B))
        singles = [state] * B
        for step in range(2):  # the second call starts from per-row warm starts
            step_keys = jax.vmap(lambda k, s=step: jax.random.fold_in(k, s))(keys[:B])
            actions, batched, _ = agent.act_batch(batched, step_keys, jnp.asarray(obs[:B]))
            for i in range(B):
                a, singles[i], _ = agent.act(singles[i], step_keys[i], jnp.asarray(obs[i]))
                np.testing.assert_allclose(actions[i], a, atol=1e-6)
                for x, y in zip(
                    jax.tree.leaves(jax.tree.map(lambda v, i=i: v[i], batched.plan)),
                    jax.tree.leaves(singles[i].plan),
                    strict=True,
                ):
                    np.testing.assert_allclose(x, y, atol=1e-6)


def test_batched_mcts_rows_equal_single_calls():
    """The Gumbel MuZero search (mctx) vmapped over B = 3 FetchReach roots: row i's action and
    root statistics equal one search from root i with key i, to 1e-6."""
    from prototypes.planning.mcts import MCTSConfig, make_codebook, make_mcts

    spec = get_spec("fetch_reach")
    cfg = MCTSConfig(codebook="cartesian", num_simulations=4, max_depth=2, value="zero")
    book = make_codebook(cfg, spec)
    model = make_ensemble(
        EnsembleConfig(members=2, hidden_size=8, hidden_layers=1, propagation="expectation"), spec
    )
    agent = make_mpc_agent(model, make_mcts(cfg, spec, codebook=book), spec, capacity=1)
    state = agent.init(jax.random.key(0))
    obs = np.asarray(jax.random.normal(jax.random.key(1), (3, spec.obs_dim)), np.float32) * 0.1
    keys = jax.random.split(jax.random.key(2), 3)
    batched = state.replace(plan=batch_plan_state(agent, 3))
    actions, _, metrics = agent.act_batch(batched, keys, jnp.asarray(obs))
    for i in range(3):
        a, _, m = agent.act(state, keys[i], jnp.asarray(obs[i]))
        np.testing.assert_allclose(actions[i], a, atol=1e-6)
        np.testing.assert_allclose(metrics["plan/root_visits"][i], m["plan/root_visits"])
        np.testing.assert_allclose(
            metrics["plan/root_qvalues"][i], m["plan/root_qvalues"], atol=1e-6
        )


def test_drive_episodes_equals_drive_episode():
    """Each sub-env's episode is the one drive_episode gives for its reset seed and actions
    (a deterministic policy of the observation): identical transitions and returns."""
    w = np.asarray(jax.random.normal(jax.random.key(3), (10, 2)), np.float32) * 0.3

    def act(state, t, obs):
        # Row by row: a batched matmul may take another BLAS kernel and differ in the last bit
        # from the single-row one on some CPUs, and 50 steps of Reacher amplify that to 1e-5.
        rows = np.asarray(obs, np.float32).reshape(-1, w.shape[0])
        actions = np.stack([np.tanh(row @ w) for row in rows])
        return actions.reshape(np.shape(obs)[:-1] + (w.shape[1],)), state

    seeds = [5, 9, 11]
    envs = make_vector_env(lambda: make("reacher"), 3)
    results, _ = drive_episodes(envs, act, None, seeds)
    for seed, r in zip(seeds, results, strict=True):
        ref, _ = drive_episode(make("reacher"), act, None, reset_seed=seed)
        assert r.steps == ref.steps == 50
        assert r.episode_return == pytest.approx(ref.episode_return, abs=1e-9)
        for x, y in zip(
            jax.tree.leaves(r.transitions), jax.tree.leaves(ref.transitions), strict=True
        ):
            np.testing.assert_array_equal(x, y)


def test_planning_episodes_batched_match_single_episodes():
    """Two planning episodes on one model state, acted in one batch and acted alone with the
    same acting keys: the same first actions (to 1e-6) and returns (to 1e-3)."""
    agent, _ = _agent()
    state = agent.init(jax.random.key(0))
    seeds, keys = [3, 4], [jax.random.key(10), jax.random.key(11)]
    batched = state.replace(plan=batch_plan_state(agent, 2))
    envs = make_vector_env(lambda: make("reacher"), 2)
    results, _ = drive_episodes(envs, planning_act_batch(agent, keys), batched, seeds)
    for seed, key, r in zip(seeds, keys, results, strict=True):
        ref, _ = drive_episode(make("reacher"), planning_act(agent, key), state, reset_seed=seed)
        np.testing.assert_allclose(r.transitions.action[0], ref.transitions.action[0], atol=1e-6)
        assert r.episode_return == pytest.approx(ref.episode_return, abs=1e-3)


def test_episode_rounds_keep_random_and_planning_episodes_apart():
    from experiments.mpc_episodes import episode_rounds

    assert episode_rounds(5, 1, 2) == [[0], [1, 2], [3, 4]]
    assert episode_rounds(5, 2, 2) == [[0, 1], [2, 3], [4]]
    assert episode_rounds(7, 3, 8) == [[0, 1, 2], [3, 4, 5, 6]]
    assert episode_rounds(3, 0, 2) == [[0, 1], [2]]  # the oracle needs no random episodes
    assert episode_rounds(4, 4, 3) == [[0, 1, 2], [3]]
    assert episode_rounds(6, 1, 1) == [[i] for i in range(6)]


@pytest.mark.slow
def test_pets_num_envs(tmp_path, monkeypatch):
    """pets.py --num-envs 2: one metrics line per episode in order, one fit per round, a run
    killed before its second round's checkpoint resumes to the same metrics, and the oracle
    refused in one line."""
    pets = load_script("experiments/pets.py", "pets_batch_script")
    tiny = [
        "--env", "reacher", "--episodes", "5", "--random-episodes", "2", "--num-envs", "2",
        "--population", "16", "--elites", "4", "--horizon", "3", "--iterations", "2",
        "--particles", "2", "--ensemble", "2", "--model.hidden-size", "16",
        "--model.hidden-layers", "1", "--model.max-epochs", "2", "--no-progress",
    ]  # fmt: skip
    run = pets.main(tiny + ["--out", str(tmp_path / "a")])
    lines = run.metrics()
    assert [r["episode"] for r in lines] == [1, 2, 3, 4, 5]
    assert [r["random"] for r in lines] == [True, True, False, False, False]
    assert "model/epochs" in lines[1] and "model/epochs" not in lines[0]  # one fit per round
    from prototypes.data.runs import RunDir

    original, calls = RunDir.save_checkpoint, {"n": 0}

    def dying_save(self, state):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        original(self, state)

    monkeypatch.setattr(RunDir, "save_checkpoint", dying_save)
    with pytest.raises(KeyboardInterrupt):
        pets.main(tiny + ["--out", str(tmp_path / "b")])
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 4
    resumed = pets.main(tiny + ["--out", str(tmp_path / "b"), "--resume"])
    assert (tmp_path / "b" / "metrics.jsonl").read_bytes() == (
        tmp_path / "a" / "metrics.jsonl"
    ).read_bytes()
    assert resumed.metrics() == lines
    with pytest.raises(SystemExit) as e:
        pets.main(["--env", "reacher", "--model", "oracle", "--num-envs", "2"])
    assert e.value.code == 2
