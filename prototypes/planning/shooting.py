"""Random shooting: N uniform random sequences, act with the first action of the best one."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from prototypes.envs.registry import EnvSpec
from prototypes.planning.base import (
    Planner,
    PlannerConfig,
    PlanState,
    action_bounds,
    evaluate_sequences,
    initial_plan_state,
)
from prototypes.types import Obs, PRNGKey, StepFn

__all__ = ["make_random_shooting"]


def make_random_shooting(cfg: PlannerConfig, spec: EnvSpec) -> Planner:
    T, N, P, A = cfg.horizon, cfg.population, cfg.particles, spec.act_dim
    low, high = action_bounds(spec)

    def init() -> PlanState:
        return initial_plan_state(spec, T)

    def plan(state: PlanState, key: PRNGKey, obs: Obs, step_fn: StepFn):
        key_sample, key_eval = jax.random.split(key)
        cand = jax.random.uniform(
            key_sample,
            (N, T, A),
            minval=jnp.broadcast_to(low, (N, T, A)),
            maxval=jnp.broadcast_to(high, (N, T, A)),
        )
        returns = evaluate_sequences(step_fn, key_eval, obs, cand, P)
        best = jnp.argmax(returns)
        return cand[best, 0], state, {"plan/best_return": returns[best]}

    return Planner(init=init, plan=plan, name="random")
