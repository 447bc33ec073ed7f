"""Synthetic factored MDPs: known parent sets, normalised tables, sampling, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from prototypes.envs.factored_mdp import (
    FactoredMDP,
    FactoredSpec,
    RewardTerm,
    check_states,
    make_random_mdp,
    mdp_step,
    sample_transitions,
)


def test_random_mdp_structure_and_tables():
    mdp = make_random_mdp(np.random.default_rng(0), num_vars=6, cardinality=3, num_actions=4,
                          max_parents=3, determinism=0.7)
    assert len(mdp.parents) == 6
    for ps, cpt in zip(mdp.parents, mdp.cpts, strict=True):
        assert 1 <= len(ps) <= 3 and list(ps) == sorted(set(ps))
        assert cpt.shape == (*(4 if p == 6 else 3 for p in ps), 3)
        assert_allclose(cpt.sum(-1), 1.0, atol=1e-12)
        # every row puts >= determinism on one state (the one-hot part)
        assert np.all(cpt.max(-1) >= 0.7 - 1e-12)
        # every parent axis changes the table somewhere (each true edge is detectable)
        for ax in range(len(ps)):
            assert not np.allclose(cpt, np.take(cpt, [0], axis=ax))


def test_determinism_one_gives_one_hot_rows_and_same_seed_same_mdp():
    a = make_random_mdp(np.random.default_rng(3), num_vars=4, determinism=1.0)
    b = make_random_mdp(np.random.default_rng(3), num_vars=4, determinism=1.0)
    c = make_random_mdp(np.random.default_rng(4), num_vars=4, determinism=1.0)
    for cpt in a.cpts:
        assert set(np.unique(cpt)) <= {0.0, 1.0}
    assert a.parents == b.parents
    assert all(np.array_equal(x, y) for x, y in zip(a.cpts, b.cpts, strict=True))
    assert a.parents != c.parents or any(
        not np.array_equal(x, y) for x, y in zip(a.cpts, c.cpts, strict=True))


def test_sampling_frequencies_approach_the_table():
    # x0' depends on (x0, action) with P = [0.2, 0.8] when x0 = 1, action = 0.
    spec = FactoredSpec(("x0",), (2,), 2)
    cpt = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.2, 0.8], [0.9, 0.1]]])  # [x0, a, x0']
    mdp = FactoredMDP(spec, ((0, 1),), (cpt,))
    nxt = mdp_step(mdp, np.random.default_rng(0), np.ones((4000, 1), int), np.zeros(4000, int))
    assert abs(nxt.mean() - 0.8) < 0.03  # std of the mean ~0.006
    s, a, s2 = sample_transitions(mdp, np.random.default_rng(1), 100)
    assert s.shape == (100, 1) and a.shape == (100,) and s2.shape == (100, 1)
    assert np.all(s2[(s[:, 0] == 0) & (a == 0)] == 0)  # the deterministic row


def test_bad_state_value_names_variable_and_value():
    spec = FactoredSpec(("a", "b"), (2, 3), 2)
    with pytest.raises(ValueError, match="value 3 of variable 'b'"):
        check_states(spec, np.array([[0, 1], [1, 3]]))
    with pytest.raises(ValueError, match="allowed: 0..2"):
        check_states(spec, np.array([[0, -1]]))
    with pytest.raises(ValueError, match="expected \\(B, 2\\)"):
        check_states(spec, np.zeros((3, 3), int))


def test_bad_spec_and_tables_are_named():
    with pytest.raises(KeyError, match="unknown variable 'c'"):
        FactoredSpec(("a", "b"), (2, 3), 2, (RewardTerm(("c",), np.zeros(2)),))
    with pytest.raises(ValueError, match=r"shape \(2,\); expected \(3,\)"):
        FactoredSpec(("a", "b"), (2, 3), 2, (RewardTerm(("b",), np.zeros(2)),))
    spec = FactoredSpec(("a",), (2,), 2)
    with pytest.raises(ValueError, match=r"table of 'a' has shape \(2, 2\); expected \(2, 2, 2\)"):
        FactoredMDP(spec, ((0, 1),), (np.full((2, 2), 0.5),))
    with pytest.raises(ValueError, match="'action' is reserved"):
        FactoredSpec(("action",), (2,), 2)
