"""A discrete model behind a continuous task: abstraction + codebook, against hand answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs.factored_mdp import FactoredSpec, RewardTerm
from prototypes.models.abstraction import codebook_index, make_abstract_model
from prototypes.models.factored import FactoredModelConfig, make_factored_model, state_to_dbn
from prototypes.types import Transition

# A 1-D toy: the continuous state x in [0, 5) is abstracted to the cell floor(x) (5 cells); the
# codebook is three moves [-1], [0], [+1] of one cell, clipped at the walls. Reward: -|cell - 2|.
BOOK = np.array([[-1.0], [0.0], [1.0]], np.float32)
SPEC = FactoredSpec(
    names=("cell",),
    cards=(5,),
    num_actions=3,
    reward_terms=(RewardTerm(("cell",), -np.abs(np.arange(5) - 2.0)),),
)


def _abstract(obs):
    return np.clip(np.floor(np.asarray(obs)), 0, 4).astype(np.int32)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 5, (n, 1))
    k = rng.integers(0, 3, n)
    nxt = np.clip(x + BOOK[k], 0, 4.999)
    return Transition(
        obs=x.astype(np.float32),
        action=BOOK[k],
        reward=np.zeros(n, np.float32),
        next_obs=nxt.astype(np.float32),
        done=np.zeros(n, bool),
    )


def _model():
    inner = make_factored_model(FactoredModelConfig(max_parents=2, score="bdeu"), SPEC)
    return make_abstract_model(inner, _abstract, BOOK)


def test_codebook_index_is_the_nearest_row():
    actions = np.array([[-0.9], [0.2], [0.6], [1.0]], np.float32)
    np.testing.assert_array_equal(codebook_index(BOOK, actions), [0, 1, 2, 2])
    np.testing.assert_array_equal(
        np.asarray(codebook_index(jnp.asarray(BOOK), jnp.asarray(actions))), [0, 1, 2, 2]
    )


def test_fit_learns_the_cell_dynamics_and_predict_follows_the_codebook():
    model = _model()
    data = _data()
    state = model.init(jax.random.key(0), jax.tree.map(lambda x: x[0], data))
    state, metrics = model.fit(state, jax.random.key(1), data)
    # the next cell depends on the cell and the action: parents (cell, action) = inputs (0, 1)
    assert state_to_dbn(SPEC, state).parents == ((0, 1),)
    assert int(metrics["model/num_edges"]) == 2
    # cell' = clip(cell + move, 0, 4) for every cell and codebook row; reward -|cell' - 2|
    cells = jnp.repeat(jnp.arange(5, dtype=jnp.int32), 3)[:, None]
    actions = jnp.asarray(np.tile(BOOK, (5, 1)))
    step = model.predict(state, jax.random.key(2), cells, actions)
    expected = np.clip(np.repeat(np.arange(5), 3) + np.tile([-1, 0, 1], 5), 0, 4)
    np.testing.assert_array_equal(np.asarray(step.obs)[:, 0], expected)
    np.testing.assert_allclose(np.asarray(step.reward), -np.abs(expected - 2.0))
    # encode maps a real observation to its cell
    np.testing.assert_array_equal(np.asarray(model.encode(state, np.array([3.7]))), [3])


def test_fit_rejects_actions_that_are_not_codebook_rows():
    data = _data()
    bad = data.action.copy()
    bad[7] = 0.4
    model = _model()
    state = model.init(jax.random.key(0), jax.tree.map(lambda x: x[0], data))
    with pytest.raises(ValueError, match=r"action \[0.4.*\] \(transition 7\) is 0.4 from the"):
        model.fit(state, jax.random.key(1), data.replace(action=bad))


def test_codebook_must_be_two_dimensional():
    inner = make_factored_model(FactoredModelConfig(), SPEC)
    with pytest.raises(
        ValueError, match=r"codebook must be \[K, A\] with K >= 1, got shape \(3,\)"
    ):
        make_abstract_model(inner, _abstract, np.zeros(3))
