"""The world-model interface every planner and agent is written against.

A world model is a frozen dataclass of functions (STYLE.md section 3); its changing state (params,
optimiser state, normaliser statistics, ...) is a separate pytree, the `ModelState`, owned by the
caller. Planners never see a model: they get a `StepFn`, ``partial(model.predict, model_state)``,
bound inside the caller's jit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prototypes.types import Action, Metrics, Obs, PRNGKey, Step, Transition

__all__ = ["ModelState", "WorldModel", "TrainingDivergedError", "identity_encode", "no_summary"]

ModelState = Any  # each model defines its own pytree


class TrainingDivergedError(RuntimeError):
    """Training produced a non-finite loss; the message names where and what to change."""


def identity_encode(model_state: ModelState, obs: Obs) -> Obs:
    """Default `encode`: the planning state is the observation itself."""
    del model_state
    return obs


def no_summary(model_state: ModelState) -> Metrics:
    """Default `summary`: nothing to report about the learned state."""
    del model_state
    return {}


@dataclass(frozen=True)
class WorldModel:
    """A learned (or exact) model of the environment's dynamics.

    Attributes:
        init: (key, example) -> state. `example` is one unbatched `Transition`, which fixes shapes.
        predict: (state, key, obs [B, ...], action [B, A]) -> Step for the batch: the next planning
            state (sampled, per the model's propagation mode), r(obs, action, next) and done.
            Pure and jittable; the key is consumed.
        fit: (state, key, data) -> (state, metrics). Trains on a whole dataset (a `Transition`
            with leading dim N). Host-side: it may loop and stop early; its inner steps are jitted.
        encode: (state, obs) -> planning root. Host-side: maps a real observation to the state
            that `predict` advances. A simulator-backed model (the oracle) holds the live env it
            reads the physics from, so callers never pass an env.
        name: for logs.
        summary: (state) -> metrics describing what the model has learned, for the run's
            metrics after a fit (the factored model's parent sets, say). Host-side; {} by default.
    """

    init: Callable[[PRNGKey, Transition], ModelState]
    predict: Callable[[ModelState, PRNGKey, Obs, Action], Step]
    fit: Callable[[ModelState, PRNGKey, Transition], tuple[ModelState, Metrics]]
    encode: Callable[[ModelState, Obs], Obs] = field(default=identity_encode)
    name: str = "model"
    summary: Callable[[ModelState], Metrics] = field(default=no_summary)
