"""The oracle model reproduces the simulator: rewards and planning returns equal the env's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import get_spec, make
from prototypes.models.oracle import make_oracle
from prototypes.planning import evaluate_sequences


def _rollout_env(name, seed, actions):
    env = make(name)
    obs, _ = env.reset(seed=seed)
    rewards, observations = [], []
    for a in actions:
        obs, r, *_ = env.step(a)
        rewards.append(r)
        observations.append(obs)
    return np.array(rewards), np.array(observations)


@pytest.mark.parametrize(
    "name, steps, atol",
    [
        ("reacher", 10, 1e-5),
        ("pusher", 10, 1e-5),
    ],
)
def test_planning_return_equals_env_rewards(name, steps, atol):
    spec = get_spec(name)
    actions = (
        np.random.default_rng(0)
        .uniform(spec.action_low, spec.action_high, (steps, spec.act_dim))
        .astype(np.float32)
    )
    env_rewards, env_obs = _rollout_env(name, 5, actions)

    env = make(name)
    obs, _ = env.reset(seed=5)
    oracle = make_oracle(spec, env)
    root = oracle.encode(oracle.init(None, None), obs)
    step_fn = lambda k, o, a: oracle.predict((), k, o, a)
    # two identical candidates, two particles: every rollout must give the env's return
    seqs = jnp.asarray(np.stack([actions, actions]))
    ret = jax.jit(lambda r, s: evaluate_sequences(step_fn, jax.random.key(0), r, s, 2))(root, seqs)
    np.testing.assert_allclose(ret, [env_rewards.sum()] * 2, atol=atol * steps)

    # and step by step, the observations and rewards match
    state = jax.tree.map(lambda x: x[None], root)
    for t in range(steps):
        out = step_fn(None, state, jnp.asarray(actions[t : t + 1]))
        np.testing.assert_allclose(out.reward[0], env_rewards[t], atol=atol)
        np.testing.assert_allclose(out.obs.obs[0], env_obs[t], atol=max(atol, 1e-5) * 10)
        state = out.obs
