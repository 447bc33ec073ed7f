"""Cross-entropy method over action sequences (PETS), with the improvements of iCEM.

Each iteration samples N sequences from a diagonal Gaussian clipped to the action bounds, scores
them with `evaluate_sequences`, and refits mean and std to the K best, smoothed by momentum alpha.
The mean is warm-started from the previous call's plan, shifted by one step. iCEM (Pinneri et al.
2020), each part a `PlannerConfig` field whose default leaves plain CEM unchanged:
- `keep_elites`: a fraction of the previous iteration's elites is carried into the next
  population, so good sequences are not lost to resampling (default 0.3);
- `noise_beta`: the sampling noise has a 1/f^beta spectrum over time (planning/noise.py), so
  sequences are smooth for beta around 2 (default 0: white);
- `population_decay`: iteration i samples N / decay^i sequences, never fewer than 2K (default 1);
- `shift_elites`: a fraction of the previous call's final elites, shifted by one step (the last
  step filled with the action range's centre), joins the first iteration's population; they are
  kept in `PlanState.elites` (default 0: none kept);
- `return_best`: act with the best sequence seen rather than the final mean (default off).
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
from prototypes.planning.noise import colored_noise
from prototypes.types import Obs, PRNGKey, StepFn

__all__ = ["make_cem"]


def make_cem(cfg: PlannerConfig, spec: EnvSpec) -> Planner:
    T, N, K, P, A = cfg.horizon, cfg.population, cfg.elites, cfg.particles, spec.act_dim
    n_keep = min(int(round(cfg.keep_elites * K)), N)
    n_shift = min(int(round(cfg.shift_elites * K)), N - n_keep)
    alpha, iters, return_best, beta = cfg.alpha, cfg.iterations, cfg.return_best, cfg.noise_beta
    sizes = cfg.iteration_sizes()  # iCEM's population decay
    low, high = action_bounds(spec)
    centre = (low + high) / 2
    std0 = cfg.init_std * (high - low) / 2

    def init() -> PlanState:
        state = initial_plan_state(spec, T)
        if n_shift:
            state = state.replace(elites=jnp.broadcast_to(state.mean, (n_shift, T, A)))
        return state

    def sample_noise(key: PRNGKey, n: int):
        if beta == 0.0:
            return jax.random.normal(key, (n, T, A))
        return jnp.swapaxes(colored_noise(key, beta, (n, A, T)), 1, 2)

    def plan(state: PlanState, key: PRNGKey, obs: Obs, step_fn: StepFn):
        """One action [A] for one state `obs`; the key is consumed."""

        def iteration(carry, key_i, n: int, shifted=None):
            mean, std, elites, best_seq, best_ret = carry
            key_sample, key_eval = jax.random.split(key_i)
            noise = sample_noise(key_sample, n)
            cand = clip_actions(mean[None] + std[None] * noise, low, high)
            cand = cand.at[:n_keep].set(elites[:n_keep])
            if shifted is not None:
                cand = cand.at[n_keep : n_keep + n_shift].set(shifted)
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
        carry = (
            mean0,
            jnp.broadcast_to(std0, (T, A)),
            jnp.broadcast_to(mean0, (K, T, A)),
            mean0,
            jnp.array(-jnp.inf),
        )
        keys = jax.random.split(key, iters)
        if n_shift == 0 and len(set(sizes)) == 1:  # plain CEM: one scan over the iterations
            carry, iter_best = jax.lax.scan(lambda c, k: iteration(c, k, N), carry, keys)
        else:  # the population changes size: the iterations are unrolled
            bests = []
            for i in range(iters):
                shifted = state.elites if (i == 0 and n_shift) else None
                carry, best_i = iteration(carry, keys[i], sizes[i], shifted)
                bests.append(best_i)
            iter_best = jnp.stack(bests)
        mean, std, elites, best_seq, best_ret = carry
        chosen = best_seq if return_best else mean
        metrics = {
            "plan/best_return": best_ret,
            "plan/first_iter_best": iter_best[0],
            "plan/final_std": jnp.mean(std),
        }
        next_state = PlanState(mean=shift_warm_start(chosen, centre))
        if n_shift:
            shift = jax.vmap(lambda seq: shift_warm_start(seq, centre))
            next_state = next_state.replace(elites=shift(elites[:n_shift]))
        return chosen[0], next_state, metrics

    return Planner(init=init, plan=plan, name="cem")
