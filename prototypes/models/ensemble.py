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
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from prototypes.config import arg, check
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import TrainingDivergedError, WorldModel
from prototypes.models.normalizer import Normalizer, fit_normalizer
from prototypes.types import Array, Float, Metrics, Params, PRNGKey, Step, Transition

__all__ = [
    "EnsembleConfig",
    "EnsembleTrainingConfig",
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
    "holdout_split",
    "minibatch_indices",
    "train_with_early_stopping",
    "select_members",
    "make_train_steps",
    "bucket_rows",
    "pad_rows",
]

Propagation = Literal["ts1", "tsinf", "expectation"]


@dataclass(frozen=True)
class EnsembleTrainingConfig:
    """What every probabilistic ensemble here shares: members, network size, propagation and
    training. Each model's config extends it (EnsembleConfig here, StructuredConfig in
    models/structured.py) and may redeclare a default."""

    members: int = arg(5, "ensemble size E")
    hidden_size: int = arg(200, "width of each hidden layer")
    hidden_layers: int = arg(3, "number of hidden layers")
    propagation: Propagation = arg("tsinf", "how particles use members: ts1, tsinf or expectation")
    learning_rate: float = arg(1e-3, "Adam learning rate")
    weight_decay: float = arg(5e-5, "L2 weight decay (decoupled, AdamW)")
    batch_size: int = arg(32, "minibatch size per member")
    max_epochs: int = arg(
        50, "most training epochs per fit (an epoch = N_train / batch_size steps)"
    )
    patience: int = arg(8, "stop after this many epochs without a held-out improvement")
    holdout: float = arg(0.1, "fraction of the data held out for early stopping")
    bootstrap: bool = arg(True, "each member trains on its own bootstrap resample")
    logvar_penalty: float = arg(0.01, "weight of the term that tightens the log-variance bounds")
    nll_beta: float = arg(
        0.0,
        "beta-NLL (Seitzer et al. 2022): each output's NLL weighted by its stop-gradient "
        "variance ** beta, in [0, 1]; 0 is the plain NLL, 1 gives the mean the MSE's gradient. "
        "0.5 cut the flat ensemble's 10-step contact error on FetchPush by about a third "
        "(research/model_error_levers.py)",
    )

    rollout_horizon: int = arg(
        0,
        "after each one-step fit, fine-tune every member's mean on its own open-loop rollouts "
        "of this many real steps (prototypes/models/rollout.py); 0 is off. 10 cut the "
        "structured model's 10-step contact error on FetchPush by 19-41% and the flat "
        "ensemble's about as much (experiments/model_error.py, README)",
    )
    rollout_steps: int = arg(2000, "gradient steps of that fine-tuning, per fit")
    rollout_lr: float = arg(1e-3, "Adam learning rate of that fine-tuning")

    def __post_init__(self) -> None:
        check(self.members >= 1, f"model.members must be >= 1, got {self.members}")
        check(
            self.rollout_horizon >= 0,
            f"model.rollout_horizon must be >= 0 (0 is off), got {self.rollout_horizon}",
        )
        check(
            self.rollout_steps >= 1, f"model.rollout_steps must be >= 1, got {self.rollout_steps}"
        )
        check(self.rollout_lr > 0, f"model.rollout_lr must be > 0, got {self.rollout_lr}")
        check(self.hidden_size >= 1, f"model.hidden_size must be >= 1, got {self.hidden_size}")
        check(
            self.hidden_layers >= 1, f"model.hidden_layers must be >= 1, got {self.hidden_layers}"
        )
        check(self.learning_rate > 0, f"model.learning_rate must be > 0, got {self.learning_rate}")
        check(self.batch_size >= 1, f"model.batch_size must be >= 1, got {self.batch_size}")
        check(self.max_epochs >= 1, f"model.max_epochs must be >= 1, got {self.max_epochs}")
        check(self.patience >= 1, f"model.patience must be >= 1, got {self.patience}")
        check(0.0 <= self.holdout < 1.0, f"model.holdout must be in [0, 1), got {self.holdout}")
        check(0.0 <= self.nll_beta <= 1.0, f"model.nll_beta must be in [0, 1], got {self.nll_beta}")
        check(
            self.propagation in ("ts1", "tsinf", "expectation"),
            f"model.propagation must be ts1, tsinf or expectation, got {self.propagation!r}",
        )


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


def make_train_steps(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """A jitted (state, x_all, y_all, idx [S, E, M]) -> (state, mean nll): S gradient steps of
    `loss_fn(params, x, y) -> (loss, {"nll": ...})`, minibatch s being the rows idx[s]."""

    @jax.jit
    def train_steps(state: EnsembleState, x_all, y_all, idx: Array):
        def one(carry, batch_idx):
            params, opt_state = carry
            x, y = x_all[batch_idx], y_all[batch_idx]
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics["nll"]

        (params, opt_state), nll = jax.lax.scan(one, (state.params, state.opt_state), idx)
        return state.replace(params=params, opt_state=opt_state), jnp.mean(nll)

    return train_steps


_CHUNK = 8  # gradient steps per jitted call


def bucket_rows(n: int) -> int:
    """The smallest power of two >= max(n, 64)."""
    return 1 << (max(n, 64) - 1).bit_length()


def pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)], axis=0)


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


