"""Fetch (gymnasium-robotics v4): a 7-DOF arm moved by Cartesian gripper commands, goal-conditioned.

Action (4, in [-1, 1]): gripper displacement dx, dy, dz (times 0.05 m, through a mocap weld) and
the finger command. Episodes are 50 steps and never terminate. The env returns a dict
observation; `FlattenGoalObs` turns it into one flat vector, the layout every model and planner
here sees::

    flat = [observation (n_obs), desired_goal (3)]      FetchReach: 10 + 3, FetchPush: 25 + 3

`achieved_goal` is not appended because it is already inside `observation` (checked by
tests/envs/test_fetch.py): FetchReach's is the gripper position `observation[0:3]`, FetchPush's
the object position `observation[3:6]`. FetchPush's `observation` is grip_pos (3), object_pos (3),
object_rel_pos (3), gripper_state (2), object_rot (3), object_velp (3), object_velr (3),
grip_velp (3), gripper_vel (2).

Rewards, as pure-JAX functions of (obs, action, next_obs) for one example, read from `next_obs`
(the env scores the state it reaches, with d = |achieved_goal - desired_goal|):
- "sparse": -(d > 0.05), exactly the env's reward (`reward_fn` of the registered spec).
- "dense": -d, the reward of the FetchReachDense/FetchPushDense variants. Planners use this one by
  default: a sparse reward gives a search nothing to follow until it is within 5 cm of the goal.
- "shaped" (Push only; Reach falls back to dense): -d - 0.5 |grip - behind|, where `behind` is a
  point 3 cm behind the object on the far side from the goal, so a short search first brings the
  gripper to where pushing moves the object towards the goal.
Success is the env's `info["is_success"]` (d < 0.05) at the last step of an episode.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from prototypes.types import Array, Float

__all__ = [
    "DISTANCE_THRESHOLD",
    "FetchLayout",
    "LAYOUTS",
    "FlattenGoalObs",
    "flatten",
    "reward_fns",
    "done_fn",
    "goal_distance",
    "register",
]

DISTANCE_THRESHOLD = 0.05  # metres; gymnasium-robotics' default for every Fetch task
GOAL_DIM = 3
SHAPING_WEIGHT = 0.5  # weight of the gripper-to-pushing-point term of the "shaped" reward
BEHIND = 0.03  # metres behind the object, away from the goal, that the gripper is drawn to


class FetchLayout:
    """Where things sit in the flat observation of one Fetch task.

    Attributes:
        n_obs: length of the env's `observation` entry.
        achieved: slice of the flat vector holding `achieved_goal`.
        goal: slice holding `desired_goal` (the last 3 entries).
        grip: slice holding the gripper position (always 0:3).
        obs_dim: n_obs + 3.
    """

    def __init__(self, n_obs: int, achieved_start: int):
        self.n_obs = n_obs
        self.obs_dim = n_obs + GOAL_DIM
        self.achieved = slice(achieved_start, achieved_start + GOAL_DIM)
        self.goal = slice(n_obs, n_obs + GOAL_DIM)
        self.grip = slice(0, 3)


LAYOUTS = {"fetch_reach": FetchLayout(10, 0), "fetch_push": FetchLayout(25, 3)}


def flatten(obs: dict[str, np.ndarray]) -> np.ndarray:
    """The flat observation [observation, desired_goal] of one dict observation."""
    return np.concatenate([obs["observation"], obs["desired_goal"]])


class FlattenGoalObs(gym.ObservationWrapper):
    """Replace the dict observation by `flatten(obs)` (float64, as the env produces it)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        n = space["observation"].shape[0] + space["desired_goal"].shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float64)

    def observation(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return flatten(observation)


def goal_distance(layout: FetchLayout, obs: Float[Array, "... O"]) -> Float[Array, ...]:
    """|achieved_goal - desired_goal| of flat observations (any leading dims)."""
    return jnp.linalg.norm(obs[..., layout.achieved] - obs[..., layout.goal], axis=-1)


RewardFn = Callable[[Array, Array, Array], Array]


def reward_fns(name: str) -> dict[str, RewardFn]:
    """{"sparse", "dense", "shaped"} -> r(obs [O], action [A], next_obs [O]) for a Fetch task."""
    layout = LAYOUTS[name]

    def sparse(obs, action, next_obs):
        del obs, action
        d = goal_distance(layout, next_obs)
        return -(d > DISTANCE_THRESHOLD).astype(jnp.float32)

    def dense(obs, action, next_obs):
        del obs, action
        return -goal_distance(layout, next_obs)

    def shaped(obs, action, next_obs):
        del obs, action
        obj, goal = next_obs[layout.achieved], next_obs[layout.goal]
        away = obj - goal
        behind = obj + BEHIND * away / (jnp.linalg.norm(away) + 1e-6)
        reach = jnp.linalg.norm(next_obs[layout.grip] - behind)
        return -jnp.linalg.norm(away) - SHAPING_WEIGHT * reach

    return {"sparse": sparse, "dense": dense, "shaped": shaped if name == "fetch_push" else dense}


def done_fn(next_obs: Float[Array, " O"]) -> Array:
    """Fetch never terminates (episodes are truncated at 50 steps)."""
    del next_obs
    return jnp.zeros((), bool)


_registered = False


def register() -> None:
    """Register the gymnasium-robotics envs with gymnasium (once; importing it is slow)."""
    global _registered
    if not _registered:
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        _registered = True
