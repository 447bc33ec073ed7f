"""MCTS over a world model's StepFn, through mctx (Gumbel MuZero or plain MuZero).

The search runs over a fixed discrete action set, a *codebook* [K, A] of continuous actions:
tree action k means "call the StepFn with codebook[k]". mctx's `recurrent_fn` wraps the StepFn:

    (params, key, index [B], state [B, ...]) ->
        RecurrentFnOutput(reward [B], discount [B] = gamma where not done else 0,
                          prior_logits [B, K] (uniform, or prior_fn(next state)),
                          value [B] (leaf estimate of the next state)), next state [B, ...]

Embeddings are the model's planning states, so any pytree a StepFn advances works (an
observation array, `OracleObs`, a factored model's discrete state). The leaf value estimate is
configurable: "zero", "rollout" (the mean discounted return of `rollout_count` uniformly random
codebook rollouts of `rollout_steps` steps through the same StepFn), or "fn" (a user value_fn
of the batched planning state).

Two entry points:
- `make_mcts_search(cfg, codebook, ...)`: a batched search over B root states (for batched envs),
  returning an `MCTSOutput` with the chosen indices, actions and root statistics.
- `make_mcts(cfg, spec, ...)`: the same search as a `Planner` (`plan(state, key, obs, step_fn)`
  for one root), so the MPC agent runs it like CEM. There is no warm start: the `PlanState` is
  carried through unchanged.

A transition with done=True gets discount 0, so nothing below a terminal node counts. Invalid
actions (`invalid_actions` [B, K], True = invalid) are masked at the root only, as in mctx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import chex
import jax
import jax.numpy as jnp
import mctx
import numpy as np
from flax import struct

from prototypes.config import arg, check
from prototypes.envs.registry import EnvSpec
from prototypes.planning.base import Planner, PlanState, initial_plan_state
from prototypes.types import Array, Bool, Float, Int, Metrics, Obs, PRNGKey, StepFn

__all__ = [
    "MCTSConfig",
    "MCTSOutput",
    "ValueFn",
    "PriorFn",
    "make_mcts_search",
    "make_recurrent_fn",
    "make_leaf_value",
    "make_prior",
    "make_mcts",
    "make_codebook",
    "cartesian_codebook",
    "axis_codebook",
    "rollout_value",
]

Algorithm = Literal["gumbel", "muzero"]
ValueKind = Literal["zero", "rollout", "fn"]
CodebookKind = Literal["axes", "cartesian"]

# value_fn(states [B, ...]) -> [B]; prior_fn(states [B, ...]) -> logits [B, K]
ValueFn = Callable[[Obs], Float[Array, " B"]]
PriorFn = Callable[[Obs], Float[Array, "B K"]]


@dataclass(frozen=True)
class MCTSConfig:
    algorithm: Algorithm = arg("gumbel", "search: gumbel (Gumbel MuZero) or muzero (PUCT)")
    num_simulations: int = arg(64, "simulations per search")
    max_depth: int = arg(10, "deepest tree level a simulation may reach")
    gamma: float = arg(0.99, "discount per step, in (0, 1]")
    value: ValueKind = arg("rollout", "leaf value: zero, rollout (random codebook rollouts) or fn")
    rollout_steps: int = arg(5, "steps of each random leaf rollout (value=rollout)")
    rollout_count: int = arg(4, "random rollouts averaged per leaf (value=rollout)")
    codebook: CodebookKind = arg(
        "axes", "action set: axes (zero, +-each axis, random directions) or cartesian (Fetch)"
    )
    magnitude: float = arg(0.5, "axes codebook: action size as a fraction of the half range")
    random_directions: int = arg(4, "axes codebook: extra random unit directions")
    codebook_seed: int = arg(0, "axes codebook: seed of the random directions")
    max_considered_actions: int = arg(16, "gumbel: actions sampled at the root")
    gumbel_scale: float = arg(1.0, "gumbel: scale of the root Gumbel noise (0 = deterministic)")
    pb_c_init: float = arg(1.25, "muzero: PUCT exploration constant c1")
    dirichlet_fraction: float = arg(0.0, "muzero: weight of root Dirichlet noise in the prior")
    dirichlet_alpha: float = arg(0.3, "muzero: Dirichlet concentration")
    temperature: float = arg(0.0, "muzero: act with visits^(1/temperature); 0 = most visited")

    def __post_init__(self) -> None:
        check(
            self.algorithm in ("gumbel", "muzero"),
            f"mcts.algorithm must be gumbel or muzero, got {self.algorithm!r}",
        )
        check(
            self.num_simulations >= 1,
            f"mcts.num_simulations must be >= 1, got {self.num_simulations}",
        )
        check(self.max_depth >= 1, f"mcts.max_depth must be >= 1, got {self.max_depth}")
        check(0.0 < self.gamma <= 1.0, f"mcts.gamma must be in (0, 1], got {self.gamma}")
        check(
            self.value in ("zero", "rollout", "fn"),
            f"mcts.value must be zero, rollout or fn, got {self.value!r}",
        )
        check(self.rollout_steps >= 1, f"mcts.rollout_steps must be >= 1, got {self.rollout_steps}")
        check(self.rollout_count >= 1, f"mcts.rollout_count must be >= 1, got {self.rollout_count}")
        check(
            self.codebook in ("axes", "cartesian"),
            f"mcts.codebook must be axes or cartesian, got {self.codebook!r}",
        )
        check(self.magnitude > 0, f"mcts.magnitude must be > 0, got {self.magnitude}")
        check(
            self.random_directions >= 0,
            f"mcts.random_directions must be >= 0, got {self.random_directions}",
        )
        check(
            self.max_considered_actions >= 1,
            f"mcts.max_considered_actions must be >= 1, got {self.max_considered_actions}",
        )
        check(self.gumbel_scale >= 0, f"mcts.gumbel_scale must be >= 0, got {self.gumbel_scale}")
        check(
            0.0 <= self.dirichlet_fraction <= 1.0,
            f"mcts.dirichlet_fraction must be in [0, 1], got {self.dirichlet_fraction}",
        )
        check(
            self.dirichlet_alpha > 0,
            f"mcts.dirichlet_alpha must be > 0, got {self.dirichlet_alpha}",
        )
        check(self.pb_c_init >= 0, f"mcts.pb_c_init must be >= 0, got {self.pb_c_init}")
        check(self.temperature >= 0, f"mcts.temperature must be >= 0, got {self.temperature}")


# --- codebooks -----------------------------------------------------------------------------------


def cartesian_codebook(step: float = 1.0) -> Float[np.ndarray, "9 4"]:
    """Macro-actions for Fetch's 4-D action (dx, dy, dz, gripper), each in [-1, 1].

    Rows: no-op, +x, -x, +y, -y, +z, -z (gripper 0), open (gripper +1), close (gripper -1).
    In gymnasium-robotics Fetch a positive gripper command moves the fingers apart.
    """
    if not 0 < step <= 1:
        raise ValueError(f"cartesian codebook step must be in (0, 1], got {step}")
    rows = [np.zeros(4)]
    for axis in range(3):
        for sign in (1.0, -1.0):
            row = np.zeros(4)
            row[axis] = sign * step
            rows.append(row)
    rows += [np.array([0.0, 0.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0, -1.0])]
    return np.stack(rows).astype(np.float32)


def axis_codebook(
    low: Float[np.ndarray, " A"],
    high: Float[np.ndarray, " A"],
    magnitude: float = 0.5,
    random_directions: int = 4,
    seed: int = 0,
) -> Float[np.ndarray, "K A"]:
    """A small action set for arms like Reacher/Pusher: K = 1 + 2A + random_directions rows.

    Row 0 is the centre of the box; then centre +- magnitude * half-range along each axis
    (axis-major: +a0, -a0, +a1, ...); then `random_directions` unit directions (from a NumPy
    generator seeded with `seed`) scaled per axis by magnitude * half-range. Clipped to the bounds.
    """
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if low.shape != high.shape or low.ndim != 1 or np.any(high <= low):
        raise ValueError(f"axis codebook needs 1-D bounds with low < high, got {low}, {high}")
    if magnitude <= 0:
        raise ValueError(f"axis codebook magnitude must be > 0, got {magnitude}")
    centre, half = (low + high) / 2, (high - low) / 2
    A = low.shape[0]
    rows = [centre]
    for axis in range(A):
        for sign in (1.0, -1.0):
            row = centre.copy()
            row[axis] += sign * magnitude * half[axis]
            rows.append(row)
    if random_directions:
        d = np.random.default_rng(seed).normal(size=(random_directions, A))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        rows.extend(centre + magnitude * half * d)
    return np.clip(np.stack(rows), low, high).astype(np.float32)


def make_codebook(cfg: MCTSConfig, spec: EnvSpec) -> Float[np.ndarray, "K A"]:
    """The codebook named by `cfg.codebook` for a task."""
    if cfg.codebook == "cartesian":
        if spec.act_dim != 4:
            raise ValueError(
                f"the cartesian codebook is for 4-D Fetch actions, but {spec.name} has "
                f"act_dim={spec.act_dim}: use --mcts.codebook axes"
            )
        return cartesian_codebook(min(cfg.magnitude, 1.0))
    return axis_codebook(
        np.asarray(spec.action_low),
        np.asarray(spec.action_high),
        cfg.magnitude,
        cfg.random_directions,
        cfg.codebook_seed,
    )


# --- leaf values ---------------------------------------------------------------------------------


def rollout_value(
    step_fn: StepFn,
    key: PRNGKey,
    states: Obs,
    codebook: Float[Array, "K A"],
    steps: int,
    count: int,
    gamma: float,
) -> Float[Array, " B"]:
    """Mean discounted return of `count` uniformly random codebook rollouts from each state.

    states [B, ...] -> [B]: sum_{t < steps} gamma^t r_t, with rewards after a done dropped,
    averaged over the `count` rollouts. Rows are laid out b * count + c. The key is consumed.
    """
    B = jax.tree.leaves(states)[0].shape[0]
    K = codebook.shape[0]
    n = B * count
    tiled = jax.tree.map(lambda x: jnp.repeat(x, count, axis=0), states)
    key_actions, key_steps = jax.random.split(key)
    indices = jax.random.randint(key_actions, (steps, n), 0, K)

    def step(carry, xs):
        state, alive, ret, discount = carry
        key_t, idx_t = xs
        out = step_fn(key_t, state, codebook[idx_t])
        ret = ret + discount * jnp.where(alive, out.reward, 0.0)
        return (out.obs, alive & ~out.done, ret, discount * gamma), None

    init = (tiled, jnp.ones(n, bool), jnp.zeros(n, jnp.float32), jnp.float32(1.0))
    (_, _, ret, _), _ = jax.lax.scan(step, init, (jax.random.split(key_steps, steps), indices))
    return jnp.mean(ret.reshape(B, count), axis=1)


# --- search --------------------------------------------------------------------------------------


@struct.dataclass
class MCTSOutput:
    """The result of a batched search over B roots.

    Attributes:
        index: int32 [B], the chosen codebook row.
        action: [B, A], codebook[index].
        visit_counts: [B, K] root visit counts.
        qvalues: [B, K] root Q-values (r + discount * value; 0 for unvisited actions).
        value: [B] the root's search value.
        weights: [B, K] mctx's action weights (a policy-improvement target).
    """

    index: Int[Array, " B"]
    action: Float[Array, "B A"]
    visit_counts: Float[Array, "B K"]
    qvalues: Float[Array, "B K"]
    value: Float[Array, " B"]
    weights: Float[Array, "B K"]


SearchFn = Callable[..., MCTSOutput]


LeafValue = Callable[[PRNGKey, Obs], Float[Array, " B"]]
Prior = Callable[[Obs], Float[Array, "B K"]]


def make_leaf_value(
    kind: str,
    B: int,
    step_fn: StepFn,
    book: Float[Array, "K A"],
    gamma: float,
    rollout_steps: int,
    rollout_count: int,
    *,
    value_fn: ValueFn | None = None,
) -> LeafValue:
    """The value of B leaf states: (key, states [B, ...]) -> [B].

    kind "zero": 0 everywhere; "fn": `value_fn(states)`; "rollout": `rollout_value` (random
    codebook actions through `step_fn`). The key is consumed.
    """

    def leaf_value(key_v: PRNGKey, states: Obs) -> Float[Array, " B"]:
        if kind == "zero":
            return jnp.zeros(B, jnp.float32)
        if kind == "fn":
            return jnp.asarray(value_fn(states), jnp.float32).reshape(B)
        return rollout_value(step_fn, key_v, states, book, rollout_steps, rollout_count, gamma)

    return leaf_value


def make_prior(prior_fn: PriorFn | None, B: int, K: int) -> Prior:
    """Prior logits over the K codebook rows for B states: zeros (uniform) without a prior_fn."""

    def prior(states: Obs) -> Float[Array, "B K"]:
        if prior_fn is None:
            return jnp.zeros((B, K), jnp.float32)
        logits = jnp.asarray(prior_fn(states), jnp.float32)
        chex.assert_shape(logits, (B, K))
        return logits

    return prior


def make_recurrent_fn(
    step_fn: StepFn, book: Float[Array, "K A"], gamma: float, prior: Prior, leaf_value: LeafValue
) -> Callable:
    """mctx's recurrent_fn(params, key, index [B], state) -> (RecurrentFnOutput, next state).

    One step of the world model with the codebook rows `book[index]`: the model's reward, a
    discount of `gamma` (0 where the step ends the episode), the prior and leaf value of the
    next state; the next planning state is the embedding. The key is consumed.
    """

    def recurrent_fn(params, key_r, index, state):
        del params
        key_step, key_value = jax.random.split(key_r)
        out = step_fn(key_step, state, book[index])
        reward = jnp.asarray(out.reward, jnp.float32)
        discount = jnp.where(out.done, 0.0, gamma).astype(jnp.float32)
        rec = mctx.RecurrentFnOutput(
            reward=reward,
            discount=discount,
            prior_logits=prior(out.obs),
            value=leaf_value(key_value, out.obs),
        )
        return rec, out.obs

    return recurrent_fn


def make_mcts_search(
    cfg: MCTSConfig,
    codebook: Float[np.ndarray, "K A"],
    *,
    value_fn: ValueFn | None = None,
    prior_fn: PriorFn | None = None,
) -> SearchFn:
    """A batched search: search(key, roots [B, ...], step_fn, invalid_actions=None, *,
    value_fn=None, prior_fn=None) -> MCTSOutput.

    `value_fn` / `prior_fn` given here are defaults; passing them to `search` overrides them
    (so a learned value network's params can be bound inside the caller's jit, like the StepFn).
    `cfg.value == "fn"` requires a value_fn from one of the two places. The key is consumed.
    """
    codebook_np = np.asarray(codebook, np.float32)
    if codebook_np.ndim != 2 or codebook_np.shape[0] < 1:
        raise ValueError(f"codebook must be [K, A] with K >= 1, got shape {codebook_np.shape}")
    if value_fn is not None and cfg.value != "fn":
        raise ValueError(f"a value_fn was given but mcts.value is {cfg.value!r}: set it to 'fn'")
    K = codebook_np.shape[0]
    algorithm, sims, depth, gamma = cfg.algorithm, cfg.num_simulations, cfg.max_depth, cfg.gamma
    value_kind, r_steps, r_count = cfg.value, cfg.rollout_steps, cfg.rollout_count
    considered, gumbel_scale = min(cfg.max_considered_actions, K), cfg.gumbel_scale
    dir_fraction, dir_alpha = cfg.dirichlet_fraction, cfg.dirichlet_alpha
    pb_c_init, temperature = cfg.pb_c_init, cfg.temperature
    default_value_fn, default_prior_fn = value_fn, prior_fn

    def search(
        key: PRNGKey,
        roots: Obs,
        step_fn: StepFn,
        invalid_actions: Bool[Array, "B K"] | None = None,
        *,
        value_fn: ValueFn | None = None,
        prior_fn: PriorFn | None = None,
    ) -> MCTSOutput:
        value_fn = value_fn or default_value_fn
        prior_fn = prior_fn or default_prior_fn
        if value_kind == "fn" and value_fn is None:
            raise ValueError("mcts.value is 'fn' but no value_fn was given")
        book = jnp.asarray(codebook_np)
        B = jax.tree.leaves(roots)[0].shape[0]
        if invalid_actions is not None:
            chex.assert_shape(invalid_actions, (B, K))

        leaf_value = make_leaf_value(
            value_kind, B, step_fn, book, gamma, r_steps, r_count, value_fn=value_fn
        )
        prior = make_prior(prior_fn, B, K)
        recurrent_fn = make_recurrent_fn(step_fn, book, gamma, prior, leaf_value)

        key_root, key_search = jax.random.split(key)
        root = mctx.RootFnOutput(
            prior_logits=prior(roots), value=leaf_value(key_root, roots), embedding=roots
        )
        common = dict(
            params=(),
            rng_key=key_search,
            root=root,
            recurrent_fn=recurrent_fn,
            num_simulations=sims,
            invalid_actions=invalid_actions,
            max_depth=depth,
        )
        if algorithm == "gumbel":
            out = mctx.gumbel_muzero_policy(
                **common,
                qtransform=mctx.qtransform_completed_by_mix_value,
                max_num_considered_actions=considered,
                gumbel_scale=gumbel_scale,
            )
        else:
            out = mctx.muzero_policy(
                **common,
                dirichlet_fraction=dir_fraction,
                dirichlet_alpha=dir_alpha,
                pb_c_init=pb_c_init,
                temperature=temperature,
            )
        summary = out.search_tree.summary()
        index = out.action.astype(jnp.int32)
        return MCTSOutput(
            index=index,
            action=book[index],
            visit_counts=summary.visit_counts,
            qvalues=summary.qvalues,
            value=summary.value,
            weights=out.action_weights,
        )

    return search


def make_mcts(
    cfg: MCTSConfig,
    spec: EnvSpec,
    *,
    codebook: Float[np.ndarray, "K A"] | None = None,
    value_fn: ValueFn | None = None,
    prior_fn: PriorFn | None = None,
) -> Planner:
    """MCTS as a `Planner`: plan(state, key, obs, step_fn) -> (codebook[k] [A], state, metrics).

    `obs` is one root (unbatched planning state); the codebook defaults to `make_codebook(cfg,
    spec)`. Metrics: plan/root_visits [K], plan/root_qvalues [K], plan/root_value, plan/index.
    """
    book = make_codebook(cfg, spec) if codebook is None else np.asarray(codebook, np.float32)
    if book.ndim != 2 or book.shape[1] != spec.act_dim:
        raise ValueError(f"codebook must be [K, {spec.act_dim}] for {spec.name}, got {book.shape}")
    search = make_mcts_search(cfg, book, value_fn=value_fn, prior_fn=prior_fn)

    def init() -> PlanState:
        return initial_plan_state(spec, 1)  # no warm start; kept for the Planner interface

    def plan(state: PlanState, key: PRNGKey, obs: Obs, step_fn: StepFn):
        out = search(key, jax.tree.map(lambda x: jnp.asarray(x)[None], obs), step_fn)
        metrics: Metrics = {
            "plan/root_visits": out.visit_counts[0],
            "plan/root_qvalues": out.qvalues[0],
            "plan/root_value": out.value[0],
            "plan/index": out.index[0],
        }
        return out.action[0], state, metrics

    return Planner(init=init, plan=plan, name=f"mcts-{cfg.algorithm}")
