"""The probabilistic ensemble of PETS (Chua et al. 2018).

E MLPs, each predicting a Gaussian over the normalised state delta: mean and a log-variance kept
inside learned bounds [min_logvar, max_logvar] by softplus. Inputs (obs, action) and targets
(next_obs - obs) are standardised with statistics refitted on every `fit`; delta dimensions that
never changed in the data (a goal position, say) are predicted as exactly their constant value,
not as a network output with noise, so they cannot drift over a planning horizon. Training
minimises the Gaussian NLL plus a small penalty that tightens the log-variance bounds, with each
member seeing its own bootstrap of the data, and keeps for each member the parameters with the
lowest held-out MSE (early stopping).

Propagation (how `predict` assigns the B states of a batch to members):
- "ts1": a fresh random member for every state at every step (TS-1);
- "tsinf": state b always goes to member b % E (TS-inf: with the planner's particle-major layout,
  each candidate's particles are spread evenly over the members and keep their member);
- "expectation": every state goes through every member and the next state is the members' mean
  prediction, with no sampling noise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from prototypes.envs.registry import EnvSpec
from prototypes.models.base import WorldModel
from prototypes.models.fitting import (
    EnsembleTrainingConfig,
    bucket_rows,
    make_train_steps,
    pad_rows,
    train_with_early_stopping,
)
from prototypes.models.normalizer import Normalizer, fit_normalizer
from prototypes.models.rollout import rollout_finetuner
from prototypes.types import Array, Float, Metrics, Params, PRNGKey, Step, Transition

__all__ = [
    "EnsembleConfig",
    "EnsembleState",
    "GaussianMLP",
    "make_ensemble",
    "gaussian_nll",
    "member_moments",
    "sample_by_member",
    "predict_ts1",
    "predict_tsinf",
    "predict_expectation",
    "PREDICT_BY_PROPAGATION",
    "ensemble_loss",
    "holdout_mse",
    "training_arrays",
]


@dataclass(frozen=True)
class EnsembleConfig(EnsembleTrainingConfig):
    """The flat PETS ensemble: E Gaussian MLPs of `hidden_layers` x `hidden_size`."""


class GaussianMLP(nn.Module):
    """One member: (normalised obs, action) -> mean and bounded log-variance of the delta."""

    out_dim: int
    hidden_size: int
    hidden_layers: int

    @nn.compact
    def __call__(self, x: Float[Array, "B I"]) -> tuple[Float[Array, "B O"], Float[Array, "B O"]]:
        for _ in range(self.hidden_layers):
            x = nn.silu(nn.Dense(self.hidden_size)(x))
        out = nn.Dense(2 * self.out_dim)(x)
        mean, logvar = jnp.split(out, 2, axis=-1)
        max_lv = self.param("max_logvar", lambda _: jnp.full((self.out_dim,), 0.5, jnp.float32))
        min_lv = self.param("min_logvar", lambda _: jnp.full((self.out_dim,), -10.0, jnp.float32))
        max_lv, min_lv = (
            jnp.broadcast_to(max_lv, logvar.shape),
            jnp.broadcast_to(min_lv, logvar.shape),
        )
        logvar = max_lv - nn.softplus(max_lv - logvar)
        logvar = min_lv + nn.softplus(logvar - min_lv)
        return mean, logvar


@struct.dataclass
class EnsembleState:
    """params: member-stacked (leading dim E); opt_state: optax state; in_norm over [obs, action];
    out_norm over the delta."""

    params: Params
    opt_state: optax.OptState
    in_norm: Normalizer
    out_norm: Normalizer


def gaussian_nll(
    mean: Float[Array, "... D"],
    logvar: Float[Array, "... D"],
    target: Float[Array, "... D"],
    beta: float = 0.0,
) -> Float[Array, ""]:
    """Mean over entries of (target - mean)^2 / var + log var (the NLL without 0.5 and log 2pi);
    with `beta` > 0 each entry is weighted by stop_gradient(var) ** beta (beta-NLL, Seitzer et
    al. 2022), so that entries the model calls noisy (contact) are still fitted. Its gradient
    still vanishes where (target - mean)^2 = var, and at beta = 1 the mean's is the MSE's."""
    nll = (target - mean) ** 2 * jnp.exp(-logvar) + logvar
    if beta == 0.0:  # the plain NLL, computed exactly as before the option existed
        return jnp.mean(nll)
    return jnp.mean(jax.lax.stop_gradient(jnp.exp(beta * logvar)) * nll)


# --- prediction: one function per propagation mode ----------------------------------------------
# Each maps normalised inputs x [B, O + A] to a normalised delta [B, O] with the member-stacked
# params (leading dim E) of a one-member `apply_fn(params, x [M, I]) -> (mean, logvar) [M, O]`.

ApplyFn = Callable[[Params, Float[Array, "M I"]], tuple[Float[Array, "M O"], Float[Array, "M O"]]]


def _num_members(params: Params) -> int:
    return jax.tree.leaves(params)[0].shape[0]


def member_moments(
    apply_fn: ApplyFn, params: Params, x: Float[Array, "E M I"]
) -> tuple[Float[Array, "E M O"], Float[Array, "E M O"]]:
    """Mean and log-variance of member e on its own rows x[e]."""
    return jax.vmap(apply_fn)(params, x)


def sample_by_member(
    apply_fn: ApplyFn, params: Params, key: PRNGKey, x: Float[Array, "B I"]
) -> Float[Array, "B O"]:
    """Row b goes to member b % E, which draws mean + exp(logvar / 2) * noise for it.

    B need not be a multiple of E: zero rows pad the batch to one and are dropped afterwards, so
    they never shift the assignment. The key (the noise) is consumed.
    """
    E = _num_members(params)
    B, I = x.shape
    pad = (-B) % E  # members get equal shares; padding rows are dropped afterwards
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, I), x.dtype)], axis=0)
    # row b goes to member b % E: reshape [M, E] then put E first
    xs = x.reshape(-1, E, I).transpose(1, 0, 2)
    mean, logvar = member_moments(apply_fn, params, xs)
    noise = jax.random.normal(key, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * logvar) * noise
    return z.transpose(1, 0, 2).reshape(-1, mean.shape[-1])[:B]


def predict_tsinf(
    apply_fn: ApplyFn, params: Params, key: PRNGKey, x: Float[Array, "B I"]
) -> Float[Array, "B O"]:
    """TS-inf: row b always goes to member b % E. The key is consumed: split into (unused, noise),
    the same split as `predict_ts1`, so both modes draw the same noise from one key."""
    _, key_noise = jax.random.split(key)
    return sample_by_member(apply_fn, params, key_noise, x)


def predict_ts1(
    apply_fn: ApplyFn, params: Params, key: PRNGKey, x: Float[Array, "B I"]
) -> Float[Array, "B O"]:
    """TS-1: a fresh random member for every row. The rows are permuted (first half of the key),
    assigned as in TS-inf (noise from the second half), and put back in order: row b goes to
    member perm^-1(b) % E. The key is consumed."""
    key_perm, key_noise = jax.random.split(key)
    perm = jax.random.permutation(key_perm, x.shape[0])
    z = sample_by_member(apply_fn, params, key_noise, x[perm])
    return z[jnp.argsort(perm)]  # undo the permutation


def predict_expectation(
    apply_fn: ApplyFn, params: Params, key: PRNGKey, x: Float[Array, "B I"]
) -> Float[Array, "B O"]:
    """Every row through every member; the mean over members of the predicted means (no noise).
    The key is unused."""
    del key
    E = _num_members(params)
    mean, _ = member_moments(apply_fn, params, jnp.broadcast_to(x, (E,) + x.shape))
    return jnp.mean(mean, axis=0)


PREDICT_BY_PROPAGATION: dict[str, Callable[..., Float[Array, "B O"]]] = {
    "ts1": predict_ts1,
    "tsinf": predict_tsinf,
    "expectation": predict_expectation,
}


# --- training -------------------------------------------------------------------------------------


def ensemble_loss(
    apply_fn: ApplyFn,
    params: Params,
    x: Float[Array, "E M I"],
    y: Float[Array, "E M O"],
    logvar_penalty: float,
    nll_beta: float = 0.0,
) -> tuple[Float[Array, ""], Metrics]:
    """Sum over members of each one's Gaussian NLL (beta-NLL with `nll_beta` > 0: see
    `gaussian_nll`) on its own rows (x, y normalised), plus
    logvar_penalty * (sum max_logvar - sum min_logvar) / E; metrics["nll"] is the members' mean."""
    E = _num_members(params)
    mean, logvar = member_moments(apply_fn, params, x)
    nll = jax.vmap(lambda m, lv, t: gaussian_nll(m, lv, t, nll_beta))(mean, logvar, y)  # [E]
    bounds = params["params"]
    penalty = logvar_penalty * (jnp.sum(bounds["max_logvar"]) - jnp.sum(bounds["min_logvar"])) / E
    total = jnp.sum(nll) + penalty
    return total, {"nll": jnp.mean(nll)}


