"""Context visibility for transfer: the variant's values as extra observation features (CARL).

>>> env = ContextObservation(make("pusher", variant="mass=B"), parse_variant("pusher", "mass=B"))
>>> spec = with_context(get_spec("pusher"), context_width(variant))     # obs_dim 23 -> 24

Hidden context (pure zero-shot transfer) is the plain env: the model never sees what changed.
Given context (Benjamins et al. 2023, CARL) appends the changed parameters' values to every
observation, constant within an episode, so a model can learn how the dynamics depend on them and
interpolate or extrapolate in them. The features, in the variant's factor order (sorted by name):

- a scale factor (mass, damping, friction, size, gear): its multiplier, one number (1 = nominal);
- a region factor (goal, start): its point, 2 or 3 numbers (the goal is also in the observation
  already; the start is where the object was put);
- distractors: their count, one number (their places are not given: the observation has no slot
  for them).

`with_context` gives the task spec the model and the planner see: `obs_dim` grows by the context
width, and the entity layout gives the new indices to one entity as its "other" entries (the
object if the task has one, since the changed physics is the object's; else the arm), so the
layout still covers every index once and a structured model reads the context as a node
feature of that entity. Rewards and termination read the observation through the layout's
slices, which never reach the appended entries, so they are unchanged (tested). The oracle never
takes context: it plans on the true physics, which already holds the changed values.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from prototypes.envs.layout import ARM, OBJECT, EntityLayout, indices
from prototypes.envs.registry import EnvSpec
from prototypes.envs.variants import FACTORS, DistractorFactor, RegionFactor, Variant

__all__ = ["context_width", "context_vector", "ContextObservation", "with_context"]


def _width(task: str, name: str) -> int:
    factor = FACTORS[task][name]
    if isinstance(factor, RegionFactor):
        return len(factor.allowed[0])
    return 1


def context_width(variant: Variant) -> int:
    """C, the number of context features of `variant` (0 for the unchanged task)."""
    return sum(_width(variant.task, name) for name, _ in variant.settings)


def context_vector(variant: Variant, values: dict[str, Any]) -> np.ndarray:
    """The context features [C] (float64) from one episode's `info["variant"]` values."""
    out: list[float] = []
    for name, _ in variant.settings:
        value = values[name]
        if isinstance(FACTORS[variant.task][name], DistractorFactor):
            out.append(float(len(value)))  # the placed distractors' points: their count
        else:
            out.extend(np.atleast_1d(np.asarray(value, np.float64)).tolist())
    return np.asarray(out, np.float64)


class ContextObservation(gym.Wrapper):
    """Appends the episode's context features to every observation (outermost wrapper).

    The features come from the `info["variant"]` of each reset (a `VariantWrapper` below this
    one puts them there) and stay the same for the whole episode.
    """

    def __init__(self, env: gym.Env, variant: Variant):
        super().__init__(env)
        self.variant = variant
        self.width = context_width(variant)
        space = env.observation_space
        n = space.shape[0] + self.width
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), space.dtype)
        self._context = np.zeros(self.width, np.float64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if self.width:
            if "variant" not in info:
                raise RuntimeError("ContextObservation needs a VariantWrapper inside it")
            self._context = context_vector(self.variant, info["variant"])
        return self._append(obs), info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._append(obs), reward, terminated, truncated, info

    def _append(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs), self._context.astype(np.asarray(obs).dtype)])


def with_context(spec: EnvSpec, width: int) -> EnvSpec:
    """The spec of `spec`'s task with `width` context features appended to the observation.

    The new indices O..O+width-1 become "other" entries of the task's object entity (or its arm,
    if it has no object); rewards and termination are kept (they read the layout's slices).
    The oracle's `obs_from_physics` is dropped: a simulator-backed model takes no context.

    Raises:
        ValueError: width < 0, or a spec without an entity layout while width > 0.
    """
    if width < 0:
        raise ValueError(f"context width must be >= 0, got {width}")
    if width == 0:
        return spec
    if spec.layout is None:
        raise ValueError(f"task {spec.name!r} has no entity layout to put context features in")
    layout = spec.layout
    owners = layout.entities_of_type(OBJECT) or layout.entities_of_type(ARM)
    owner = owners[0].name
    new = tuple(range(spec.obs_dim, spec.obs_dim + width))
    entities = []
    for e in layout.entities:
        if e.name == owner:
            other = (tuple(indices(e.other)) if e.other is not None else ()) + new
            e = dataclasses.replace(e, other=other)
        entities.append(e)
    return dataclasses.replace(
        spec,
        obs_dim=spec.obs_dim + width,
        layout=EntityLayout(entities=tuple(entities), obs_dim=spec.obs_dim + width),
        obs_from_physics=None,
        sensor_bodies=(),
    )
