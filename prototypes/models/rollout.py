"""Multi-step fine-tuning: train an ensemble's means on their own open-loop rollouts.

A one-step loss never shows a model its own predictions as inputs, so small one-step errors
compound over a planning horizon. After the usual one-step fit, the function that
`make_finetune_rollout` builds rolls each member's mean forward from real states under the real
actions for `horizon` steps and minimises the squared error of every predicted observation
entry against the real ones, summed over the steps (each entry scaled by the standard deviation
of its one-step change in the data, so a block's position counts as much as the arm's).
Windows are runs of `horizon` consecutive real transitions; a held-out share of them picks, per
member, the parameters with the lowest open-loop error (as the one-step fit's early stopping
does), so no member ends worse on them. Only the means are trained: the log-variance heads keep
their one-step fit.

On FetchPush, K = 10 cut the structured model's 10-step contact error (with beta-NLL and the
table features) from 6.72 / 5.76 / 5.94 to 5.44 / 3.40 / 4.49 cm on seeds 0-2, and the flat
ensemble's about as much (experiments/model_error.py; README, "Model error"). Both ensembles
take it through `rollout_horizon` (0, the default, leaves the fit as it was).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from prototypes.models.base import TrainingDivergedError
from prototypes.models.fitting import EnsembleTrainingConfig, bucket_rows, select_members
from prototypes.types import Array, Float, Metrics, Params, PRNGKey, Transition

__all__ = [
    "rollout_windows",
    "rollout_errors",
    "make_finetune_rollout",
    "rollout_finetuner",
    "MeanStep",
]

# (state holding one member's params [1, ...], obs [B, O], action [B, A]) -> next obs [B, O]
MeanStep = Callable[[Any, Float[Array, "B O"], Float[Array, "B A"]], Float[Array, "B O"]]

_EVAL_EVERY = 25  # gradient steps per jitted chunk; the held-out error is checked after each
SCALE_FLOOR = 1e-3  # an entry that (almost) never changes is scaled as if it moved this much


def rollout_windows(obs: np.ndarray, next_obs: np.ndarray, horizon: int) -> np.ndarray:
    """Start indices t of every run of `horizon` consecutive transitions in the rows of a data
    set: next_obs[t + j] == obs[t + j + 1] for j < horizon - 1 (episodes stored one after
    another, so no window crosses an episode's end)."""
    n = len(obs)
    if n < horizon:
        return np.zeros(0, np.int64)
    chained = np.all(next_obs[:-1] == obs[1:], axis=1) if n > 1 else np.zeros(0, bool)
    # breaks[t] counts the unchained links among the first t; window t needs none in t..t+H-2
    breaks = np.concatenate([[0], np.cumsum(~chained)])
    starts = np.arange(n - horizon + 1)
    return starts[breaks[starts + horizon - 1] - breaks[starts] == 0]


def rollout_errors(
    step: MeanStep,
    state: Any,
    params: Params,
    obs0: Float[Array, "B O"],
    actions: Float[Array, "B H A"],
    targets: Float[Array, "B H O"],
    scale: Float[Array, " O"],
) -> Float[Array, "E B"]:
    """Each member's open-loop error on each window: sum over the H steps and O entries of
    ((predicted - real) / scale) ** 2, the member's mean fed back as its next input."""

    def member(p):
        one = state.replace(params=jax.tree.map(lambda x: x[None], p))

        def advance(o, a):
            nxt = step(one, o, a)
            return nxt, nxt

        _, pred = jax.lax.scan(advance, obs0, jnp.swapaxes(actions, 0, 1))  # [H, B, O]
        err = (jnp.swapaxes(pred, 0, 1) - targets) / scale[None, None]
        return jnp.sum(err**2, axis=(1, 2))

    return jax.vmap(member)(params)


def make_finetune_rollout(
    step: MeanStep,
    *,
    horizon: int,
    steps: int,
    learning_rate: float,
    batch_size: int,
    holdout: float,
) -> Callable[[Any, PRNGKey, Transition], tuple[Any, Metrics]]:
    """A `finetune(state, key, data) -> (state, metrics)` that fine-tunes `state.params`
    (member-stacked) on the `horizon`-step open-loop error of `step` (module docstring). Its
    jitted parts are built once here and take the state as an argument, and the held-out windows
    are padded to `bucket_rows`, so refitting a growing data set rarely recompiles them.

    `finetune` draws windows with NumPy from a generator seeded by `key`; `holdout` of them (at
    least one) pick each member's best parameters, checked at the start and every 25 steps (so
    no member ends worse on them than its one-step fit). With fewer than two windows it returns
    the state unchanged. Metrics: model/rollout_windows; the held-out open-loop error per window
    (members' mean) before and after, model/rollout_error_before and _after; and the step at
    which each member's kept parameters were reached, members' mean, model/rollout_best_step
    (0: the one-step fit was kept; near `steps`: still improving when it stopped).

    Raises (from `finetune`):
        TrainingDivergedError: the rollout loss became non-finite.
    """
    optimizer = optax.adam(learning_rate)
    offsets = np.arange(horizon)

    def loss(params, state, scale, o0, a, y):
        return jnp.mean(rollout_errors(step, state, params, o0, a, y, scale))

    @jax.jit
    def chunk(params, opt_state, state, scale, batches):  # batches: leading axis = steps
        def one(carry, batch):
            p, s = carry
            value, grads = jax.value_and_grad(loss)(p, state, scale, *batch)
            updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        (params, opt_state), values = jax.lax.scan(one, (params, opt_state), batches)
        return params, opt_state, jnp.mean(values)

    @jax.jit
    def held_out(params, state, scale, weight, o0, a, y):  # [E]: weighted mean per member
        err = rollout_errors(step, state, params, o0, a, y, scale)
        return jnp.sum(err * weight[None], axis=1) / jnp.sum(weight)

    def finetune(state: Any, key: PRNGKey, data: Transition) -> tuple[Any, Metrics]:
        obs = np.asarray(data.obs, np.float32)
        act = np.asarray(data.action, np.float32)
        nxt = np.asarray(data.next_obs, np.float32)
        starts = rollout_windows(obs, nxt, horizon)
        if len(starts) < 2:  # nothing to train on and hold out: the one-step fit stands
            return state, {"model/rollout_windows": float(len(starts))}
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
        perm = rng.permutation(starts)
        n_hold = min(max(1, int(round(holdout * len(perm)))), len(perm) - 1)
        hold, train = perm[:n_hold], perm[n_hold:]
        scale = jnp.asarray(np.maximum(np.std(nxt - obs, axis=0), SCALE_FLOOR), jnp.float32)

        def windows(t: np.ndarray):  # the windows starting at rows t (any shape)
            rows = t[..., None] + offsets
            return jnp.asarray(obs[t]), jnp.asarray(act[rows]), jnp.asarray(nxt[rows])

        padded = np.resize(hold, bucket_rows(n_hold))  # cycled to a fixed size, as holdout_split
        weight = jnp.asarray(np.arange(len(padded)) < n_hold, jnp.float32)
        hold_args = (state, scale, weight, *windows(padded))
        params, opt_state = state.params, optimizer.init(state.params)
        best = np.asarray(held_out(params, *hold_args))
        before, best_params = float(np.mean(best)), params
        best_step = np.zeros(len(best))
        for done in range(0, steps, _EVAL_EVERY):
            n = min(_EVAL_EVERY, steps - done)
            batches = windows(train[rng.integers(0, len(train), (n, batch_size))])
            params, opt_state, value = chunk(params, opt_state, state, scale, batches)
            if not np.isfinite(float(value)):
                raise TrainingDivergedError(
                    f"rollout fine-tuning loss became {float(value)} after {done + n} steps "
                    f"(rollout_lr={learning_rate}); lower --model.rollout-lr"
                )
            err = np.asarray(held_out(params, *hold_args))
            improved = err < best
            if improved.any():
                best_params = select_members(jnp.asarray(improved), params, best_params)
                best = np.where(improved, err, best)
                best_step = np.where(improved, done + n, best_step)
        metrics = {
            "model/rollout_windows": float(len(starts)),
            "model/rollout_error_before": before,
            "model/rollout_error_after": float(np.mean(best)),
            "model/rollout_best_step": float(np.mean(best_step)),
        }
        return state.replace(params=best_params), metrics

    return finetune


def rollout_finetuner(cfg: EnsembleTrainingConfig, mean_step: MeanStep) -> Callable:
    """`(state, key, data, metrics) -> (state, metrics)`: the multi-step fine-tuning of
    `make_finetune_rollout` after a fit when `cfg.rollout_horizon` > 0 (its metrics added,
    its windows drawn from `fold_in(key, 1)`), else the state and metrics as they are.
    `mean_step(state, obs, action)` is the model's next observation from the members' mean."""
    if cfg.rollout_horizon == 0:
        return lambda state, key, data, metrics: (state, metrics)
    finetune = make_finetune_rollout(
        mean_step,
        horizon=cfg.rollout_horizon,
        steps=cfg.rollout_steps,
        learning_rate=cfg.rollout_lr,
        batch_size=cfg.batch_size,
        holdout=max(cfg.holdout, 0.05),
    )

    def after_fit(state, key, data, metrics):
        state, more = finetune(state, jax.random.fold_in(key, 1), data)
        return state, {**metrics, **more}

    return after_fit