def holdout_mse(
    apply_fn: ApplyFn,
    params: Params,
    x: Float[Array, "N I"],
    y: Float[Array, "N O"],
    idx: Array,
    weight: Float[Array, " H"],
) -> Float[Array, " E"]:
    """Per-member weighted MSE of the mean over rows idx [H] (weight 0 marks padding)."""
    E = _num_members(params)
    xs, ys = x[idx], y[idx]
    mean, _ = member_moments(apply_fn, params, jnp.broadcast_to(xs, (E,) + xs.shape))
    err = jnp.mean((mean - ys[None]) ** 2, axis=2)  # [E, H]
    return jnp.sum(err * weight[None], axis=1) / jnp.sum(weight)


def training_arrays(data: Transition) -> tuple[Array, Array, Normalizer, Normalizer]:
    """Normalisers fitted to the inputs [obs, action] and deltas next_obs - obs, and both
    normalised on the host, zero-padded to `bucket_rows(N)` rows: x [N', O + A], y [N', O].

    The power-of-two row count makes the jitted steps compile a handful of times over a run
    instead of once per fit as the data grows.
    """
    obs = np.asarray(data.obs, np.float32)
    x_raw = np.concatenate([obs, np.asarray(data.action, np.float32)], axis=-1)
    d_raw = np.asarray(data.next_obs, np.float32) - obs
    n = x_raw.shape[0]
    in_norm, out_norm = fit_normalizer(x_raw), fit_normalizer(d_raw)
    x = pad_rows((x_raw - np.asarray(in_norm.mean)) / np.asarray(in_norm.std), bucket_rows(n))
    y = pad_rows((d_raw - np.asarray(out_norm.mean)) / np.asarray(out_norm.std), bucket_rows(n))
    return jnp.asarray(x), jnp.asarray(y), in_norm, out_norm


