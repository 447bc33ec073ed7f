"""MCTS over a StepFn on problems with known answers (STYLE.md section 8)."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.config import ConfigError
from prototypes.envs.registry import EnvSpec
from prototypes.planning.mcts import (
    MCTSConfig,
    axis_codebook,
    cartesian_codebook,
    make_codebook,
    make_leaf_value,
    make_mcts,
    make_mcts_search,
    make_prior,
    make_recurrent_fn,
    rollout_value,
)
from prototypes.types import Step


def _spec(act_dim: int, bound: float = 1.0) -> EnvSpec:
    return EnvSpec(
        name="toy",
        gym_id="-",
        obs_dim=1,
        act_dim=act_dim,
        action_low=(-bound,) * act_dim,
        action_high=(bound,) * act_dim,
        episode_steps=10,
        reward_fn=None,
        done_fn=None,
        obs_from_physics=None,
        sensor_bodies=(),
    )


# --- bandit: one step, discount 0 (every transition is terminal) ---------------------------------
ARM_REWARDS = np.array([0.1, 0.5, 0.9, 0.3, 0.2], np.float32)
BANDIT_BOOK = np.arange(5, dtype=np.float32)[:, None]  # arm k is the 1-D action k


def _bandit_step(key, obs, action):
    del key
    arm = action[:, 0].astype(jnp.int32)
    return Step(obs=obs, reward=jnp.asarray(ARM_REWARDS)[arm], done=jnp.ones(obs.shape[0], bool))


@pytest.mark.parametrize("algorithm", ["gumbel", "muzero"])
def test_bandit_picks_best_valid_arm(algorithm):
    # Q(k) = r_k exactly (discount 0 after the step). Best arm 2 (0.9); with arm 2 invalid, 1 (0.5).
    # (PUCT at c1 = 1.25 still spreads 32 simulations 1/17/12/1/1 here; 64 settle on the best.)
    cfg = MCTSConfig(algorithm=algorithm, num_simulations=64, value="zero", max_depth=2)
    search = jax.jit(make_mcts_search(cfg, BANDIT_BOOK), static_argnums=2)
    roots = jnp.zeros((2, 1))
    invalid = jnp.array([[False] * 5, [False, False, True, False, False]])
    for seed in range(3):
        out = search(jax.random.key(seed), roots, _bandit_step, invalid)
        np.testing.assert_array_equal(out.index, [2, 1])
        np.testing.assert_array_equal(out.action, [[2.0], [1.0]])
        assert float(out.visit_counts[1, 2]) == 0.0  # the invalid arm is never visited
        visited = np.asarray(out.visit_counts[0]) > 0
        np.testing.assert_allclose(np.asarray(out.qvalues[0])[visited], ARM_REWARDS[visited])


# --- chain: 5 states, left/right, reward 1 for arriving at (or staying at) the right end ----------
CHAIN_BOOK = np.array([[-1.0], [1.0]], np.float32)  # index 0 = left, 1 = right


def _chain_step(key, obs, action):
    """s' = clip(s + a, 0, 4); r = 1 if s' == 4 else 0; never terminal. With gamma 0.9,
    Q*(s, right) = 0.9^(3 - s) / (1 - 0.9) > Q*(s, left) = 0.9 Q*(s - 1 or s, right) for s < 4,
    and at s = 4 right earns 1 now; so "right" is optimal from every state."""
    del key
    nxt = jnp.clip(obs + action, 0.0, 4.0)
    return Step(
        obs=nxt, reward=(nxt[:, 0] == 4.0).astype(jnp.float32), done=jnp.zeros(obs.shape[0], bool)
    )


@pytest.mark.parametrize("algorithm", ["gumbel", "muzero"])
def test_chain_optimal_first_action_from_every_state(algorithm):
    cfg = MCTSConfig(algorithm=algorithm, num_simulations=64, max_depth=8, gamma=0.9, value="zero")
    search = jax.jit(make_mcts_search(cfg, CHAIN_BOOK), static_argnums=2)
    roots = jnp.arange(5, dtype=jnp.float32)[:, None]  # all five states in one batch
    out = search(jax.random.key(0), roots, _chain_step)
    np.testing.assert_array_equal(out.index, [1, 1, 1, 1, 1])


def test_planner_interface_on_chain_with_rollout_values():
    # The Planner wraps one root; a 1-step search with 3-step rollouts already sees the reward from
    # state 2 (right, right reaches 4 within the rollout horizon).
    cfg = MCTSConfig(
        num_simulations=16,
        max_depth=4,
        gamma=0.9,
        value="rollout",
        rollout_steps=3,
        rollout_count=8,
    )
    planner = make_mcts(cfg, _spec(1), codebook=CHAIN_BOOK)
    plan = jax.jit(lambda s, k, o: planner.plan(s, k, o, _chain_step))
    state = planner.init()
    action, new_state, metrics = plan(state, jax.random.key(0), jnp.array([2.0]))
    np.testing.assert_allclose(action, [1.0])
    assert metrics["plan/root_visits"].shape == (2,)
    assert float(jnp.sum(metrics["plan/root_visits"])) == 16.0
    assert int(metrics["plan/index"]) == 1
    np.testing.assert_array_equal(new_state.mean, state.mean)


# --- leaf values ----------------------------------------------------------------------------------


def test_rollout_value_on_a_deterministic_model_with_termination():
    """x' = x + 1, r = x (the state before the step), done when x' >= 3. From x = 1 with 4 steps
    and gamma 0.5: r0 = 1 (-> 2), r1 = 2 (-> 3, done), later rewards dropped:
    1 + 0.5 * 2 = 2. From x = 5 the first step is terminal: 5. Action-independent, so exact."""

    def step(key, obs, action):
        del key, action
        nxt = obs + 1.0
        return Step(obs=nxt, reward=obs[:, 0], done=nxt[:, 0] >= 3.0)

    book = jnp.asarray(axis_codebook(np.array([-1.0]), np.array([1.0]), 0.5, 2, 0))
    v = rollout_value(step, jax.random.key(0), jnp.array([[1.0], [5.0]]), book, 4, 3, 0.5)
    np.testing.assert_allclose(v, [2.0, 5.0], rtol=1e-6)


def test_rollout_value_matches_expectation_over_random_actions():
    """r = a (codebook {0, 1, 2}, uniform): E[r_t] = 1, so with 3 steps and gamma 0.9 the
    expected value is 1 + 0.9 + 0.81 = 2.71. 4096 rollouts: std of the mean ~0.02."""

    def step(key, obs, action):
        del key
        return Step(obs=obs, reward=action[:, 0], done=jnp.zeros(obs.shape[0], bool))

    book = jnp.array([[0.0], [1.0], [2.0]])
    v = rollout_value(step, jax.random.key(1), jnp.zeros((2, 1)), book, 3, 4096, 0.9)
    np.testing.assert_allclose(v, [2.71, 2.71], atol=0.08)


def test_value_fn_and_prior_fn_are_used():
    # Bandit with non-terminal steps and gamma 1: Q(k) = r_k + value(next). A value_fn that pays
    # 1.0 after arm 0 (the next state remembers the arm) makes arm 0 best: 0.1 + 1.0 > 0.9.
    def step(key, obs, action):
        del key
        arm = action[:, 0].astype(jnp.int32)
        nxt = action
        return Step(
            obs=nxt, reward=jnp.asarray(ARM_REWARDS)[arm], done=jnp.zeros(obs.shape[0], bool)
        )

    value_fn = lambda s: jnp.where(s[:, 0] == 0.0, 1.0, 0.0)
    prior_fn = lambda s: jnp.zeros((s.shape[0], 5))
    # gumbel_scale 0: the final choice is the arg max of logits + sigma(Q) among the most visited
    # (with noise, Q(2) = 0.9 can win the last halving round by chance).
    cfg = MCTSConfig(num_simulations=32, max_depth=1, gamma=1.0, value="fn", gumbel_scale=0.0)
    search = make_mcts_search(cfg, BANDIT_BOOK, prior_fn=prior_fn)
    out = jax.jit(lambda k, r: search(k, r, step, value_fn=value_fn))(
        jax.random.key(0), jnp.full((1, 1), 3.0)
    )
    assert int(out.index[0]) == 0
    with pytest.raises(ValueError, match="no value_fn was given"):
        search(jax.random.key(0), jnp.zeros((1, 1)), step)


# --- determinism and tracing ----------------------------------------------------------------------


def test_same_key_same_action_and_jit_traces_once():
    traces = {"n": 0}

    def counted_step(key, obs, action):
        traces["n"] += 1  # runs only while tracing
        return _chain_step(key, obs, action)

    cfg = MCTSConfig(num_simulations=8, max_depth=3, gamma=0.9, gumbel_scale=1.0)
    planner = make_mcts(cfg, _spec(1), codebook=np.array([[-1.0], [0.0], [1.0]], np.float32))
    plan = jax.jit(lambda s, k, o: planner.plan(s, k, o, counted_step))
    state, root = planner.init(), jnp.array([1.0])
    a1, _, m1 = plan(state, jax.random.key(5), root)
    after_first = traces["n"]
    a2, _, m2 = plan(state, jax.random.key(5), root)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(m1["plan/root_visits"], m2["plan/root_visits"])
    for seed in range(6):
        plan(state, jax.random.key(seed), root)
    assert traces["n"] == after_first  # no retracing across keys


def test_pytree_embeddings():
    # The planning state may be any pytree: here a dict with a position and a step counter.
    def step(key, obs, action):
        out = _chain_step(key, obs["x"], action)
        return Step(obs={"x": out.obs, "t": obs["t"] + 1}, reward=out.reward, done=out.done)

    cfg = MCTSConfig(num_simulations=32, max_depth=6, gamma=0.9, value="rollout", rollout_steps=2)
    search = jax.jit(make_mcts_search(cfg, CHAIN_BOOK), static_argnums=2)
    out = search(jax.random.key(0), {"x": jnp.array([[3.0]]), "t": jnp.zeros(1, jnp.int32)}, step)
    assert int(out.index[0]) == 1


# --- codebooks and config ------------------------------------------------------------------------


def test_codebooks():
    book = cartesian_codebook(0.5)
    assert book.shape == (9, 4)
    np.testing.assert_array_equal(book[0], 0.0)
    np.testing.assert_array_equal(book[1], [0.5, 0, 0, 0])
    np.testing.assert_array_equal(book[6], [0, 0, -0.5, 0])
    np.testing.assert_array_equal(book[7:], [[0, 0, 0, 1], [0, 0, 0, -1]])
    # Pusher-like bounds [-2, 2]^2: centre 0, +-0.5 * 2 = +-1 per axis, then 3 random directions
    # of norm 1 (half-range 2 times magnitude 0.5).
    book = axis_codebook(np.full(2, -2.0), np.full(2, 2.0), 0.5, 3, seed=7)
    assert book.shape == (1 + 4 + 3, 2)
    np.testing.assert_array_equal(book[:5], [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]])
    np.testing.assert_allclose(np.linalg.norm(book[5:], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(book, axis_codebook(np.full(2, -2.0), np.full(2, 2.0), 0.5, 3, 7))
    assert make_codebook(MCTSConfig(random_directions=0), _spec(7, 2.0)).shape == (15, 7)
    with pytest.raises(ValueError, match="act_dim=7"):
        make_codebook(MCTSConfig(codebook="cartesian"), _spec(7, 2.0))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"num_simulations": 0}, "mcts.num_simulations must be >= 1, got 0"),
        ({"max_depth": 0}, "mcts.max_depth must be >= 1, got 0"),
        ({"gamma": 0.0}, "mcts.gamma must be in (0, 1], got 0.0"),
        ({"gamma": 1.5}, "mcts.gamma must be in (0, 1], got 1.5"),
        ({"codebook": "grid"}, "mcts.codebook must be axes or cartesian, got 'grid'"),
        ({"algorithm": "alphazero"}, "mcts.algorithm must be gumbel or muzero, got 'alphazero'"),
        ({"value": "net"}, "mcts.value must be zero, rollout or fn, got 'net'"),
        ({"rollout_count": 0}, "mcts.rollout_count must be >= 1, got 0"),
    ],
)
def test_config_errors_name_the_value(kwargs, fragment):
    with pytest.raises(ConfigError) as exc:
        replace(MCTSConfig(), **kwargs)
    assert fragment in str(exc.value)


def test_value_fn_without_fn_kind_is_an_error():
    with pytest.raises(ValueError, match="set it to 'fn'"):
        make_mcts_search(MCTSConfig(value="zero"), BANDIT_BOOK, value_fn=lambda s: s[:, 0])


def _line_step(key, obs, action):
    # a walk on a line: next = obs + action, reward = next, done once next >= 2
    del key
    nxt = obs + action[:, :1]
    return Step(obs=nxt, reward=nxt[:, 0], done=nxt[:, 0] >= 2.0)


def test_recurrent_fn_steps_the_model_with_codebook_rows():
    book = jnp.asarray([[1.0], [-1.0]])
    states = jnp.asarray([[0.0], [1.0]])
    index = jnp.asarray([0, 0])
    prior = make_prior(None, 2, 2)
    zero = make_leaf_value("zero", 2, _line_step, book, 0.9, 1, 1)
    rec, nxt = make_recurrent_fn(_line_step, book, 0.9, prior, zero)(
        (), jax.random.key(0), index, states
    )
    # row 0 is +1: 0 -> 1 (reward 1, discount 0.9), 1 -> 2 (reward 2, terminal: discount 0)
    np.testing.assert_allclose(nxt[:, 0], [1.0, 2.0])
    np.testing.assert_allclose(rec.reward, [1.0, 2.0])
    np.testing.assert_allclose(rec.discount, [0.9, 0.0])
    np.testing.assert_allclose(rec.prior_logits, np.zeros((2, 2)))
    np.testing.assert_allclose(rec.value, [0.0, 0.0])
    # a value function and a prior are evaluated at the next states
    value = make_leaf_value("fn", 2, _line_step, book, 0.9, 1, 1, value_fn=lambda s: 10.0 * s[:, 0])
    prior = make_prior(lambda s: jnp.concatenate([s, -s], axis=-1), 2, 2)
    rec, _ = make_recurrent_fn(_line_step, book, 0.9, prior, value)(
        (), jax.random.key(0), index, states
    )
    np.testing.assert_allclose(rec.value, [10.0, 20.0])
    np.testing.assert_allclose(rec.prior_logits, [[1.0, -1.0], [2.0, -2.0]])
