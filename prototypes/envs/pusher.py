"""Pusher-v5: a 7-DOF arm pushes a cylinder to a goal. obs 23, action 7 in [-2, 2], 100 steps.

Observation layout (gymnasium 1.4, v5)::

    [0:7] joint angles  [7:14] joint velocities  [14:17] tips_arm xyz  [17:20] object xyz
    [20:23] goal xyz

As entities (`LAYOUT`, see envs/layout.py): the arm (type "arm": rotation = joint angles [0:7],
velocity = joint velocities [7:14], position = tips_arm [14:17]), the object (type "object":
position [17:20]) and the goal (type "goal": position [20:23]).

Gymnasium computes the reward after stepping, from the new body positions:
``r = -|object - goal| - 0.5 |object - tips_arm| - 0.1 |a|^2``, a function of (action, next_obs).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from prototypes.envs.layout import ARM, GOAL, OBJECT, Entity, EntityLayout, take
from prototypes.types import Array, Float

__all__ = ["reward_fn", "done_fn", "SENSOR_BODIES", "LAYOUT", "obs_from_physics"]

NEAR_WEIGHT = 0.5
DIST_WEIGHT = 1.0
CTRL_WEIGHT = 0.1
SENSOR_BODIES = ("tips_arm", "object", "goal")
LAYOUT = EntityLayout(
    entities=(
        Entity("arm", ARM, rotation=slice(0, 7), velocity=slice(7, 14), position=slice(14, 17)),
        Entity("object", OBJECT, position=slice(17, 20)),
        Entity("goal", GOAL, position=slice(20, 23)),
    ),
    obs_dim=23,
)


def reward_fn(
    obs: Float[Array, " O"], action: Float[Array, " A"], next_obs: Float[Array, " O"]
) -> Float[Array, ""]:
    """r(obs, action, next_obs) exactly as Pusher-v5 computes it (obs is unused)."""
    del obs
    tip, obj, goal = (take(next_obs, LAYOUT[name].position) for name in ("arm", "object", "goal"))
    return (
        -DIST_WEIGHT * jnp.linalg.norm(obj - goal)
        - NEAR_WEIGHT * jnp.linalg.norm(obj - tip)
        - CTRL_WEIGHT * jnp.sum(action**2)
    )


def done_fn(next_obs: Float[Array, " O"]) -> Array:
    """Pusher never terminates (episodes are truncated at 100 steps)."""
    del next_obs
    return jnp.zeros((), bool)


def obs_from_physics(qpos: np.ndarray, qvel: np.ndarray, sensors: np.ndarray) -> np.ndarray:
    """The observation from batched qpos [B, 11], qvel [B, 11], sensors [B, 9]."""
    return np.concatenate([qpos[:, :7], qvel[:, :7], sensors], axis=-1)
