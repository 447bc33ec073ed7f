"""Model-predictive path integral control (Williams et al. 2017), as a sequence optimiser.

Each iteration perturbs the current mean sequence with Gaussian noise (clipped to the action
bounds), scores the N candidates, and moves the mean to their softmax(return / lambda)-weighted
average. As lambda grows the update tends to the plain mean of the candidates; as it shrinks, to
the single best candidate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prototypes.envs.registry import EnvSpec
from prototypes.planning.base import (
    Planner,
    PlannerConfig,
    PlanState,
    action_bounds,
    clip_actions,
    evaluate_sequences,
    initial_plan_state,
    shift_warm_start,
)
from prototypes.types import Obs, PRNGKey, StepFn

__all__ = ["make_mppi", "mppi_weights"]


def mppi_weights(returns: jax.Array, temperature: float) -> jax.Array:
    """softmax(returns / temperature) over candidates; -inf returns get weight 0."""
    finite = jnp.isfinite(returns)
    safe = jnp.where(finite, returns, jnp.min(jnp.where(finite, returns, jnp.inf)))
    logits = jnp.where(finite, (safe - jnp.max(safe)) / temperature, -jnp.inf)
    return jax.nn.softmax(logits)


def make_mppi(cfg: PlannerConfig, spec: EnvSpec) -> Planner:
    T, N, P, A = cfg.horizon, cfg.population, cfg.particles, spec.act_dim
    lam, iters = cfg.temperature, cfg.iterations
    low, high = action_bounds(spec)
    std = cfg.init_std * (high - low) / 2

    def init() -> PlanState:
        return initial_plan_state(spec, T)

    def plan(state: PlanState, key: PRNGKey, obs: Obs, step_fn: StepFn):
        def iteration(mean, key_i):
            key_sample, key_eval = jax.random.split(key_i)
            noise = jax.random.normal(key_sample, (N, T, A))
            cand = clip_actions(mean[None] + std[None, None] * noise, low, high)
            returns = evaluate_sequences(step_fn, key_eval, obs, cand, P)
            w = mppi_weights(returns, lam)
            return jnp.einsum("n,nta->ta", w, cand), jnp.max(returns)

        mean, best = jax.lax.scan(iteration, state.mean, jax.random.split(key, iters))
        metrics = {"plan/best_return": jnp.max(best)}
        return mean[0], PlanState(mean=shift_warm_start(mean, (low + high) / 2)), metrics

    return Planner(init=init, plan=plan, name="mppi")
