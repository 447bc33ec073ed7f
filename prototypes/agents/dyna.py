"""MBPO-style Dyna (Janner et al. 2019): a world model's short imagined rollouts feed SAC.

Real transitions go into a real buffer. Every so often the world model is refit on all of them
(`fit_model`, host-side) and `imagine` branches `rollout_batch` rollouts of `rollout_length`
steps from real states sampled uniformly from the real buffer, through the model's StepFn under
the current (stochastic) policy, into a model buffer. `train` takes SAC gradient steps on batches
that mix `real_ratio` real and `1 - real_ratio` imagined transitions. Without a model
(`model=None`) the same agent is plain SAC: every batch is real.

Rollouts respect termination: once a rollout's model step says done, its later steps are not
written to the model buffer (`branch_rollouts` returns a validity mask, `masked_add` drops the
invalid rows without disturbing the FIFO order of the buffer).

The schedule (when to refit, imagine and train) is the caller's loop (`experiments/mbpo.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from prototypes.agents.sac import SAC, SACState
from prototypes.config import arg, check
from prototypes.data import replay
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import ModelState, WorldModel
from prototypes.types import Array, Bool, Float, Metrics, PRNGKey, StepFn, Transition

__all__ = [
    "DynaConfig",
    "DynaState",
    "DynaAgent",
    "make_dyna_agent",
    "branch_rollouts",
    "masked_add",
    "mixed_batch",
]

PolicyFn = Callable[[PRNGKey, Float[Array, "B O"]], Float[Array, "B A"]]


@dataclass(frozen=True)
class DynaConfig:
    rollout_length: int = arg(1, "imagined steps per branched rollout k")
    rollout_batch: int = arg(400, "rollouts branched per imagine call (start states)")
    rollout_every: int = arg(10, "env steps between imagine calls")
    model_train_every: int = arg(250, "env steps between model refits")
    model_capacity: int = arg(100_000, "model buffer size (FIFO, imagined transitions)")
    real_ratio: float = arg(0.05, "fraction of each SAC batch drawn from real data")
    updates_per_step: int = arg(5, "SAC gradient steps per env step")

    def __post_init__(self) -> None:
        check(
            self.rollout_length >= 1,
            f"dyna.rollout_length must be >= 1, got {self.rollout_length}",
        )
        check(self.rollout_batch >= 1, f"dyna.rollout_batch must be >= 1, got {self.rollout_batch}")
        check(self.rollout_every >= 1, f"dyna.rollout_every must be >= 1, got {self.rollout_every}")
        check(
            self.model_train_every >= 1,
            f"dyna.model_train_every must be >= 1, got {self.model_train_every}",
        )
        check(
            self.model_capacity >= self.rollout_batch * self.rollout_length,
            f"dyna.model_capacity must hold one imagine call (rollout_batch * rollout_length = "
            f"{self.rollout_batch * self.rollout_length}), got {self.model_capacity}",
        )
        check(
            0.0 <= self.real_ratio <= 1.0,
            f"dyna.real_ratio must be in [0, 1], got {self.real_ratio}",
        )
        check(
            self.updates_per_step >= 1,
            f"dyna.updates_per_step must be >= 1, got {self.updates_per_step}",
        )


# --- pure pieces --------------------------------------------------------------------------------


def branch_rollouts(
    policy: PolicyFn,
    step_fn: StepFn,
    key: PRNGKey,
    start_obs: Float[Array, "B O"],
    length: int,
) -> tuple[Transition, Bool[Array, "T B"]]:
    """Roll `policy` through `step_fn` for `length` steps from each of the B start states.

    Returns the imagined transitions (leaves [T, B, ...], T = length) and valid [T, B]: step t of
    rollout b is valid if no earlier step of b was done (the step that reaches a terminal state
    is valid, with done=True). The key is consumed.
    """

    def step(carry, key_t):
        obs, alive = carry
        key_pi, key_model = jax.random.split(key_t)
        action = policy(key_pi, obs)
        out = step_fn(key_model, obs, action)
        tr = Transition(obs=obs, action=action, reward=out.reward, next_obs=out.obs, done=out.done)
        return (out.obs, alive & ~out.done), (tr, alive)

    B = start_obs.shape[0]
    init = (start_obs, jnp.ones(B, bool))
    _, (transitions, valid) = jax.lax.scan(step, init, jax.random.split(key, length))
    return transitions, valid


@jax.jit
def masked_add(buf: replay.ReplayState, batch: Transition, valid: Bool[Array, " N"]):
    """Append the rows of `batch` (leading dim N <= capacity) where `valid`, in order.

    Valid rows are moved to the front (stable), written from the write pointer, and the pointer
    and size advance by their count; invalid rows are dropped (scattered out of bounds), so they
    never overwrite stored items.
    """
    n = valid.shape[0]
    cap = buf.capacity
    if n > cap:
        raise ValueError(f"masked_add: batch of {n} exceeds the buffer capacity {cap}")
    # valid rows first, in their original order
    order = jnp.argsort((~valid).astype(jnp.int32), stable=True)
    batch = jax.tree.map(lambda x: x[order], batch)
    n_valid = jnp.sum(valid.astype(jnp.int32))
    rank = jnp.arange(n, dtype=jnp.int32)
    idx = jnp.where(rank < n_valid, (buf.ptr + rank) % cap, cap)  # cap = out of bounds: dropped
    data = jax.tree.map(
        lambda store, x: store.at[idx].set(x.astype(store.dtype), mode="drop"), buf.data, batch
    )
    return replay.ReplayState(
        data=data, ptr=(buf.ptr + n_valid) % cap, size=jnp.minimum(buf.size + n_valid, cap)
    )


def mixed_batch(
    key: PRNGKey,
    real: replay.ReplayState,
    imagined: replay.ReplayState,
    n_real: int,
    n_model: int,
) -> Transition:
    """n_real rows from the real buffer, then n_model from the model buffer (from the real buffer
    instead while the model buffer is empty). The key is consumed."""
    key_real, key_model, key_fill = jax.random.split(key, 3)
    parts = [replay.sample(real, key_real, n_real)]
    if n_model:
        from_model = replay.sample(imagined, key_model, n_model)
        fill = replay.sample(real, key_fill, n_model)
        has_model = imagined.size > 0
        parts.append(jax.tree.map(lambda m, r: jnp.where(has_model, m, r), from_model, fill))
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *parts)


# --- the agent ----------------------------------------------------------------------------------


@struct.dataclass
class DynaState:
    """sac: the learner; model: the world model's state (() without a model); real, imagined:
    replay buffers of real and model transitions."""

    sac: SACState
    model: ModelState
    real: replay.ReplayState
    imagined: replay.ReplayState


@dataclass(frozen=True)
class DynaAgent:
    """init(key) -> DynaState; act(state, key, obs [O], deterministic=False) -> action [A];
    observe(state, transitions [n]) -> state (real data); fit_model(state, key) -> (state,
    metrics) [host]; imagine(state, key) -> (state, metrics) [jitted]; train(state, key) ->
    (state, metrics) [jitted: updates_per_step SAC steps on mixed batches]."""

    init: Callable[[PRNGKey], DynaState]
    act: Callable[..., Array]
    observe: Callable[[DynaState, Transition], DynaState]
    fit_model: Callable[[DynaState, PRNGKey], tuple[DynaState, Metrics]]
    imagine: Callable[[DynaState, PRNGKey], tuple[DynaState, Metrics]]
    train: Callable[[DynaState, PRNGKey], tuple[DynaState, Metrics]]
    sac: SAC
    model: WorldModel | None


def make_dyna_agent(
    cfg: DynaConfig,
    sac: SAC,
    model: WorldModel | None,
    spec: EnvSpec,
    real_capacity: int,
    batch_size: int,
) -> DynaAgent:
    """MBPO with `model`, or plain SAC when `model` is None (then real_ratio is taken as 1)."""
    use_model = model is not None
    n_real = batch_size if not use_model else int(round(cfg.real_ratio * batch_size))
    n_model = batch_size - n_real
    length, starts, updates = cfg.rollout_length, cfg.rollout_batch, cfg.updates_per_step
    example = replay.zero_transition(spec.obs_dim, spec.act_dim)

    def init(key: PRNGKey) -> DynaState:
        key_sac, key_model = jax.random.split(key)
        return DynaState(
            sac=sac.init(key_sac),
            model=model.init(key_model, example) if use_model else (),
            real=replay.init(example, real_capacity),
            imagined=replay.init(example, cfg.model_capacity if use_model else 1),
        )

    def act(state: DynaState, key: PRNGKey, obs: Any, deterministic: bool = False) -> Array:
        return sac.act(state.sac, key, jnp.asarray(obs, jnp.float32)[None], deterministic)[0]

    def observe(state: DynaState, transitions: Transition) -> DynaState:
        return state.replace(real=replay.add(state.real, transitions))

    def fit_model(state: DynaState, key: PRNGKey) -> tuple[DynaState, Metrics]:
        if not use_model:
            return state, {}
        model_state, metrics = model.fit(state.model, key, replay.contents(state.real))
        return state.replace(model=model_state), {**metrics, **model.summary(model_state)}

    @jax.jit
    def imagine(state: DynaState, key: PRNGKey) -> tuple[DynaState, Metrics]:
        if not use_model:
            return state, {}
        key_start, key_roll = jax.random.split(key)
        start = replay.sample(state.real, key_start, starts).obs
        step_fn = partial(model.predict, state.model)
        tr, valid = branch_rollouts(sac.policy_fn(state.sac), step_fn, key_roll, start, length)
        flat = jax.tree.map(lambda x: x.reshape((length * starts,) + x.shape[2:]), tr)
        imagined = masked_add(state.imagined, flat, valid.reshape(-1))
        metrics = {
            "dyna/imagined_reward": jnp.sum(jnp.where(valid, tr.reward, 0.0)) / jnp.sum(valid),
            "dyna/valid_fraction": jnp.mean(valid.astype(jnp.float32)),
        }
        return state.replace(imagined=imagined), metrics

    @jax.jit
    def train(state: DynaState, key: PRNGKey) -> tuple[DynaState, Metrics]:
        def one(sac_state: SACState, key_u: PRNGKey):
            key_batch, key_update = jax.random.split(key_u)
            batch = mixed_batch(key_batch, state.real, state.imagined, n_real, n_model)
            return sac.update(sac_state, key_update, batch)

        sac_state, metrics = jax.lax.scan(one, state.sac, jax.random.split(key, updates))
        return state.replace(sac=sac_state), jax.tree.map(lambda m: m[-1], metrics)

    return DynaAgent(
        init=init,
        act=act,
        observe=observe,
        fit_model=fit_model,
        imagine=imagine,
        train=train,
        sac=sac,
        model=model,
    )