def holdout_split(
    rng: np.random.Generator, n: int, holdout: float
) -> tuple[np.ndarray, Array, Array]:
    """Shuffle rows 0..n-1 and hold out the first int(holdout * n) (none if n < 20).

    Returns:
        train rows [n - H]; held-out rows [bucket_rows(H)] int32 (cycled to fill); their weights,
        1 for the H real rows and 0 for the fill. The generator advances by one permutation.
    """
    perm = rng.permutation(n)
    n_hold = int(holdout * n) if n >= 20 else 0
    hold, train = perm[:n_hold], perm[n_hold:]
    hold_idx = jnp.asarray(np.resize(hold, bucket_rows(max(n_hold, 1))), jnp.int32)
    hold_w = jnp.asarray(np.arange(hold_idx.shape[0]) < n_hold, jnp.float32)
    return train, hold_idx, hold_w


def minibatch_indices(
    rng: np.random.Generator,
    train: np.ndarray,
    steps: int,
    members: int,
    batch_size: int,
    bootstrap: bool,
) -> np.ndarray:
    """Rows of `train` for one epoch, [steps, E, batch_size]: drawn with replacement per member
    (bootstrap), or else each member's own shuffle of `train` repeated to fill the epoch."""
    if bootstrap:
        return train[rng.integers(0, len(train), (steps, members, batch_size))]
    idx = np.stack(
        [rng.permutation(np.resize(train, steps * batch_size)) for _ in range(members)],
        axis=0,
    )
    return idx.reshape(members, steps, batch_size).transpose(1, 0, 2)


@jax.jit
def select_members(mask, new: Params, old: Params) -> Params:
    """Member-wise choice: member e of the result is new[e] where mask[e], else old[e]."""
    return jax.tree.map(
        lambda a, b: jnp.where(mask.reshape((mask.shape[0],) + (1,) * (a.ndim - 1)), a, b), new, old
    )


def train_with_early_stopping(
    state: Any,
    key: PRNGKey,
    x: Float[Array, "N I"],
    y: Float[Array, "N O"],
    n: int,
    cfg: EnsembleTrainingConfig,
    *,
    train_steps: Callable,
    member_holdout_mse: Callable,
) -> tuple[Any, Metrics]:
    """Train an ensemble's members with per-member early stopping on a held-out split (host loop).

    `state` has `params` (leading member axis) and whatever `train_steps` updates; x, y are the
    normalised training arrays (rows past `n` are padding); `cfg` gives members, batch size,
    epochs, patience, holdout fraction and bootstrap. Minibatch index arrays are drawn
    with NumPy from a generator seeded by `key`, padded to a fixed chunk length so the jitted
    step compiles once per chunk shape. Each member keeps the parameters of its epoch with the
    lowest held-out MSE; training stops after `patience` epochs without any member improving.

    Raises:
        TrainingDivergedError: the training loss became non-finite (the message says what to
            change).
    """
    E, batch_size, max_epochs, patience = cfg.members, cfg.batch_size, cfg.max_epochs, cfg.patience
    holdout, bootstrap, learning_rate = cfg.holdout, cfg.bootstrap, cfg.learning_rate
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    train, hold_idx, hold_w = holdout_split(rng, n, holdout)
    n_hold = n - len(train)
    n_chunks = -(-len(train) // (batch_size * _CHUNK))  # ceil: an epoch covers the data once
    best = np.full(E, np.inf)
    best_params, epochs_since, epoch, train_nll = state.params, 0, 0, float("nan")
    for epoch in range(1, max_epochs + 1):
        idx = minibatch_indices(rng, train, n_chunks * _CHUNK, E, batch_size, bootstrap)
        idx = jnp.asarray(idx, jnp.int32)
        nlls = []
        for c in range(n_chunks):
            state, nll = train_steps(state, x, y, idx[c * _CHUNK : (c + 1) * _CHUNK])
            nlls.append(nll)
        train_nll = float(jnp.mean(jnp.stack(nlls)))
        if not np.isfinite(train_nll):
            raise TrainingDivergedError(
                f"model training loss became {train_nll} at epoch {epoch} on {n} transitions "
                f"(learning_rate={learning_rate}); lower --model.learning-rate "
                "or check the data for NaN/inf"
            )
        if n_hold == 0:
            best_params = state.params
            continue
        mse = np.asarray(member_holdout_mse(state.params, x, y, hold_idx, hold_w))
        improved = mse < best * (1 - 1e-4)
        if improved.any():
            best_params = select_members(jnp.asarray(improved), state.params, best_params)
            best = np.where(improved, mse, best)
            epochs_since = 0
        else:
            epochs_since += 1
            if epochs_since >= patience:
                break
    state = state.replace(params=best_params)
    metrics = {
        "model/train_nll": train_nll,
        "model/epochs": epoch,
        "model/holdout_mse": float(np.mean(best)) if n_hold else float("nan"),
    }
    return state, metrics


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

    from prototypes.models.rollout import rollout_finetuner  # rollout.py imports this module

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
