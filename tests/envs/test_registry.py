import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import ALL_TASKS, get_spec, make


@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_spec_matches_env_spaces(name):
    spec, env = get_spec(name), make(name, seed=0)
    assert env.observation_space.shape == (spec.obs_dim,)
    assert env.action_space.shape == (spec.act_dim,)
    np.testing.assert_array_equal(env.action_space.low, spec.action_low)
    np.testing.assert_array_equal(env.action_space.high, spec.action_high)
    assert env.spec.max_episode_steps == spec.episode_steps


@pytest.mark.parametrize("name", sorted(ALL_TASKS))
def test_jax_reward_equals_simulator_reward(name):
    """The pure-JAX reward on real transitions equals the env's own reward to 1e-5."""
    spec, env = get_spec(name), make(name, seed=0)
    rng = np.random.default_rng(0)
    reward_fn = jax.jit(jax.vmap(spec.reward_fn))
    obs_l, act_l, next_l, rew_l = [], [], [], []
    obs, _ = env.reset(seed=1)
    for _ in range(spec.episode_steps):
        # random actions, scaled past the bounds half the time so the control cost is exercised
        action = rng.uniform(spec.action_low, spec.action_high).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        obs_l.append(obs)
        act_l.append(action)
        next_l.append(next_obs)
        rew_l.append(reward)
        obs = next_obs
        assert not terminated
    assert truncated  # the time limit ends the episode
    r = reward_fn(
        jnp.asarray(np.array(obs_l), jnp.float32),
        jnp.asarray(np.array(act_l)),
        jnp.asarray(np.array(next_l), jnp.float32),
    )
    np.testing.assert_allclose(np.asarray(r), np.array(rew_l), atol=1e-5, rtol=0)


def test_done_fn_never_terminates():
    for spec in ALL_TASKS.values():
        assert not bool(spec.done_fn(jnp.zeros(spec.obs_dim)))


def test_unknown_env_names_the_choices():
    choices = "fetch_push, fetch_push2, fetch_reach, pusher, reacher"
    with pytest.raises(ValueError, match=f"unknown env 'cartpole': choose from {choices}"):
        get_spec("cartpole")


def test_seeded_make_is_reproducible():
    a, _ = make("reacher", seed=7).reset()
    b, _ = make("reacher", seed=7).reset()
    c, _ = make("reacher", seed=8).reset()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
