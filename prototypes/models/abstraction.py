"""A discrete world model behind a continuous task: a state abstraction plus an action codebook.

Factored (factor-graph) models work on discrete variables and discrete actions; the arms have
continuous observations and actions. `make_abstract_model` puts a discrete `inner` model (e.g.
`make_factored_model`) behind the same `WorldModel` interface the continuous models have, so the
same planners and agents drive it:

- `encode(state, obs)`: a real observation -> its abstract state (`abstract_fn`, host-side),
  the planning root.
- `predict(state, key, abstract [B, n], action [B, A])`: each action must be a row of the
  codebook [K, A]; it becomes the row index k (nearest row), which `inner.predict` receives as
  [B, 1] floats (the factored model's action encoding). Returns the inner model's Step: next
  abstract state, its reward and termination.
- `fit(state, key, data)`: obs and next_obs are abstracted, actions mapped to their row indices,
  and `inner.fit` learns from the discrete transitions. An action that is not a codebook row
  (more than `tol` from every row) is a ValueError naming it: a discrete model learned from
  snapped continuous actions would learn the wrong dynamics, so explore with codebook actions.

MCTS over the codebook (`planning/mcts.py`) only ever passes codebook rows to the StepFn, which is
what makes the nearest-row lookup exact.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from prototypes.models.base import ModelState, WorldModel
from prototypes.types import Array, Float, Int, Metrics, PRNGKey, Step, Transition

__all__ = ["make_abstract_model", "codebook_index"]

AbstractFn = Callable[[np.ndarray], np.ndarray]  # obs [..., O] -> int states [..., n] (NumPy)


def codebook_index(codebook: Float[Array, "K A"], action: Float[Array, "B A"]) -> Int[Array, " B"]:
    """The index of the codebook row nearest (squared Euclidean) to each action (JAX or NumPy)."""
    xp = jnp if isinstance(action, jnp.ndarray) else np
    d = xp.sum((action[:, None, :] - codebook[None, :, :]) ** 2, axis=-1)  # [B, K]
    return xp.argmin(d, axis=-1).astype(xp.int32)


def make_abstract_model(
    inner: WorldModel,
    abstract_fn: AbstractFn,
    codebook: Float[np.ndarray, "K A"],
    *,
    tol: float = 1e-4,
) -> WorldModel:
    """`inner`, a model of the abstract task, as a model of the continuous one (module docstring).

    Args:
        inner: a discrete model whose actions are [B, 1] floats holding indices 0..K-1.
        abstract_fn: NumPy map from observations [..., O] to abstract int states [..., n].
        codebook: [K, A] the continuous actions the indices stand for.
        tol: largest distance between a data action and its codebook row in `fit`.
    """
    book = np.asarray(codebook, np.float32)
    if book.ndim != 2 or book.shape[0] < 1:
        raise ValueError(f"codebook must be [K, A] with K >= 1, got shape {book.shape}")

    def as_index(action) -> Array:
        return codebook_index(jnp.asarray(book), action)[:, None].astype(jnp.float32)

    def init(key: PRNGKey, example: Transition) -> ModelState:
        cells = abstract_fn(np.asarray(example.obs)[None])[0]
        return inner.init(
            key,
            Transition(
                obs=cells,
                action=np.zeros(1, np.float32),
                reward=example.reward,
                next_obs=cells,
                done=example.done,
            ),
        )

    def predict(state: ModelState, key: PRNGKey, obs, action) -> Step:
        return inner.predict(state, key, obs, as_index(jnp.asarray(action)))

    def fit(state: ModelState, key: PRNGKey, data: Transition) -> tuple[ModelState, Metrics]:
        actions = np.asarray(data.action, np.float32)
        index = codebook_index(book, actions)
        gap = np.sqrt(np.sum((actions - book[index]) ** 2, axis=-1))
        if gap.size and gap.max() > tol:
            i = int(np.argmax(gap))
            raise ValueError(
                f"action {actions[i].tolist()} (transition {i}) is {gap[i]:.3g} from the nearest "
                "codebook row; a model over codebook indices needs data taken with codebook "
                "actions"
            )
        discrete = Transition(
            obs=abstract_fn(np.asarray(data.obs)),
            action=index[:, None].astype(np.float32),
            reward=np.asarray(data.reward),
            next_obs=abstract_fn(np.asarray(data.next_obs)),
            done=np.asarray(data.done),
        )
        return inner.fit(state, key, discrete)

    def encode(state: ModelState, obs) -> Array:
        del state
        return jnp.asarray(abstract_fn(np.asarray(obs)))

    return WorldModel(
        init=init, predict=predict, fit=fit, encode=encode, name=f"abstract_{inner.name}"
    )
