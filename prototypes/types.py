"""Shared types: array aliases and the pytrees that flow between components.

Letters used in shape annotations (STYLE.md section 5): B batch, T horizon, N candidates,
K elites, E ensemble, P particles, O obs dim, A action dim, Z latent dim.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import struct
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

__all__ = [
    "Array",
    "Bool",
    "Float",
    "Int",
    "PRNGKey",
    "Params",
    "Metrics",
    "Obs",
    "Action",
    "Transition",
    "Step",
    "StepFn",
    "RewardFn",
    "DoneFn",
]

PRNGKey = PRNGKeyArray
Params = Any  # a pytree of arrays
Metrics = dict[str, jax.Array]
Obs = Any  # an array [..., O], or a pytree of arrays for models whose planning state is richer
Action = Float[Array, "... A"]


@struct.dataclass
class Transition:
    """One transition, or a batch of them (every field then has the same leading dims).

    The reward is r(obs, action): the reward of taking `action` in `obs`.
    `done` is True when `next_obs` is terminal (not when the episode was merely truncated).
    """

    obs: Float[Array, "... O"]
    action: Float[Array, "... A"]
    reward: Float[Array, ...]
    next_obs: Float[Array, "... O"]
    done: Bool[Array, ...]


@struct.dataclass
class Step:
    """What a `StepFn` returns for a batch of B states.

    Attributes:
        obs: the next planning state [B, ...] (a sample, or the mean for deterministic modes).
        reward: r(obs_t, action_t) [B], the reward of the transition just taken.
        done: [B] True where the next state is terminal.
    """

    obs: Obs
    reward: Float[Array, " B"]
    done: Bool[Array, " B"]


# A StepFn advances a *batch* of B planning states by one step. Batched rather than per-example
# because ensembles assign particles to members by batch position (see models/ensemble.py) and
# the oracle hands the whole batch to the simulator in one call. The key is consumed.
StepFn = Callable[[PRNGKey, Obs, Float[Array, "B A"]], Step]
# Pure-JAX task functions, written for one example and vmapped by callers where needed.
RewardFn = Callable[[Float[Array, " O"], Float[Array, " A"]], Float[Array, ""]]
DoneFn = Callable[[Float[Array, " O"]], Bool[Array, ""]]
