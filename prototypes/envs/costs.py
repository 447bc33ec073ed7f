"""Planning rewards built from a task's entity layout (envs/layout.py), for any task with one arm,
one object and one goal (FetchPush, Pusher).

>>> reward = push_reward(get_spec("fetch_push").layout)      # r(obs, action, next_obs)

The push reward, read from `next_obs` (the state a step reaches), with p the arm's position (the
Fetch gripper, Pusher's tips_arm), o the object's and g the goal's::

    u      = (o - g) / (|o - g| + 1e-6)      unit vector from the goal to the object
    behind = o + b u                         b metres behind the object, on the far side from g
    d      = p - o;  along = d_h . u_h       (h: the horizontal axes, all but the last)
    wrong  = |d_h| < R  and  along < a       the arm is beside the object or on the goal's side
    r      = -|o - g| - w |p - behind| - c [wrong] clip((H - d_z) / H, 0, 1)

The first term is the task (the object at the goal); the second draws the arm to the point from
which pushing moves the object towards the goal, so a short search finds the way to the object
long before it can see the object move. With b = 0 it is the pusher-style "touch the object"
term. A task whose object and goal are at the same height (FetchPush: the goal is on the table)
puts `behind` at the object's height, so the gripper is also drawn down to pushing height.

The third term (clearance) keeps the arm off the object except from behind: within R of the
object horizontally, less than `a` behind its centre and less than H above it, each step costs
up to c, less the higher the arm is. Without it the shortest way to `behind`, from an arm that
starts between the object and the goal, runs straight through the object and pushes it away
from the goal; a planner on the true simulator sees that and goes round, but a learned model
that predicts too little motion under contact (10-step open-loop object motion about half the
real one, issue 11) lets the planner plough through, chase the receding `behind` point and push
the object off the table (most of the failed FetchPush episodes with the structured model).
With the term the cheap way round is over the top, where nothing needs predicting but the arm.
R = 8 cm, H = 5 cm and a = 1 cm come from FetchPush's contacts (a 5 cm block moved when the
gripper centre was within 4-8 cm of its centre horizontally and up to 4 cm above it); c = 0 is
the reward without the term.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from prototypes.envs.layout import ARM, GOAL, OBJECT, EntityLayout, take
from prototypes.types import Array, Float

__all__ = [
    "push_reward",
    "push_entities",
    "BEHIND",
    "REACH_WEIGHT",
    "CLEARANCE_WEIGHT",
    "CLEARANCE_RADIUS",
    "CLEARANCE_HEIGHT",
    "CLEARANCE_ALONG",
]

BEHIND = 0.03  # metres behind the object (away from the goal) the arm is drawn to
REACH_WEIGHT = 0.5  # weight of the arm-to-pushing-point distance against the object-to-goal one
CLEARANCE_WEIGHT = 0.2  # c: cost per step of the arm at the object's height on its wrong side
CLEARANCE_RADIUS = 0.08  # R: metres (horizontal) from the object's centre where the cost applies
CLEARANCE_HEIGHT = 0.05  # H: metres above the object's centre where the cost has faded to zero
CLEARANCE_ALONG = 0.01  # a: metres behind the object's centre from which the arm may touch it

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
    layout: EntityLayout,
    behind: float = BEHIND,
    reach_weight: float = REACH_WEIGHT,
    clearance: float = CLEARANCE_WEIGHT,
    radius: float = CLEARANCE_RADIUS,
    height: float = CLEARANCE_HEIGHT,
    along: float = CLEARANCE_ALONG,
) -> RewardFn:
    """The push reward (module docstring) of one example: r(obs [O], action [A], next_obs [O]).

    Args:
        layout: the task's entity layout (one arm, one object, one goal; `push_entities`).
        behind: b, metres behind the object the arm is drawn to (>= 0).
        reach_weight: w, weight of the arm-to-pushing-point distance (>= 0).
        clearance: c, the most a step on the object's wrong side costs (>= 0; 0: no term).
        radius: R, horizontal metres from the object's centre where the clearance cost applies.
        height: H, metres above the object's centre where it has faded to zero (> 0).
        along: a, metres behind the object's centre from which the arm may touch it.
    """
    arm, obj, goal = (layout[name].position for name in push_entities(layout))
    if behind < 0 or reach_weight < 0 or clearance < 0 or radius < 0:
        raise ValueError(
            "behind, reach_weight, clearance and radius must be >= 0, got "
            f"{behind}, {reach_weight}, {clearance}, {radius}"
        )
    if height <= 0:
        raise ValueError(f"height must be > 0, got {height}")

    def reward(
        obs: Float[Array, " O"], action: Float[Array, " A"], next_obs: Float[Array, " O"]
    ) -> Float[Array, ""]:
        del obs, action
        o, g, p = take(next_obs, obj), take(next_obs, goal), take(next_obs, arm)
        away = o - g
        u = away / (jnp.linalg.norm(away) + 1e-6)
        r = -jnp.linalg.norm(away) - reach_weight * jnp.linalg.norm(p - (o + behind * u))
        if clearance == 0:
            return r
        d = p - o
        wrong = (jnp.linalg.norm(d[:-1]) < radius) & (jnp.dot(d[:-1], u[:-1]) < along)
        low = jnp.clip((height - d[-1]) / height, 0.0, 1.0)
        return r - clearance * jnp.where(wrong, low, 0.0)

    return reward
