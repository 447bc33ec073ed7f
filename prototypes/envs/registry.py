"""Tasks by short name: the gymnasium env plus what a planner needs to know about it.

>>> spec = get_spec("reacher"); env = make("reacher", seed=0)

Two groups: `TASKS`, the dense-reward arms (reacher, pusher) that the PETS and MBPO scripts accept,
and `FETCH_TASKS`, the goal-conditioned Fetch tasks (fetch_reach, fetch_push; see envs/fetch.py
for their flat observation and rewards), kept apart so adding them does not change what those
scripts accept. `get_spec` and `make` know both (`ALL_TASKS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import gymnasium as gym
import numpy as np

from prototypes.envs import fetch, fetch_push2, pusher, reacher
from prototypes.envs.layout import EntityLayout, Surface
from prototypes.envs.variants import FACTORS, Variant, VariantWrapper, parse_variant
from prototypes.types import DoneFn, RewardFn

__all__ = ["EnvSpec", "TASKS", "FETCH_TASKS", "ALL_TASKS", "get_spec", "make"]


@dataclass(frozen=True)
class EnvSpec:
    """Static facts about a task, shared by models, planners and agents.

    Attributes:
        name: short name ("reacher").
        gym_id: the gymnasium id it builds ("Reacher-v5").
        obs_dim, act_dim: O and A.
        action_low, action_high: per-dimension action bounds (tuples, so the spec is hashable).
        episode_steps: the time limit.
        reward_fn: r(obs, action, next_obs), pure JAX, for one example.
        done_fn: terminal(next_obs), pure JAX, for one example.
        obs_from_physics: NumPy map from batched (qpos, qvel, sensordata) to observations, for the
            oracle model; `sensor_bodies` names the bodies whose positions it reads. None (and
            ()) for tasks without an oracle.
        layout: the observation as named entities (arm or gripper, object, goal) with typed
            index slices, covering every index once (envs/layout.py); rewards and structured
            models read it. None only for a spec built without one.
        surface: the table top the objects rest on (Fetch's; envs/layout.py `Surface`), which
            a structured model can be told about (`surface_features`); None where there is none
            or it is not described.
    """

    name: str
    gym_id: str
    obs_dim: int
    act_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    episode_steps: int
    reward_fn: RewardFn
    done_fn: DoneFn
    obs_from_physics: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
    sensor_bodies: tuple[str, ...] = ()
    layout: EntityLayout | None = None
    surface: Surface | None = None


def _spec(
    name: str, gym_id: str, module: ModuleType, obs_dim: int, act: float, act_dim: int, steps: int
) -> EnvSpec:
    return EnvSpec(
        name=name,
        gym_id=gym_id,
        obs_dim=obs_dim,
        act_dim=act_dim,
        action_low=(-act,) * act_dim,
        action_high=(act,) * act_dim,
        episode_steps=steps,
        reward_fn=module.reward_fn,
        done_fn=module.done_fn,
        obs_from_physics=module.obs_from_physics,
        sensor_bodies=module.SENSOR_BODIES,
        layout=module.LAYOUT,
    )


TASKS: dict[str, EnvSpec] = {
    "reacher": _spec("reacher", "Reacher-v5", reacher, 10, 1.0, 2, 50),
    "pusher": _spec("pusher", "Pusher-v5", pusher, 23, 2.0, 7, 100),
}


def _fetch_spec(name: str, gym_id: str) -> EnvSpec:
    layout = fetch.LAYOUTS[name]
    return EnvSpec(
        name=name,
        gym_id=gym_id,
        obs_dim=layout.obs_dim,
        act_dim=4,
        action_low=(-1.0,) * 4,
        action_high=(1.0,) * 4,
        episode_steps=50,
        reward_fn=fetch.reward_fns(name)["sparse"],  # the env's own reward
        done_fn=fetch.done_fn,
        layout=layout.entities,
        surface=fetch.TABLE,
    )


FETCH_TASKS: dict[str, EnvSpec] = {
    "fetch_reach": _fetch_spec("fetch_reach", "FetchReach-v4"),
    "fetch_push": _fetch_spec("fetch_push", "FetchPush-v4"),
    # two blocks, the goal on the first (envs/fetch_push2.py); no variant factors yet ("none")
    "fetch_push2": _fetch_spec("fetch_push2", fetch_push2.GYM_ID),
}
FACTORS.setdefault("fetch_push2", {})
ALL_TASKS: dict[str, EnvSpec] = {**TASKS, **FETCH_TASKS}


def get_spec(name: str) -> EnvSpec:
    """The spec of a task by short name; ValueError naming the allowed names otherwise."""
    if name not in ALL_TASKS:
        raise ValueError(f"unknown env {name!r}: choose from {', '.join(sorted(ALL_TASKS))}")
    return ALL_TASKS[name]


def make(
    name: str, seed: int | None = None, variant: str | Variant | None = None, **kwargs
) -> gym.Env:
    """Build the gymnasium env for a task, with its time limit, seeded if `seed` is given.

    Seeding resets the env once with `seed` and seeds its action space, so the first
    `env.reset()` without a seed continues that stream deterministically. Fetch tasks register
    gymnasium-robotics first and come wrapped in `fetch.FlattenGoalObs` (flat observations;
    `info["is_success"]` is passed through). `variant` (a `Variant` or its string, see
    envs/variants.py) changes the task's physics and reset regions through a
    `variants.VariantWrapper`; None, "none" or "" build exactly the unchanged task (no wrapper).

    Raises:
        ValueError: an unknown task, or a bad variant (one line naming it).
    """
    spec = get_spec(name)
    if not isinstance(variant, Variant):
        variant = parse_variant(name, variant)
    elif variant.task != name:
        raise ValueError(f"variant {variant} is for {variant.task!r}, not {name!r}")
    if name in FETCH_TASKS:
        fetch.register()
    env = gym.make(spec.gym_id, max_episode_steps=spec.episode_steps, **kwargs)
    if variant.settings:
        env = VariantWrapper(env, variant)
    if name in FETCH_TASKS:
        env = fetch.FlattenGoalObs(env)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
