"""The discrete pushing task: the abstraction of known simulator states, macro-actions in MuJoCo,
the exact discrete dynamics against the simulation, and clear errors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from prototypes.envs.discrete_arm import (
    DiscreteArmEnv,
    arm_spec,
    exact_dbn,
    exact_next,
    from_cells,
    reward_jax,
)

C = 0.05  # default cell size (m)
W = 5  # default grid width; rel = grip - obj + 4


def _state(grip, obj, goal):
    """Abstract state from (gripper, block, goal) cells."""
    return from_cells([grip], [obj], [goal], W)[0]


@functools.cache
def _env() -> DiscreteArmEnv:
    return DiscreteArmEnv()


def test_abstraction_of_a_known_simulator_state():
    env = _env()
    env.set_abstract_state(_state((0, 0), (3, 3), (2, 2)))
    # gripper at (0.052, 0.098) m -> (1.04, 1.96) cells -> (1, 2); block at (0.149, 0.0) -> (3, 0)
    # rel = grip - obj + 4 = (1 - 3 + 4, 2 - 0 + 4) = (2, 6)
    env.data.qpos[env._qadr] = [0.052, 0.098, 0.149, 0.0]
    np.testing.assert_array_equal(env.abstract_state(), [3, 0, 2, 6, 2, 2])


def test_macro_action_moves_the_gripper_one_cell():
    env = _env()
    env.set_abstract_state(_state((1, 1), (3, 3), (2, 2)))
    state, reward, terminated, _, _ = env.step(0)  # +x
    np.testing.assert_array_equal(state, _state((2, 1), (3, 3), (2, 2)))
    assert_allclose(env.positions(), [2 * C, 1 * C, 3 * C, 3 * C], atol=0.01 * C)
    # R = -(|3-2| + |3-2|) - 0.2 (|2-3| + |1-3|) = -2 - 0.6
    assert reward == pytest.approx(-2.6) and not terminated
    state, *_ = env.step(2)  # +y
    np.testing.assert_array_equal(state, _state((2, 2), (3, 3), (2, 2)))


def test_push_moves_the_block_and_the_wall_blocks_it():
    env = _env()
    env.set_abstract_state(_state((1, 2), (2, 2), (3, 2)))
    state, reward, terminated, _, _ = env.step(0)  # push +x: block 2 -> 3, reaches the goal
    np.testing.assert_array_equal(state, _state((2, 2), (3, 2), (3, 2)))
    assert terminated and reward == pytest.approx(-0.2)  # -0.2 * |2 - 3|
    env.set_abstract_state(_state((3, 2), (4, 2), (1, 1)))
    state, *_ = env.step(0)  # block on the border: nothing moves
    np.testing.assert_array_equal(state, _state((3, 2), (4, 2), (1, 1)))
    env.set_abstract_state(_state((0, 0), (2, 2), (1, 1)))
    state, *_ = env.step(1)  # -x off the grid: nothing moves
    np.testing.assert_array_equal(state, _state((0, 0), (2, 2), (1, 1)))


def test_exact_dynamics_agree_with_the_simulation():
    env, rng = _env(), np.random.default_rng(0)
    steps = 0
    for ep in range(12):
        state, _ = env.reset(seed=ep)
        for _ in range(30):
            action = int(rng.integers(4))
            nxt, _, terminated, _, _ = env.step(action)
            np.testing.assert_array_equal(nxt, exact_next(state[None], [action], W)[0])
            state, steps = nxt, steps + 1
            if terminated:
                break
    assert steps > 200


def test_exact_dbn_matches_exact_next():
    dbn, rng = exact_dbn(W), np.random.default_rng(1)
    grip, obj = rng.integers(0, W, size=(300, 2)), rng.integers(0, W, size=(300, 2))
    states = from_cells(grip, obj, rng.integers(0, W, size=(300, 2)), W)
    actions = rng.integers(0, 4, size=300)
    expected = exact_next(states, actions, W)
    for b in range(len(states)):
        probs = dbn.transition_probs(states[b], actions[b])
        np.testing.assert_array_equal([p.argmax() for p in probs], expected[b])
        assert all(p.max() == 1.0 for p in probs)
    assert dbn.parents[0] == (0, 2, 3, 6)  # obj_x <- obj_x, rel_x, rel_y, action


def test_reward_tables_match_the_formula():
    spec = arm_spec(W)
    states = np.random.default_rng(2).integers(0, 5, size=(50, 6))
    # hand value: grip (0,0), obj (2,2), goal (3,1): -(1 + 1) - 0.2 (2 + 2) = -2.8
    assert spec.reward_np(_state((0, 0), (2, 2), (3, 1))[None])[0] == pytest.approx(-2.8)
    assert_allclose(spec.reward_np(states), np.asarray(reward_jax(states)), rtol=1e-6)


def test_bad_state_and_action_are_named():
    env = _env()
    with pytest.raises(ValueError, match="value 7 of variable 'obj_x'"):
        env.set_abstract_state([7, 0, 4, 3, 2, 2])
    with pytest.raises(ValueError, match="rel_x=0 puts the gripper in cell -2"):
        env.set_abstract_state([2, 2, 0, 4, 2, 2])
    with pytest.raises(ValueError, match="both in cell"):
        env.set_abstract_state([1, 1, 4, 4, 2, 2])
    env.set_abstract_state(_state((0, 0), (2, 2), (1, 1)))
    with pytest.raises(ValueError, match="action 4 is out of range"):
        env.step(4)
