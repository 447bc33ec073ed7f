"""The layout-derived push reward (envs/costs.py): hand-computed values on hand-made obs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import costs, fetch, get_spec


def _fetch_push_obs(grip, obj, goal):
    obs = np.zeros(28, np.float32)  # grip [0:3], object [3:6], goal [25:28] (envs/fetch.py)
    obs[0:3], obs[3:6], obs[25:28] = grip, obj, goal
    return jnp.asarray(obs)


def test_push_reward_on_fetch_push_by_hand():
    reward = costs.push_reward(get_spec("fetch_push").layout)
    # object (1.0, 0.5, 0.4), goal (1.0, 0.9, 0.4): |o - g| = 0.4, u = (0, -1, 0), so the point
    # 3 cm behind the object is (1.0, 0.47, 0.4) (the 1e-6 in u's norm moves it by 7.5e-8 m);
    # gripper (1.0, 0.47, 0.44) is 0.04 above it: r = -0.4 - 0.5 * 0.04 = -0.42
    nxt = _fetch_push_obs([1.0, 0.47, 0.44], [1.0, 0.5, 0.4], [1.0, 0.9, 0.4])
    action, obs = jnp.ones(4), jnp.full(28, 7.0)  # neither is read: the reward scores next_obs
    np.testing.assert_allclose(reward(obs, action, nxt), -0.42, atol=1e-6)
    # gripper exactly at the pushing point: only the object-to-goal distance remains
    nxt = _fetch_push_obs([1.0, 0.47, 0.4], [1.0, 0.5, 0.4], [1.0, 0.9, 0.4])
    np.testing.assert_allclose(reward(obs, action, nxt), -0.4, atol=1e-6)
    # b = 0.1, w = 2: the point is (1.0, 0.4, 0.4); gripper (1.03, 0.36, 0.4) is (0.03, -0.04, 0)
    # from it, 0.05 away: r = -0.4 - 2 * 0.05 = -0.5
    wide = costs.push_reward(get_spec("fetch_push").layout, behind=0.1, reach_weight=2.0)
    nxt = _fetch_push_obs([1.03, 0.36, 0.4], [1.0, 0.5, 0.4], [1.0, 0.9, 0.4])
    np.testing.assert_allclose(wide(obs, action, nxt), -0.5, atol=1e-6)


def test_push_reward_on_pusher_by_hand_and_batched():
    reward = costs.push_reward(get_spec("pusher").layout)
    obs = np.zeros((2, 23), np.float32)  # tips_arm [14:17], object [17:20], goal [20:23]
    # object (0.3, 0, -0.275), goal (0, 0, -0.275): |o - g| = 0.3, point (0.33, 0, -0.275);
    # tip (0.33, 0.04, -0.275) is 0.04 from it: r = -0.3 - 0.5 * 0.04 = -0.32
    obs[0, 14:17], obs[0, 17:20], obs[0, 20:23] = (
        [0.33, 0.04, -0.275],
        [0.3, 0, -0.275],
        [0, 0, -0.275],
    )
    # object on the goal: u = 0 / 1e-6 = 0, the point is the object itself; tip 0.05 above it:
    # r = -0 - 0.5 * 0.05 = -0.025
    obs[1, 14:17], obs[1, 17:20], obs[1, 20:23] = [0.1, 0.1, 0.05], [0.1, 0.1, 0.0], [0.1, 0.1, 0.0]
    out = jax.jit(jax.vmap(reward))(jnp.asarray(obs), jnp.zeros((2, 7)), jnp.asarray(obs))
    np.testing.assert_allclose(out, [-0.32, -0.025], atol=1e-6)


def test_fetch_shaped_reward_is_the_push_reward():
    nxt = _fetch_push_obs([1.2, 0.7, 0.45], [1.3, 0.8, 0.42], [1.1, 0.85, 0.42])
    shaped = fetch.reward_fns("fetch_push")["shaped"]
    push = costs.push_reward(get_spec("fetch_push").layout, fetch.BEHIND, fetch.SHAPING_WEIGHT)
    np.testing.assert_allclose(shaped(nxt, None, nxt), push(nxt, None, nxt), rtol=1e-7)


@pytest.mark.parametrize(
    "task, fragment",
    [
        ("reacher", "exactly one arm entity with a position, got 0"),  # joint angles only
        ("fetch_reach", "exactly one object entity with a position, got 0"),
    ],
)
def test_push_reward_needs_an_arm_an_object_and_a_goal(task, fragment):
    with pytest.raises(ValueError, match=fragment):
        costs.push_reward(get_spec(task).layout)
    with pytest.raises(ValueError, match="needs an entity layout"):
        costs.push_entities(None)
    with pytest.raises(ValueError, match="must be >= 0"):
        costs.push_reward(get_spec("pusher").layout, behind=-0.1)
