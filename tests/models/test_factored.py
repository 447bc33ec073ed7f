"""The learned factored (DBN) model: scores and tables against hand-computed values, structure
recovery, predict against the tables, clear errors. Max-product planning on the DBN is tested in
tests/planning/test_graph_planner.py."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.testing import assert_allclose

from prototypes.envs.factored_mdp import (
    FactoredMDP,
    FactoredSpec,
    RewardTerm,
    make_random_mdp,
    sample_transitions,
)
from prototypes.models.factored import (
    FactoredModelConfig,
    dbn_to_state,
    estimate_cpt,
    family_counts,
    family_score,
    learn_dbn,
    learn_parents,
    make_factored_model,
    state_to_dbn,
)
from prototypes.types import Transition

COUNTS = np.array([[3, 1], [0, 2]])  # N_jk: 2 parent configurations, a binary child


def test_bic_score_hand_computed():
    # LL = 3 log(3/4) + 1 log(1/4) + 0 + 2 log(2/2) = -2.249340; penalty (log 6 / 2) q (r - 1)
    # with N = 6, q = 2, r = 2 is log 6 = 1.791759; BIC = -4.041100.
    assert family_score(COUNTS, "bic") == pytest.approx(
        3 * np.log(0.75) + np.log(0.25) - np.log(6.0), abs=1e-12
    )
    assert family_score(COUNTS, "bic") == pytest.approx(-4.041100, abs=1e-6)


def test_bdeu_score_hand_computed():
    # ess 1: a_j = 1/2, a_jk = 1/4; Gamma(x + n) / Gamma(x) = x (x + 1) ... (x + n - 1).
    # row 0: [G(3.25)/G(.25)] [G(1.25)/G(.25)] / [G(4.5)/G(.5)] = (.25 1.25 2.25)(.25)
    #        / (.5 1.5 2.5 3.5) = 0.17578125 / 6.5625
    # row 1: [G(2.25)/G(.25)] / [G(2.5)/G(.5)] = (.25 1.25) / (.5 1.5) = 0.3125 / 0.75
    # product = 0.054931640625 / 4.921875 = 1 / 89.6
    assert family_score(COUNTS, "bdeu", ess=1.0) == pytest.approx(-np.log(89.6), abs=1e-10)


def test_counts_and_dirichlet_smoothed_cpt_hand_computed():
    # parent x0 (card 2), child x0' (card 2): (0 -> 0) x3, (0 -> 1) x1, (1 -> 1) x2
    inputs = np.array([[0, 0]] * 4 + [[1, 1]] * 2)  # columns: x0, action
    targets = np.array([0, 0, 0, 1, 1, 1])
    counts = family_counts(inputs, targets, (0,), (2, 2), 2)
    np.testing.assert_array_equal(counts, COUNTS)
    # alpha = 0.5: row 0 (3.5, 1.5) / 5 = (0.7, 0.3); row 1 (0.5, 2.5) / 3 = (1/6, 5/6)
    expected = np.array([[0.7, 0.3], [1 / 6, 5 / 6]])
    assert_allclose(estimate_cpt(counts, 0.5), expected, atol=1e-12)
    spec = FactoredSpec(("x0",), (2,), 2)
    dbn, _ = learn_dbn(
        spec,
        inputs[:, :1],
        inputs[:, 1],
        targets[:, None],
        max_parents=1,
        kind="bic",
        pseudocount=0.5,
    )
    assert dbn.parents == ((0,),)  # x0 explains x0' (the action column duplicates it: tie ->
    assert_allclose(dbn.cpts[0], expected, atol=1e-12)  # the lexicographically first set)
    # an unseen configuration with alpha = 0 is uniform
    assert_allclose(estimate_cpt(np.array([[0, 0]]), 0.0), [[0.5, 0.5]])


def test_backoff_prior_hand_computed():
    # (N_jk + alpha r p_jk) / (N_j + alpha r), alpha = 0.5, r = 2, prior rows p:
    # row 0: (3 + 0.9, 1 + 0.1) / 5 = (0.78, 0.22); row 1 has no data: the prior (0.2, 0.8)
    prior = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert_allclose(
        estimate_cpt(np.array([[3, 1], [0, 0]]), 0.5, prior), [[0.78, 0.22], [0.2, 0.8]], atol=1e-12
    )
    # learn_dbn: x0' copies x0 when a = 0 (data only for a = 0); backoff 1 centres the unseen
    # a = 1 rows on the best single-parent family, P(x0' | x0) = (N + 0.5) / (N_j + 1)
    spec = FactoredSpec(("x0",), (2,), 2)
    s = np.array([0, 1] * 10)[:, None]
    dbn, _ = learn_dbn(spec, s, np.zeros(20, int), s, max_parents=2, pseudocount=0.5, backoff=1)
    assert dbn.parents == ((0,),)  # the action never varies: x0 alone is best, no backoff
    a = np.array([0, 1] * 10)
    dbn, _ = learn_dbn(
        spec,
        np.array([0, 0, 1, 1] * 5)[:, None],
        a,
        np.array([0, 1, 1, 0] * 5)[:, None],
        max_parents=2,
        pseudocount=0.5,
        backoff=1,
    )
    # x0' = x0 XOR a needs both parents; each backoff single-parent family is (0.5, 0.5)
    assert dbn.parents == ((0, 1),)
    assert_allclose(dbn.cpts[0][0, 0], [5.5 / 6, 0.5 / 6], atol=1e-12)  # (5 + .5) / (5 + 1)


@pytest.mark.parametrize("kind", ["bic", "bdeu"])
def test_parent_sets_recovered_on_a_tiny_mdp(kind):
    mdp = make_random_mdp(
        np.random.default_rng(5),
        num_vars=3,
        cardinality=2,
        num_actions=2,
        max_parents=2,
        determinism=0.8,
    )
    s, a, s2 = sample_transitions(mdp, np.random.default_rng(6), 3000)
    dbn, _ = learn_dbn(mdp.spec, s, a, s2, max_parents=2, kind=kind)
    assert dbn.parents == mdp.parents
    ps, _ = learn_parents(np.concatenate([s, a[:, None]], 1), s2[:, 0], (2, 2, 2, 2), 2, 2, kind)
    assert ps == mdp.parents[0]


@functools.cache
def _learned():
    """A learned DBN with every row distinct (no argmax ties) and its model."""
    mdp = make_random_mdp(
        np.random.default_rng(1),
        num_vars=3,
        cardinality=3,
        num_actions=2,
        max_parents=2,
        determinism=0.5,
    )
    s, a, s2 = sample_transitions(mdp, np.random.default_rng(2), 2000)
    spec = FactoredSpec(
        mdp.spec.names, mdp.spec.cards, 2, (RewardTerm(("x0",), np.array([0.0, 1.0, 2.0])),)
    )
    data = Transition(
        obs=jnp.asarray(s),
        action=jnp.asarray(a[:, None], jnp.float32),
        reward=jnp.zeros(len(s)),
        next_obs=jnp.asarray(s2),
        done=jnp.zeros(len(s), bool),
    )
    return spec, data


def _fit(mode):
    spec, data = _learned()
    model = make_factored_model(FactoredModelConfig(max_parents=2, mode=mode), spec)
    state = model.init(jax.random.key(0), data)
    state, metrics = model.fit(state, jax.random.key(1), data)
    return spec, model, state, metrics


def test_predict_mode_is_the_argmax_of_the_tables():
    spec, model, state, metrics = _fit("mode")
    dbn = state_to_dbn(spec, state)
    assert int(metrics["model/num_edges"]) == sum(len(p) for p in dbn.parents)
    states = np.array(list(itertools.product(range(3), repeat=3)) * 2, np.int32)  # [54, 3]
    actions = np.repeat([0, 1], 27).astype(np.float32)[:, None] + 0.5  # floats in [a, a + 1)
    step = jax.jit(model.predict)(
        state, jax.random.key(2), jnp.asarray(states), jnp.asarray(actions)
    )
    expected = [
        [p.argmax() for p in dbn.transition_probs(s, int(a[0]))]
        for s, a in zip(states, actions, strict=True)
    ]
    np.testing.assert_array_equal(np.asarray(step.obs), expected)
    assert_allclose(np.asarray(step.reward), np.asarray(expected)[:, 0].astype(float))


def test_predict_samples_approach_the_tables():
    spec, model, state, _ = _fit("sample")
    dbn = state_to_dbn(spec, state)
    root, action = np.array([2, 0, 1], np.int32), 1
    B = 4000
    predict = jax.jit(model.predict)
    obs = jnp.broadcast_to(jnp.asarray(root), (B, 3))
    act = jnp.full((B, 1), float(action))
    out = np.asarray(predict(state, jax.random.key(3), obs, act).obs)
    for i, probs in enumerate(dbn.transition_probs(root, action)):
        freq = np.bincount(out[:, i], minlength=3) / B
        assert np.abs(freq - probs).max() < 0.05  # std of a frequency <= 0.008
    again = np.asarray(predict(state, jax.random.key(3), obs, act).obs)
    other = np.asarray(predict(state, jax.random.key(4), obs, act).obs)
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)


def test_state_roundtrip_keeps_the_dbn():
    mdp = make_random_mdp(np.random.default_rng(9), num_vars=4, max_parents=3)
    back = state_to_dbn(mdp.spec, dbn_to_state(mdp, 3))
    assert back.parents == mdp.parents
    for x, y in zip(back.cpts, mdp.cpts, strict=True):
        assert_allclose(x, y, atol=1e-6)


def test_bad_inputs_are_named():
    spec, model, state, _ = _fit("mode")
    _, data = _learned()
    bad = data.replace(next_obs=data.next_obs.at[5, 1].set(3))
    with pytest.raises(ValueError, match="next state value 3 of variable 'x1' \\(row 5\\)"):
        model.fit(state, jax.random.key(0), bad)
    with pytest.raises(ValueError, match="action 2 \\(row 0\\) is out of range"):
        model.fit(state, jax.random.key(0), data.replace(action=data.action.at[0, 0].set(2.0)))
    with pytest.raises(KeyError, match="unknown variable 'x9'"):
        spec.state_from_dict({"x0": 0, "x1": 0, "x2": 0, "x9": 1})
    with pytest.raises(ValueError, match=r"table of 'x0' has shape \(3, 3\); expected \(3, 2, 3\)"):
        FactoredMDP(spec, ((0, 3), (1,), (2,)), (np.full((3, 3), 1 / 3), np.eye(3), np.eye(3)))
    with pytest.raises(ValueError, match="2 parents; the cap is 1"):
        dbn_to_state(state_to_dbn(spec, state), max_parents=1)
