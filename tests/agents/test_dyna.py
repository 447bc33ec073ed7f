"""MBPO-style Dyna: imagined-rollout branching, masked FIFO adds, mixed batches."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.agents.dyna import (
    DynaConfig,
    branch_rollouts,
    make_dyna_agent,
    masked_add,
    mixed_batch,
)
from prototypes.agents.sac import SACConfig, make_sac
from prototypes.config import ConfigError
from prototypes.data import replay
from prototypes.envs import get_spec
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.types import Step, Transition


def _example(obs_dim=1, act_dim=1) -> Transition:
    return Transition(
        obs=jnp.zeros(obs_dim),
        action=jnp.zeros(act_dim),
        reward=jnp.zeros(()),
        next_obs=jnp.zeros(obs_dim),
        done=jnp.zeros((), bool),
    )


def _rows(values, obs_dim=1) -> Transition:
    v = jnp.asarray(values, jnp.float32)
    n = v.shape[0]
    return Transition(
        obs=jnp.broadcast_to(v[:, None], (n, obs_dim)),
        action=jnp.zeros((n, 1)),
        reward=v,
        next_obs=jnp.broadcast_to(v[:, None], (n, obs_dim)),
        done=jnp.zeros(n, bool),
    )


def test_branch_rollouts_shapes_and_done_flags():
    """x' = x + a with the policy a = 1; done when x' > 2.5; r = x'.
    From 0: 0->1, 1->2, 2->3 (done at t=2): all three valid.
    From 2: 2->3 (done at t=0): only t=0 valid, later steps are past the end."""

    def step_fn(key, obs, action):
        del key
        nxt = obs + action
        return Step(obs=nxt, reward=nxt[:, 0], done=nxt[:, 0] > 2.5)

    policy = lambda key, obs: jnp.ones((obs.shape[0], 1))
    tr, valid = branch_rollouts(policy, step_fn, jax.random.key(0), jnp.array([[0.0], [2.0]]), 3)
    assert tr.obs.shape == (3, 2, 1) and tr.action.shape == (3, 2, 1)
    assert tr.reward.shape == (3, 2) and tr.done.shape == (3, 2) and valid.shape == (3, 2)
    np.testing.assert_array_equal(valid, [[True, True], [True, False], [True, False]])
    np.testing.assert_array_equal(tr.obs[:, 0, 0], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(tr.reward[:, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(tr.done[:, 0], [False, False, True])
    assert bool(tr.done[0, 1])


def test_masked_add_keeps_fifo_and_drops_invalid_rows():
    buf = replay.init(_example(), 4)
    buf = masked_add(buf, _rows([1, 2, 3]), jnp.array([True, False, True]))
    assert int(buf.size) == 2 and int(buf.ptr) == 2
    np.testing.assert_array_equal(replay.contents(buf).reward, [1, 3])
    # 3 more valid rows wrap around: the oldest (1) is overwritten, the invalid 7 never lands.
    buf = masked_add(buf, _rows([4, 5, 6, 7]), jnp.array([True, True, True, False]))
    assert int(buf.size) == 4 and int(buf.ptr) == 1
    np.testing.assert_array_equal(replay.contents(buf).reward, [3, 4, 5, 6])
    # all invalid: nothing changes
    same = masked_add(buf, _rows([8, 9, 10, 11]), jnp.zeros(4, bool))
    np.testing.assert_array_equal(replay.contents(same).reward, [3, 4, 5, 6])


def test_mixed_batch_ratio_and_empty_model_buffer():
    real = replay.add(replay.init(_example(), 8), _rows([1.0] * 8))
    imagined = replay.init(_example(), 8)
    batch = mixed_batch(jax.random.key(0), real, imagined, 3, 5)
    np.testing.assert_array_equal(batch.reward, [1.0] * 8)  # no model data yet: all real
    imagined = replay.add(imagined, _rows([2.0] * 4))
    batch = mixed_batch(jax.random.key(0), real, imagined, 3, 5)
    np.testing.assert_array_equal(batch.reward, [1.0] * 3 + [2.0] * 5)


def test_config_errors():
    with pytest.raises(ConfigError, match=r"dyna.real_ratio must be in \[0, 1\], got 1.5"):
        DynaConfig(real_ratio=1.5)
    with pytest.raises(ConfigError, match="dyna.rollout_length must be >= 1, got 0"):
        DynaConfig(rollout_length=0)
    with pytest.raises(ConfigError, match="dyna.model_capacity must hold one imagine call"):
        DynaConfig(rollout_batch=10, rollout_length=3, model_capacity=20)


@pytest.mark.slow
def test_agent_imagines_into_the_model_buffer_and_trains():
    spec = get_spec("reacher")
    sac = make_sac(SACConfig(hidden_size=8, hidden_layers=1, batch_size=8), spec)
    model = make_ensemble(
        EnsembleConfig(members=2, hidden_size=8, hidden_layers=1, max_epochs=1), spec
    )
    cfg = replace(
        DynaConfig(),
        rollout_length=2,
        rollout_batch=5,
        model_capacity=20,
        real_ratio=0.25,
        updates_per_step=3,
    )
    agent = make_dyna_agent(cfg, sac, model, spec, real_capacity=64, batch_size=8)
    state = agent.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    data = Transition(
        obs=jnp.asarray(rng.normal(size=(32, 10)), jnp.float32),
        action=jnp.asarray(rng.uniform(-1, 1, size=(32, 2)), jnp.float32),
        reward=jnp.asarray(rng.normal(size=32), jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=(32, 10)), jnp.float32),
        done=jnp.zeros(32, bool),
    )
    state = agent.observe(state, data)
    state, _ = agent.fit_model(state, jax.random.key(1))
    state, metrics = agent.imagine(state, jax.random.key(2))
    assert int(state.imagined.size) == 10  # Reacher never terminates: 5 starts x 2 steps
    np.testing.assert_allclose(metrics["dyna/valid_fraction"], 1.0)
    state, metrics = agent.train(state, jax.random.key(3))
    assert int(state.sac.step) == 3
    assert np.isfinite(float(metrics["sac/critic_loss"]))
    a = agent.act(state, jax.random.key(4), np.zeros(10, np.float32))
    assert a.shape == (2,)
