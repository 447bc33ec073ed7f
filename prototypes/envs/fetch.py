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
grip_velp (3), gripper_vel (2); FetchReach's is grip_pos, gripper_state, grip_velp, gripper_vel.
Velocities are per env step (the env multiplies them by dt), and FetchPush's object_velp is
relative to the gripper's (object_velp - grip_velp, as the env computes it).

As entities (`ENTITY_LAYOUTS`, also `EnvSpec.layout`; see envs/layout.py):
- gripper (type "arm"): position grip_pos, velocity grip_velp, other = gripper_state and
  gripper_vel (the two finger joints' positions and velocities, indices (3, 4, 8, 9) in Reach,
  (9, 10, 23, 24) in Push).
- object (type "object", Push only): position object_pos, relative object_rel_pos (object -
  gripper, `relative_to="gripper"`), rotation object_rot (Euler angles), velocity object_velp
  then object_velr [14:20].
- goal (type "goal"): position desired_goal (the last 3).
`LAYOUTS[name]` (`FetchLayout`) names the slices the rewards read: `achieved`, `goal`, `grip`.

Rewards, as pure-JAX functions of (obs, action, next_obs) for one example, read from `next_obs`
(the env scores the state it reaches, with d = |achieved_goal - desired_goal|):
- "sparse": -(d > 0.05), exactly the env's reward (`reward_fn` of the registered spec).
- "dense": -d, the reward of the FetchReachDense/FetchPushDense variants. Planners use this one by
  default: a sparse reward gives a search nothing to follow until it is within 5 cm of the goal.
- "shaped" (Push only; Reach falls back to dense): -d - 0.5 |grip - behind|, where `behind` is a
  point 3 cm behind the object on the far side from the goal, so a short search first brings the
  gripper to where pushing moves the object towards the goal: `costs.push_reward` on the task's
  entity layout (envs/costs.py), the same function that scores Pusher.
Success is the env's `info["is_success"]` (d < 0.05) at the last step of an episode.

