"""Cross-entropy method over action sequences (PETS), with iCEM's elite carry-over.

Each iteration samples N sequences from a diagonal Gaussian clipped to the action bounds, scores
them with `evaluate_sequences`, and refits mean and std to the K best, smoothed by momentum alpha.
A fraction of the previous iteration's elites is carried into the next population (iCEM, Pinneri
et al. 2020), so good sequences are not lost to resampling. The mean is warm-started from the
previous call's plan, shifted by one step.
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

__all__ = ["make_cem"]


def make_cem(cfg: PlannerConfig, spec: EnvSpec) -> Planner:
    T, N, K, P, A = cfg.horizon, cfg.population, cfg.elites, cfg.particles, spec.act_dim
    n_keep = min(int(round(cfg.keep_elites * K)), N)
    alpha, iters, return_best = cfg.alpha, cfg.iterations, cfg.return_best
    low, high = action_bounds(spec)
    std0 = cfg.init_std * (high - low) / 2

    def init() -> PlanState:
        return initial_plan_state(spec, T)

    def plan(state: PlanState, key: PRNGKey, obs: Obs, step_fn: StepFn):
        """One action [A] for one state `obs`; the key is consumed."""

        def iteration(carry, key_i):
            mean, std, elites, best_seq, best_ret = carry
            key_sample, key_eval = jax.random.split(key_i)
            noise = jax.random.normal(key_sample, (N, T, A))
            cand = clip_actions(mean[None] + std[None] * noise, low, high)
            cand = cand.at[:n_keep].set(elites[:n_keep])
            returns = evaluate_sequences(step_fn, key_eval, obs, cand, P)
            top_ret, top_idx = jax.lax.top_k(returns, K)
            new_elites = cand[top_idx]
            mean = alpha * mean + (1 - alpha) * jnp.mean(new_elites, axis=0)
            std = alpha * std + (1 - alpha) * jnp.std(new_elites, axis=0)
            better = top_ret[0] > best_ret
            best_seq = jnp.where(better, new_elites[0], best_seq)
            best_ret = jnp.where(better, top_ret[0], best_ret)
            return (mean, std, new_elites, best_seq, best_ret), top_ret[0]

        mean0 = state.mean
        init = (
            mean0,
            jnp.broadcast_to(std0, (T, A)),
            jnp.broadcast_to(mean0, (K, T, A)),
            mean0,
            jnp.array(-jnp.inf),
        )
        (mean, std, _, best_seq, best_ret), iter_best = jax.lax.scan(
            iteration, init, jax.random.split(key, iters)
        )
        chosen = best_seq if return_best else mean
        metrics = {
            "plan/best_return": best_ret,
            "plan/first_iter_best": iter_best[0],
            "plan/final_std": jnp.mean(std),
        }
        next_state = PlanState(mean=shift_warm_start(chosen, (low + high) / 2))
        return chosen[0], next_state, metrics

    return Planner(init=init, plan=plan, name="cem")