# --- the model ------------------------------------------------------------------------------------


def make_ensemble(cfg: EnsembleConfig, spec: EnvSpec) -> WorldModel:
    """Build the PETS ensemble for a task. The returned functions close over plain scalars."""
    E, O, A = cfg.members, spec.obs_dim, spec.act_dim
    net = GaussianMLP(out_dim=O, hidden_size=cfg.hidden_size, hidden_layers=cfg.hidden_layers)
    optimizer = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    propagate = PREDICT_BY_PROPAGATION[cfg.propagation]
    logvar_penalty, nll_beta = cfg.logvar_penalty, cfg.nll_beta
    reward_fn, done_fn = jax.vmap(spec.reward_fn), jax.vmap(spec.done_fn)
    train_steps = make_train_steps(
        lambda params, x, y: ensemble_loss(net.apply, params, x, y, logvar_penalty, nll_beta),
        optimizer,
    )
    member_holdout_mse = jax.jit(functools.partial(holdout_mse, net.apply))

    def init(key: PRNGKey, example: Transition) -> EnsembleState:
        del example  # shapes come from the spec
        params = jax.vmap(net.init, in_axes=(0, None))(
            jax.random.split(key, E), jnp.zeros((1, O + A), jnp.float32)
        )
        return EnsembleState(
            params=params,
            opt_state=optimizer.init(params),
            in_norm=Normalizer.identity(O + A),
            out_norm=Normalizer.identity(O),
        )

    def next_obs_by(propagate_fn, state: EnsembleState, key: PRNGKey, obs, action):
        x = state.in_norm.normalize(jnp.concatenate([obs, action], axis=-1))
        return obs + state.out_norm.denormalize_or_mean(
            propagate_fn(net.apply, state.params, key, x)
        )

    def predict(state: EnsembleState, key: PRNGKey, obs, action) -> Step:
        """Batched: obs [B, O], action [B, A] -> Step [B]. The key is consumed."""
        next_obs = next_obs_by(propagate, state, key, obs, action)
        return Step(obs=next_obs, reward=reward_fn(obs, action, next_obs), done=done_fn(next_obs))

    finetune = rollout_finetuner(
        cfg, lambda st, o, a: next_obs_by(predict_expectation, st, jax.random.key(0), o, a)
    )

    def fit(state: EnsembleState, key: PRNGKey, data: Transition) -> tuple[EnsembleState, Metrics]:
        """Refit normalisers, then train with early stopping on a held-out split (host loop), then
        (rollout_horizon > 0) fine-tune the means on open-loop rollouts (`rollout_finetuner`).

        Minibatch index arrays are drawn with NumPy from a generator seeded by `key`, and padded
        to a fixed chunk length so the jitted step compiles once per chunk shape.
        """
        x, y, in_norm, out_norm = training_arrays(data)
        state = state.replace(in_norm=in_norm, out_norm=out_norm)
        state, metrics = train_with_early_stopping(
            state,
            key,
            x,
            y,
            len(data.obs),
            cfg,
            train_steps=train_steps,
            member_holdout_mse=member_holdout_mse,
        )
        return finetune(state, key, data, metrics)

    return WorldModel(init=jax.jit(init), predict=predict, fit=fit, name="ensemble")
