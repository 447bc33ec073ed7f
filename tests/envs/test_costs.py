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


def test_clearance_term_by_hand():
    reward = costs.push_reward(get_spec("fetch_push").layout)
    action = obs = jnp.zeros(28)  # neither is read
    # object (1.0, 0.5, 0.4), goal (1.0, 0.9, 0.4): |o - g| = 0.4, u = (0, -1, 0), the pushing
    # point is (1.0, 0.47, 0.4). Defaults: c = 0.2, R = 0.08, H = 0.05, a = 0.01.
    obj, goal = [1.0, 0.5, 0.4], [1.0, 0.9, 0.4]
    cases = [
        # gripper on the goal's side at the object's height: d = (0, 0.05, 0), |d_h| = 0.05 < R,
        # along = d_h . u_h = -0.05 < a, low = clip((0.05 - 0) / 0.05) = 1: the full 0.2;
        # |p - point| = 0.08: r = -0.4 - 0.5 * 0.08 - 0.2 = -0.64
        ([1.0, 0.55, 0.4], -0.64),
        # 3 cm higher: low = (0.05 - 0.03) / 0.05 = 0.4, cost 0.08; |p - point| =
        # sqrt(0.08^2 + 0.03^2) = 0.0854400375: r = -0.4 - 0.0427200187 - 0.08
        ([1.0, 0.55, 0.43], -0.5227200187),
        # 9 cm to the side, beyond R: no cost; |p - point| = sqrt(0.09^2 + 0.03^2) = 0.0948683298
        ([1.09, 0.5, 0.4], -0.4474341649),
        # behind the object, pushing: along = 0.04 >= a, no cost; |p - point| = 0.01
        ([1.0, 0.46, 0.4], -0.405),
        # 5 cm above its centre: low = 0, no cost; |p - point| = sqrt(0.03^2 + 0.05^2)
        ([1.0, 0.5, 0.45], -0.4 - 0.5 * 0.0583095189),
    ]
    for grip, expected in cases:
        nxt = _fetch_push_obs(grip, obj, goal)
        np.testing.assert_allclose(reward(obs, action, nxt), expected, atol=1e-6, err_msg=grip)
    # c = 0 is the reward without the term: the first case loses its 0.2
    plain = costs.push_reward(get_spec("fetch_push").layout, clearance=0.0)
    nxt = _fetch_push_obs(cases[0][0], obj, goal)
    np.testing.assert_allclose(plain(obs, action, nxt), -0.44, atol=1e-6)


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
    with pytest.raises(ValueError, match="must be >= 0"):
        costs.push_reward(get_spec("pusher").layout, clearance=-0.1)
    with pytest.raises(ValueError, match="height must be > 0"):
        costs.push_reward(get_spec("pusher").layout, height=0.0)