A discrete abstraction for factored (factor-graph) models, FetchReach only (`GridConfig`,
`grid_spec`, `grid_encode`): the state is the goal's offset from the gripper, rounded per axis to
cells of `cell` metres and clipped to +-`radius` cells, c_i = clip(round((goal_i - grip_i) /
cell), -radius, radius) + radius, so each of the three variables has 2 radius + 1 values and the
centre cell `radius` is "on the goal along this axis". The reward is additive over the axes,
R(c') = -cell * sum_i |c'_i - radius| (the L1 distance in metres, at cell resolution), which a
factor graph holds as three one-variable tables. A full codebook step moves the gripper about
0.03 m (the mocap moves 0.05 m, the arm lags), hence the default cell of 0.03 m: one macro-action
moves the offset about one cell, and the centre cell in all three axes (|offset_i| < 0.015)
implies success (d < 0.026 < 0.05).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from prototypes.config import arg, check
from prototypes.envs import costs
from prototypes.envs.factored_mdp import FactoredSpec, RewardTerm
from prototypes.envs.layout import ARM, GOAL, OBJECT, Entity, EntityLayout, Surface
from prototypes.types import Array, Float, Int

__all__ = [
    "DISTANCE_THRESHOLD",
    "TABLE",
    "ENTITY_LAYOUTS",
    "FetchLayout",
    "LAYOUTS",
    "FIRST_OBJECT_VIEW",
    "FlattenGoalObs",
    "flatten",
    "reward_fns",
    "done_fn",
    "goal_distance",
    "register",
    "GridConfig",
    "GRID_TASKS",
    "grid_spec",
    "grid_encode",
]

DISTANCE_THRESHOLD = 0.05  # metres; gymnasium-robotics' default for every Fetch task
GOAL_DIM = 3
SHAPING_WEIGHT = 0.5  # weight of the gripper-to-pushing-point term of the "shaped" reward
BEHIND = 0.03  # metres behind the object, away from the goal, that the gripper is drawn to
# The table top of every Fetch scene (body table0 at (1.3, 0.75, 0.2), box half-sizes
# (0.25, 0.35, 0.2) in gymnasium-robotics' assets; a test reads them from the loaded model)
TABLE = Surface(low=(1.05, 0.40), high=(1.55, 1.10), top=0.40)


ENTITY_LAYOUTS: dict[str, EntityLayout] = {
    # FetchReach: grip_pos [0:3], gripper_state [3:5], grip_velp [5:8], gripper_vel [8:10], goal
    "fetch_reach": EntityLayout(
        entities=(
            Entity("gripper", ARM, position=slice(0, 3), velocity=slice(5, 8), other=(3, 4, 8, 9)),
            Entity("goal", GOAL, position=slice(10, 13)),
        ),
        obs_dim=13,
    ),
    # FetchPush: grip_pos [0:3], object_pos [3:6], object_rel_pos [6:9], gripper_state [9:11],
    # object_rot [11:14], object_velp [14:17], object_velr [17:20], grip_velp [20:23],
    # gripper_vel [23:25], goal [25:28]
    "fetch_push": EntityLayout(
        entities=(
            Entity(
                "gripper", ARM, position=slice(0, 3), velocity=slice(20, 23), other=(9, 10, 23, 24)
            ),
            Entity(
                "object",
                OBJECT,
                position=slice(3, 6),
                relative=slice(6, 9),
                relative_to="gripper",
                rotation=slice(11, 14),
                velocity=slice(14, 20),
            ),
            Entity("goal", GOAL, position=slice(25, 28)),
        ),
        obs_dim=28,
    ),
}


@dataclass(frozen=True)
class FetchLayout:
    """Where things sit in the flat observation of one Fetch task: the named slices the rewards,
    the grid abstraction and the scripts read, derived from the task's `EntityLayout`.

    Attributes:
        entities: the entity layout (`ENTITY_LAYOUTS[name]`, also `EnvSpec.layout`).
        n_obs: length of the env's `observation` entry.
        obs_dim: n_obs + 3.
        achieved: slice of the flat vector holding `achieved_goal` (the object's position if the
            task has an object, else the gripper's).
        goal: slice holding `desired_goal` (the last 3 entries).
        grip: slice holding the gripper position (always 0:3).
    """

    entities: EntityLayout

    def __post_init__(self) -> None:
        for name, index in (("achieved", self.achieved), ("goal", self.goal), ("grip", self.grip)):
            if not isinstance(index, slice):
                raise ValueError(f"FetchLayout.{name} must be a slice, got {index!r}")

    @property
    def obs_dim(self) -> int:
        return self.entities.obs_dim

    @property
    def n_obs(self) -> int:
        return self.entities.obs_dim - GOAL_DIM

    @property
    def achieved(self) -> slice:
        return self.entities["object" if "object" in self.entities else "gripper"].position

    @property
    def goal(self) -> slice:
        return self.entities["goal"].position

    @property
    def grip(self) -> slice:
        return self.entities["gripper"].position


LAYOUTS = {name: FetchLayout(entities) for name, entities in ENTITY_LAYOUTS.items()}


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
    """{"sparse", "dense", "shaped"} -> r(obs [O], action [A], next_obs [O]) for a Fetch task.

    A task in `FIRST_OBJECT_VIEW` (fetch_push2) gets its one-object task's rewards on the columns
    that hold that task's observation (block 1 and the goal)."""
    if name in FIRST_OBJECT_VIEW:
        base, cols = FIRST_OBJECT_VIEW[name]
        return {kind: _on_columns(fn, cols) for kind, fn in reward_fns(base).items()}
    layout = LAYOUTS[name]

    def sparse(obs, action, next_obs):
        del obs, action
        d = goal_distance(layout, next_obs)
        return -(d > DISTANCE_THRESHOLD).astype(jnp.float32)

    def dense(obs, action, next_obs):
        del obs, action
        return -goal_distance(layout, next_obs)

    if "object" in layout.entities:
        shaped = costs.push_reward(layout.entities, behind=BEHIND, reach_weight=SHAPING_WEIGHT)
    else:
        shaped = dense
    return {"sparse": sparse, "dense": dense, "shaped": shaped}


def done_fn(next_obs: Float[Array, " O"]) -> Array:
    """Fetch never terminates (episodes are truncated at 50 steps)."""
    del next_obs
    return jnp.zeros((), bool)


# --- a discrete abstraction for factored models ----------------------------------------------

GRID_TASKS = ("fetch_reach",)
GRID_AXES = ("goal_dx", "goal_dy", "goal_dz")


@dataclass(frozen=True)
class GridConfig:
    """The cell grid of the goal-offset abstraction (see the module docstring)."""

    cell: float = arg(0.03, "grid cell size in metres (about one full macro-action step)")
    radius: int = arg(6, "cells each side of the goal; larger offsets are clipped to the edge")

    def __post_init__(self) -> None:
        check(self.cell > 0, f"grid.cell must be > 0 metres, got {self.cell}")
        check(self.radius >= 1, f"grid.radius must be >= 1, got {self.radius}")


def _check_grid_task(name: str) -> None:
    if name not in GRID_TASKS:
        raise ValueError(
            f"the grid abstraction exists for {', '.join(GRID_TASKS)} only, got {name!r}"
        )


def grid_spec(name: str, grid: GridConfig, num_actions: int) -> FactoredSpec:
    """The factored task over the goal-offset cells: 3 variables of 2 radius + 1 values,
    `num_actions` actions (the codebook's rows) and the additive L1 reward in metres."""
    _check_grid_task(name)
    card = 2 * grid.radius + 1
    table = -grid.cell * np.abs(np.arange(card) - grid.radius).astype(np.float64)
    return FactoredSpec(
        names=GRID_AXES,
        cards=(card,) * 3,
        num_actions=num_actions,
        reward_terms=tuple(RewardTerm((axis,), table) for axis in GRID_AXES),
    )


def grid_encode(
    name: str, grid: GridConfig, flat_obs: Float[np.ndarray, "... O"]
) -> Int[np.ndarray, "... 3"]:
    """Cells of flat Fetch observations (any leading dims; NumPy, host-side) -> int32."""
    _check_grid_task(name)
    layout = LAYOUTS[name]
    obs = np.asarray(flat_obs, np.float64)
    offset = obs[..., layout.goal] - obs[..., layout.grip]
    cells = np.clip(np.round(offset / grid.cell), -grid.radius, grid.radius) + grid.radius
    return cells.astype(np.int32)


_registered = False


def register() -> None:
    """Register the gymnasium-robotics envs with gymnasium (once; importing it is slow)."""
    global _registered
    if not _registered:
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        _registered = True


# --- FetchPush with two blocks (envs/fetch_push2.py) ------------------------------------------

# fetch_push2: FetchPush's 25 entries, then block 2's position [25:28], position relative to the
# gripper [28:31], Euler rotation [31:34], velp relative to the gripper's [34:37] and velr
# [37:40], then the goal [40:43]. Block 1 keeps the name "object", so `FetchLayout.achieved`,
# the goal metrics and the rewards read it: the goal is on block 1.
ENTITY_LAYOUTS["fetch_push2"] = EntityLayout(
    entities=(
        *ENTITY_LAYOUTS["fetch_push"].entities[:2],
        Entity(
            "object1",
            OBJECT,
            position=slice(25, 28),
            relative=slice(28, 31),
            relative_to="gripper",
            rotation=slice(31, 34),
            velocity=slice(34, 40),
        ),
        Entity("goal", GOAL, position=slice(40, 43)),
    ),
    obs_dim=43,
)
LAYOUTS["fetch_push2"] = FetchLayout(ENTITY_LAYOUTS["fetch_push2"])

# Tasks whose rewards are a one-object task's rewards on some of their columns: (the one-object
# task, the columns of its flat observation inside this task's). fetch_push2 without block 2's
# entries is exactly a fetch_push observation, so its rewards read block 1 only.
FIRST_OBJECT_VIEW: dict[str, tuple[str, tuple[int, ...]]] = {
    "fetch_push2": ("fetch_push", tuple(range(25)) + (40, 41, 42)),
}


def _on_columns(fn: RewardFn, cols: tuple[int, ...]) -> RewardFn:
    index = np.asarray(cols, np.int32)

    def reward(obs, action, next_obs):
        return fn(obs[..., index], action, next_obs[..., index])

    return reward
