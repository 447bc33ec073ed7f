"""Planning rewards built from a task's entity layout (envs/layout.py), for any task with one arm,
one object and one goal (FetchPush, Pusher).

>>> reward = push_reward(get_spec("fetch_push").layout)      # r(obs, action, next_obs)

The push reward, read from `next_obs` (the state a step reaches), with p the arm's position (the
Fetch gripper, Pusher's tips_arm), o the object's and g the goal's::

    u      = (o - g) / (|o - g| + 1e-6)      unit vector from the goal to the object
    behind = o + b u                         b metres behind the object, on the far side from g
    r      = -|o - g| - w |p - behind|

The first term is the task (the object at the goal); the second draws the arm to the point from
which pushing moves the object towards the goal, so a short search finds the way to the object
long before it can see the object move. With b = 0 it is the pusher-style "touch the object"
term. A task whose object and goal are at the same height (FetchPush: the goal is on the table)
puts `behind` at the object's height, so the gripper is also drawn down to pushing height.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from prototypes.envs.layout import ARM, GOAL, OBJECT, EntityLayout, take
from prototypes.types import Array, Float

__all__ = ["push_reward", "push_entities", "BEHIND", "REACH_WEIGHT"]

BEHIND = 0.03  # metres behind the object (away from the goal) the arm is drawn to
REACH_WEIGHT = 0.5  # weight of the arm-to-pushing-point distance against the object-to-goal one

RewardFn = Callable[[Array, Array, Array], Array]


def push_entities(layout: EntityLayout | None) -> tuple[str, str, str]:
    """(arm, object, goal) entity names of a layout with exactly one of each type.

    Raises:
        ValueError: no layout, or not exactly one arm, one object and one goal, each with a
            position.
    """
    if layout is None:
        raise ValueError("the push reward needs an entity layout (arm, object, goal)")
    names = []
    for type_ in (ARM, OBJECT, GOAL):
        found = [e for e in layout.entities_of_type(type_) if e.position is not None]
        if len(found) != 1:
            raise ValueError(
                f"the push reward needs exactly one {type_} entity with a position, "
                f"got {len(found)} in layout {layout.names}"
            )
        names.append(found[0].name)
    return names[0], names[1], names[2]


def push_reward(
    layout: EntityLayout, behind: float = BEHIND, reach_weight: float = REACH_WEIGHT
) -> RewardFn:
    """The push reward (module docstring) of one example: r(obs [O], action [A], next_obs [O]).

    Args:
        layout: the task's entity layout (one arm, one object, one goal; `push_entities`).
        behind: b, metres behind the object the arm is drawn to (>= 0).
        reach_weight: w, weight of the arm-to-pushing-point distance (>= 0).
    """
    arm, obj, goal = (layout[name].position for name in push_entities(layout))
    if behind < 0 or reach_weight < 0:
        raise ValueError(f"behind and reach_weight must be >= 0, got {behind}, {reach_weight}")

    def reward(
        obs: Float[Array, " O"], action: Float[Array, " A"], next_obs: Float[Array, " O"]
    ) -> Float[Array, ""]:
        del obs, action
        o, g = take(next_obs, obj), take(next_obs, goal)
        away = o - g
        point = o + behind * away / (jnp.linalg.norm(away) + 1e-6)
        return -jnp.linalg.norm(away) - reach_weight * jnp.linalg.norm(take(next_obs, arm) - point)

    return reward
