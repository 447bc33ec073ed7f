"""How the probabilistic ensembles here are fitted: the training settings they share and the
host-side loop that trains their members.

`EnsembleTrainingConfig` holds members, network size, propagation and training settings; the
flat ensemble (models/ensemble.py) and the structured model (models/structured.py) extend it.
The loop draws minibatches with NumPy, pads the data to power-of-two row counts
(`bucket_rows`) so the jitted steps compile a handful of times over a growing run, holds out a
share of the rows, and keeps each member's parameters from its best held-out epoch
(`train_with_early_stopping`). The multi-step fine-tuning (models/rollout.py) reuses the row
buckets and the member-wise selection.

Nothing here knows what a member computes: the loss, the held-out error and the state come from
the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prototypes.config import arg, check
from prototypes.models.base import TrainingDivergedError
from prototypes.types import Array, Float, Metrics, Params, PRNGKey

__all__ = [
    "EnsembleTrainingConfig",
    "Propagation",
    "make_train_steps",
    "bucket_rows",
    "pad_rows",
    "holdout_split",
    "minibatch_indices",
    "select_members",
    "train_with_early_stopping",
    "CHUNK_STEPS",
]

Propagation = Literal["ts1", "tsinf", "expectation"]


@dataclass(frozen=True)
class EnsembleTrainingConfig:
    """What every probabilistic ensemble here shares: members, network size, propagation and
    training. Each model's config extends it (EnsembleConfig in models/ensemble.py,
    StructuredConfig in models/structured.py) and may redeclare a default."""

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


def make_train_steps(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """A jitted (state, x_all, y_all, idx [S, E, M]) -> (state, mean nll): S gradient steps of
    `loss_fn(params, x, y) -> (loss, {"nll": ...})`, minibatch s being the rows idx[s]."""

    @jax.jit
    def train_steps(state: Any, x_all, y_all, idx: Array):
        def one(carry, batch_idx):
            params, opt_state = carry
            x, y = x_all[batch_idx], y_all[batch_idx]
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics["nll"]

        (params, opt_state), nll = jax.lax.scan(one, (state.params, state.opt_state), idx)
        return state.replace(params=params, opt_state=opt_state), jnp.mean(nll)

    return train_steps


CHUNK_STEPS = 8  # gradient steps per jitted call


def bucket_rows(n: int) -> int:
    """The smallest power of two >= max(n, 64)."""
    return 1 << (max(n, 64) - 1).bit_length()


def pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    return np.concatenate([x, np.zeros((rows - x.shape[0],) + x.shape[1:], x.dtype)], axis=0)


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
    n_chunks = -(-len(train) // (batch_size * CHUNK_STEPS))  # ceil: an epoch covers the data once
    best = np.full(E, np.inf)
    best_params, epochs_since, epoch, train_nll = state.params, 0, 0, float("nan")
    for epoch in range(1, max_epochs + 1):
        idx = minibatch_indices(rng, train, n_chunks * CHUNK_STEPS, E, batch_size, bootstrap)
        idx = jnp.asarray(idx, jnp.int32)
        nlls = []
        for c in range(n_chunks):
            state, nll = train_steps(state, x, y, idx[c * CHUNK_STEPS : (c + 1) * CHUNK_STEPS])
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
