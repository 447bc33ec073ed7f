"""Reacher-v5: a 2-link planar arm reaches a target. obs 10, action 2 in [-1, 1], 50 steps.

Observation layout (gymnasium 1.4, v5)::

    [0:2] cos(q1, q2)  [2:4] sin(q1, q2)  [4:6] target xy  [6:8] joint velocities
    [8:10] fingertip - target (xy)

As entities (`LAYOUT`, see envs/layout.py): the arm (type "arm": rotation = the cos and sin of
its joint angles [0:4], velocity [6:8], and relative = fingertip - target [8:10], the only place
the fingertip appears, so it belongs to the arm and is measured from the target) and the target
(type "goal": position [4:6], xy).

Gymnasium computes the reward *after* stepping, from the new body positions:
``r = -|fingertip - target| - 1.0 * |a|^2``, i.e. a function of (action, next_obs).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from prototypes.envs.layout import ARM, GOAL, Entity, EntityLayout, take
from prototypes.types import Array, Float

__all__ = ["reward_fn", "done_fn", "SENSOR_BODIES", "LAYOUT", "obs_from_physics"]

DIST_WEIGHT = 1.0
CTRL_WEIGHT = 1.0  # gymnasium 1.4's Reacher-v5 default reward_control_weight
SENSOR_BODIES = (
    "fingertip",
    "target",
)  # body positions the oracle reads back (see obs_from_physics)
LAYOUT = EntityLayout(
    entities=(
        Entity(
            "arm",
            ARM,
            rotation=slice(0, 4),
            velocity=slice(6, 8),
            relative=slice(8, 10),
            relative_to="target",
        ),
        Entity("target", GOAL, position=slice(4, 6)),
    ),
    obs_dim=10,
)


def reward_fn(
    obs: Float[Array, " O"], action: Float[Array, " A"], next_obs: Float[Array, " O"]
) -> Float[Array, ""]:
    """r(obs, action, next_obs) exactly as Reacher-v5 computes it (obs is unused)."""
    del obs
    tip_minus_target = take(next_obs, LAYOUT["arm"].relative)
    return -DIST_WEIGHT * jnp.linalg.norm(tip_minus_target) - CTRL_WEIGHT * jnp.sum(action**2)


def done_fn(next_obs: Float[Array, " O"]) -> Array:
    """Reacher never terminates (episodes are truncated at 50 steps)."""
    del next_obs
    return jnp.zeros((), bool)


def obs_from_physics(qpos: np.ndarray, qvel: np.ndarray, sensors: np.ndarray) -> np.ndarray:
    """The observation from batched qpos [B, 4], qvel [B, 4], sensors [B, 6] (fingertip, target)."""
    q = qpos[:, :2]
    tip_minus_target = sensors[:, 0:3] - sensors[:, 3:6]
    return np.concatenate(
        [np.cos(q), np.sin(q), qpos[:, 2:], qvel[:, :2], tip_minus_target[:, :2]], axis=-1
    )
