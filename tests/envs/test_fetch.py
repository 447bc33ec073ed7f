"""Fetch tasks: the flat observation layout and the pure-JAX rewards against the env's own."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs import fetch, get_spec, make
from prototypes.models.oracle import make_oracle

TASKS = ["fetch_reach", "fetch_push"]


def _episode(name, seed, steps=50):
    """Real transitions of the *unwrapped dict* env, driven towards the goal (so both branches of
    the sparse reward occur) with noise; returns flat obs, actions, flat next obs, rewards, the
    dict next observations and the infos."""
    env = make(name).env  # under FlattenGoalObs: the time-limited dict env
    u = env.unwrapped
    layout = fetch.LAYOUTS[name]
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = {k: [] for k in ("obs", "action", "next_obs", "reward", "dict", "info")}
    for _ in range(steps):
        flat = fetch.flatten(obs)
        target = obs["desired_goal"] if name == "fetch_reach" else flat[layout.achieved]
        push = np.clip((target - flat[layout.grip]) / 0.05, -1, 1)
        action = np.clip(np.r_[push, 0.0] + rng.normal(0, 0.3, 4), -1, 1).astype(np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        assert not terminated
        for k, v in zip(
            rows, (flat, action, fetch.flatten(next_obs), reward, next_obs, info), strict=True
        ):
            rows[k].append(v)
        obs = next_obs
    return rows, u


@pytest.mark.parametrize("name", TASKS)
def test_flat_layout_holds_the_achieved_goal(name):
    spec, layout = get_spec(name), fetch.LAYOUTS[name]
    rows, _ = _episode(name, seed=0, steps=10)
    for flat, d in zip(rows["next_obs"], rows["dict"], strict=True):
        assert flat.shape == (spec.obs_dim,)
        # achieved_goal is already in `observation`, which is why the flat vector omits it
        np.testing.assert_array_equal(flat[layout.achieved], d["achieved_goal"])
        np.testing.assert_array_equal(flat[layout.goal], d["desired_goal"])
    # and make() returns exactly this flat vector
    obs, _ = make(name).reset(seed=0)
    d, _ = make(name).env.reset(seed=0)
    np.testing.assert_array_equal(obs, fetch.flatten(d))


@pytest.mark.parametrize("name", TASKS)
def test_jax_rewards_equal_the_envs_compute_reward(name):
    spec = get_spec(name)
    rows, u = _episode(name, seed=1)
    obs = jnp.asarray(np.array(rows["obs"]), jnp.float32)
    act = jnp.asarray(np.array(rows["action"]))
    nxt = jnp.asarray(np.array(rows["next_obs"]), jnp.float32)
    ag = np.array([d["achieved_goal"] for d in rows["dict"]])
    g = np.array([d["desired_goal"] for d in rows["dict"]])
    fns = fetch.reward_fns(name)
    sparse = np.asarray(jax.vmap(spec.reward_fn)(obs, act, nxt))
    # the spec's reward is the env's sparse reward: what step() returned and compute_reward says
    np.testing.assert_array_equal(sparse, np.array(rows["reward"]))
    np.testing.assert_array_equal(sparse, u.compute_reward(ag, g, rows["info"]))
    np.testing.assert_array_equal(sparse, np.asarray(jax.vmap(fns["sparse"])(obs, act, nxt)))
    # success is the complement of the sparse penalty, and the episode reaches both values
    success = np.array([i["is_success"] for i in rows["info"]])
    np.testing.assert_array_equal(success, 1.0 + sparse)
    if name == "fetch_reach":
        assert 0 < success.sum() < len(success)
    # the dense reward is the env's compute_reward with reward_type="dense" (FetchReachDense)
    u.reward_type = "dense"
    dense = np.asarray(jax.vmap(fns["dense"])(obs, act, nxt))
    np.testing.assert_allclose(dense, u.compute_reward(ag, g, rows["info"]), atol=1e-6)


def test_shaped_push_reward_by_hand():
    # object at x=1, goal at x=1.1 (same y, z): the pushing point is 3 cm behind, at x=0.97.
    # gripper at x=0.97 -> only the object term: -0.1; gripper 4 cm higher -> -0.1 - 0.5*0.04.
    layout = fetch.LAYOUTS["fetch_push"]
    nxt = np.zeros(layout.obs_dim, np.float32)
    nxt[layout.achieved] = [1.0, 0.5, 0.4]
    nxt[layout.goal] = [1.1, 0.5, 0.4]
    nxt[layout.grip] = [0.97, 0.5, 0.4]
    shaped = fetch.reward_fns("fetch_push")["shaped"]
    a = jnp.zeros(4)
    np.testing.assert_allclose(shaped(nxt, a, jnp.asarray(nxt)), -0.1, atol=1e-5)
    nxt[layout.grip] = [0.97, 0.5, 0.44]
    np.testing.assert_allclose(shaped(nxt, a, jnp.asarray(nxt)), -0.12, atol=1e-5)
    # Reach has no object: "shaped" is the dense reward there
    r = fetch.reward_fns("fetch_reach")
    assert r["shaped"] is r["dense"]


def test_done_never_and_an_oracle_only_where_one_is_written():
    spec = get_spec("fetch_reach")
    assert not bool(spec.done_fn(jnp.zeros(spec.obs_dim)))
    # Fetch has its own oracle (tests/models/test_oracle.py); a joint-space task without
    # obs_from_physics has none
    nothing = dataclasses.replace(get_spec("reacher"), obs_from_physics=None)
    with pytest.raises(ValueError, match="task 'reacher' has no oracle model"):
        make_oracle(nothing, make("reacher"))


# --- the grid abstraction for factored models ----------------------------------------------------


def test_grid_encode_rounds_and_clips_the_goal_offset():
    grid = fetch.GridConfig(cell=0.03, radius=6)
    obs = np.zeros((2, 13))
    obs[:, 0:3] = [1.0, 0.5, 0.4]  # gripper
    # offsets (goal - grip): 0.031 -> round(1.03) = 1 -> cell 7; -0.5 -> -16.7, clipped to -6 ->
    # cell 0; 0.014 -> round(0.47) = 0 -> cell 6 (the centre); second row: -0.046 -> round(-1.53)
    # = -2 -> cell 4; 0.5 -> clipped to +6 -> cell 12; 0.0 -> cell 6
    obs[0, 10:13] = [1.031, 0.0, 0.414]
    obs[1, 10:13] = [0.954, 1.0, 0.4]
    cells = fetch.grid_encode("fetch_reach", grid, obs)
    assert cells.dtype == np.int32
    np.testing.assert_array_equal(cells, [[7, 0, 6], [4, 12, 6]])


def test_grid_reward_is_the_l1_distance_in_metres_and_centre_means_success():
    grid = fetch.GridConfig(cell=0.03, radius=6)
    spec = fetch.grid_spec("fetch_reach", grid, num_actions=9)
    assert spec.cards == (13, 13, 13) and spec.num_actions == 9
    # cells (7, 0, 6): |1| + |-6| + |0| = 7 cells of 0.03 m
    np.testing.assert_allclose(spec.reward_np(np.array([[7, 0, 6], [6, 6, 6]])), [-0.21, 0.0])
    np.testing.assert_allclose(
        np.asarray(spec.reward_jax(jnp.array([[7, 0, 6]], jnp.int32))), [-0.21], rtol=1e-6
    )
    # the centre cell holds offsets below cell / 2 per axis: at most sqrt(3) * 0.015 = 0.026 m
    assert np.sqrt(3) * grid.cell / 2 < fetch.DISTANCE_THRESHOLD


def test_grid_errors_name_the_task_and_the_value():
    with pytest.raises(ValueError, match="for fetch_reach only, got 'fetch_push'"):
        fetch.grid_spec("fetch_push", fetch.GridConfig(), 9)
    from prototypes.config import ConfigError

    with pytest.raises(ConfigError, match="grid.cell must be > 0 metres, got 0"):
        fetch.GridConfig(cell=0)
    with pytest.raises(ConfigError, match="grid.radius must be >= 1, got 0"):
        fetch.GridConfig(radius=0)
