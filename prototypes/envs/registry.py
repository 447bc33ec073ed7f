"""Tasks by short name: the gymnasium env plus what a planner needs to know about it.

>>> spec = get_spec("reacher"); env = make("reacher", seed=0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import gymnasium as gym
import numpy as np

from prototypes.envs import pusher, reacher
from prototypes.types import DoneFn, RewardFn

__all__ = ["EnvSpec", "TASKS", "get_spec", "make"]


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
            oracle model; `sensor_bodies` names the bodies whose positions it reads.
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
    obs_from_physics: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    sensor_bodies: tuple[str, ...]


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
    )


TASKS: dict[str, EnvSpec] = {
    "reacher": _spec("reacher", "Reacher-v5", reacher, 10, 1.0, 2, 50),
    "pusher": _spec("pusher", "Pusher-v5", pusher, 23, 2.0, 7, 100),
}


def get_spec(name: str) -> EnvSpec:
    """The spec of a task by short name; ValueError naming the allowed names otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown env {name!r}: choose from {', '.join(sorted(TASKS))}")
    return TASKS[name]


def make(name: str, seed: int | None = None, **kwargs) -> gym.Env:
    """Build the gymnasium env for a task, with its time limit, seeded if `seed` is given.

    Seeding resets the env once with `seed` and seeds its action space, so the first
    `env.reset()` without a seed continues that stream deterministically.
    """
    spec = get_spec(name)
    env = gym.make(spec.gym_id, max_episode_steps=spec.episode_steps, **kwargs)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
