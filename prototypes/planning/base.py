"""The planner interface, its config, and the shared rollout of action sequences through a StepFn.

A planner is a frozen dataclass of two pure functions (STYLE.md section 3):
``init(spec) -> PlanState`` and ``plan(state, key, obs, step_fn) -> (action, state, metrics)``.
`plan` is meant to be called inside the caller's jit, with `step_fn` bound there from a model
state, so one planning call is one compiled XLA program: iterations, horizon and particles are
`lax.scan`s and batch dimensions, never Python loops.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
from flax import struct

from prototypes.config import arg, check
from prototypes.envs.registry import EnvSpec
from prototypes.types import Array, Float, Metrics, Obs, PRNGKey, StepFn

__all__ = [
    "PlannerConfig",
    "PlanState",
    "Planner",
    "evaluate_sequences",
    "shift_warm_start",
    "clip_actions",
]

PlannerKind = Literal["cem", "mppi", "random"]


@dataclass(frozen=True)
class PlannerConfig:
    kind: PlannerKind = arg("cem", "planner: cem (cross-entropy method), mppi, or random shooting")
    horizon: int = arg(15, "planning horizon T in env steps")
    population: int = arg(400, "candidate action sequences per iteration N")
    iterations: int = arg(5, "refinement iterations per action (cem, mppi)")
    elites: int = arg(40, "elite sequences refitting the CEM sampling distribution K")
    particles: int = arg(5, "model rollouts per candidate P (returns are averaged over them)")
    alpha: float = arg(0.1, "CEM momentum: weight of the old mean/std in each update")
    init_std: float = arg(0.5, "initial sampling std as a fraction of the half action range")
    keep_elites: float = arg(
        0.3, "CEM: fraction of the previous iteration's elites re-evaluated (iCEM)"
    )
    temperature: float = arg(0.1, "MPPI temperature lambda (in return units)")
    return_best: bool = arg(False, "CEM: act with the best sequence seen instead of the final mean")
    noise_beta: float = arg(
        0.0,
        "CEM: exponent beta of the 1/f^beta sampling noise over time (iCEM): 0 white noise, "
        "2-2.5 smooth, low-frequency action sequences",
    )
    population_decay: float = arg(
        1.0, "CEM: iteration i samples population / decay^i sequences, at least 2 x elites (iCEM)"
    )
    shift_elites: float = arg(
        0.0,
        "CEM: fraction of the previous call's elites, shifted one step, added to the first "
        "iteration's population (iCEM)",
    )

    def __post_init__(self) -> None:
        check(
            self.kind in ("cem", "mppi", "random"),
            f"planner.kind must be cem, mppi or random, got {self.kind!r}",
        )
        check(self.horizon >= 1, f"planner.horizon must be >= 1, got {self.horizon}")
        check(self.population >= 1, f"planner.population must be >= 1, got {self.population}")
        check(self.iterations >= 1, f"planner.iterations must be >= 1, got {self.iterations}")
        check(
            1 <= self.elites <= self.population,
            f"planner.elites must be in [1, population={self.population}], got {self.elites}",
        )
        check(self.particles >= 1, f"planner.particles must be >= 1, got {self.particles}")
        check(0.0 <= self.alpha < 1.0, f"planner.alpha must be in [0, 1), got {self.alpha}")
        check(self.init_std > 0, f"planner.init_std must be > 0, got {self.init_std}")
        check(
            0.0 <= self.keep_elites <= 1.0,
            f"planner.keep_elites must be in [0, 1], got {self.keep_elites}",
        )
        check(self.temperature > 0, f"planner.temperature must be > 0, got {self.temperature}")
        check(
            0.0 <= self.noise_beta <= 4.0,
            f"planner.noise_beta must be in [0, 4], got {self.noise_beta}",
        )
        check(
            self.population_decay >= 1.0,
            f"planner.population_decay must be >= 1, got {self.population_decay}",
        )
        check(
            0.0 <= self.shift_elites <= 1.0,
            f"planner.shift_elites must be in [0, 1], got {self.shift_elites}",
        )

    def iteration_sizes(self) -> list[int]:
        """Candidates CEM evaluates at each iteration: population / decay^i (iCEM's decay), never
        fewer than 2 x elites (or the population, if smaller). Kept and shifted elites take rows
        of these, so the sizes are exact."""
        N, K = self.population, self.elites
        floor = min(2 * K, N)
        return [max(int(N / self.population_decay**i), floor) for i in range(self.iterations)]

    def evaluations(self) -> int:
        """Model evaluations per planning call: the iterations' candidates x particles x horizon."""
        return sum(self.iteration_sizes()) * self.particles * self.horizon


@struct.dataclass
class PlanState:
    """mean [T, A]: the warm-start action sequence (the previous plan shifted by one step);
    elites [S, T, A] or None: the previous call's best sequences, shifted by one step (iCEM's
    shifted elites; None for planners and settings that keep none)."""

    mean: Float[Array, "T A"]
    elites: Float[Array, "S T A"] | None = None


@dataclass(frozen=True)
class Planner:
    """init(spec) -> PlanState; plan(state, key, obs, step_fn) -> (action [A], state, metrics)."""

    init: Callable[[], PlanState]
    plan: Callable[[PlanState, PRNGKey, Obs, StepFn], tuple[Array, PlanState, Metrics]]
    name: str


def action_bounds(spec: EnvSpec) -> tuple[Array, Array]:
    return jnp.asarray(spec.action_low, jnp.float32), jnp.asarray(spec.action_high, jnp.float32)


def initial_plan_state(spec: EnvSpec, horizon: int) -> PlanState:
    low, high = action_bounds(spec)
    return PlanState(mean=jnp.broadcast_to((low + high) / 2, (horizon, spec.act_dim)))


def clip_actions(x: Float[Array, "... A"], low: Float[Array, " A"], high: Float[Array, " A"]):
    """Clip to per-dimension bounds, broadcasting the bounds explicitly over leading dims."""
    return jnp.clip(x, jnp.broadcast_to(low, x.shape), jnp.broadcast_to(high, x.shape))


def shift_warm_start(mean: Float[Array, "T A"], fill: Float[Array, " A"]) -> Float[Array, "T A"]:
    """Drop the executed first action and append `fill` at the end."""
    return jnp.concatenate([mean[1:], fill[None]], axis=0)


def evaluate_sequences(
    step_fn: StepFn,
    key: PRNGKey,
    obs: Obs,
    actions: Float[Array, "N T A"],
    particles: int,
) -> Float[Array, " N"]:
    """Mean return over `particles` model rollouts of each action sequence from one state `obs`.

    Rollouts are laid out particle-minor (row n * P + p), which is what TS-inf ensembles expect.
    Rewards after a terminal step are dropped; non-finite returns become -inf so a sequence that
    sends a model off to NaN is never chosen. The key is consumed.
    """
    N, T, _ = actions.shape
    B = N * particles
    states = jax.tree.map(lambda x: jnp.broadcast_to(x, (B,) + jnp.shape(x)), obs)
    acts = jnp.repeat(actions, particles, axis=0).transpose(1, 0, 2)  # [T, B, A]

    def step(carry, xs):
        state, alive, ret = carry
        key_t, action_t = xs
        out = step_fn(key_t, state, action_t)
        ret = ret + jnp.where(alive, out.reward, 0.0)
        return (out.obs, alive & ~out.done, ret), None

    init = (states, jnp.ones(B, bool), jnp.zeros(B, jnp.float32))
    (_, _, ret), _ = jax.lax.scan(step, init, (jax.random.split(key, T), acts))
    ret = jnp.where(jnp.isfinite(ret), ret, -jnp.inf)
    return jnp.mean(ret.reshape(N, particles), axis=1)
