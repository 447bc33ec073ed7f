"""Compiled layout, evidence builders, brute force by hand, and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from prototypes.graphs import (
    FactorGraph,
    PairwiseFactor,
    TableFactor,
    Variable,
    compile_graph,
    exact,
)


def _small():
    # a (2 states), b (3 states, named); table T(a, b), pairwise P(b, a), unary U(b).
    return FactorGraph(
        [Variable("a", 2), Variable("b", 3, ("lo", "mid", "hi"))],
        [
            TableFactor(("a", "b"), np.arange(6.0).reshape(2, 3)),
            PairwiseFactor(("b", "a"), np.zeros((3, 2))),
            TableFactor(("b",), [0.0, 1.0, 2.0]),
        ],
    )


def test_compiled_layout_by_hand():
    compiled = compile_graph(_small())
    # Variable states: a -> 0, 1; b -> 2, 3, 4.
    np.testing.assert_array_equal(compiled.var_state_offsets, [0, 2, 5])
    # Groups in first-seen key order: ("table", 2) = T; ("pairwise", 3, 2) = P;
    # ("table", 1) = U. Edges: T->a, T->b | P->b, P->a | U->b.
    assert [g.key for g in compiled.groups] == [("table", 2), ("pairwise", 3, 2), ("table", 1)]
    np.testing.assert_array_equal(compiled.edge_vars, [0, 1, 1, 0, 1])
    np.testing.assert_array_equal(compiled.edge_state_offsets, [0, 2, 5, 8, 10, 13])
    assert compiled.group_slices == ((0, 5), (5, 10), (10, 13))
    np.testing.assert_array_equal(
        compiled.edge_state_var_state, [0, 1, 2, 3, 4, 2, 3, 4, 0, 1, 2, 3, 4]
    )
    # Messages into b's state 0 (var state 2) come from edge states 2, 5 and 10.
    row = compiled.var_state_edge_states[2][compiled.var_state_edge_mask[2]]
    np.testing.assert_array_equal(np.sort(row), [2, 5, 10])
    assert compiled.max_cardinality == 3
    np.testing.assert_array_equal(compiled.pad_mask, [[True, True, False], [True, True, True]])
    # The table group's flat configurations: T's 6 configs over (a, b), edge states
    # a -> 0..1, b -> 2..4, in C order.
    (configs,) = compiled.groups[0].indices
    np.testing.assert_array_equal(configs, [[0, 2], [0, 3], [0, 4], [1, 2], [1, 3], [1, 4]])


def test_evidence_builders():
    compiled = compile_graph(_small())
    ninf = -np.inf
    assert_allclose(compiled.evidence(clamp={"a": 1}), [ninf, 0, 0, 0, 0])
    # b by state name, plus soft evidence on a.
    assert_allclose(compiled.evidence(clamp={"b": "hi"}, soft={"a": [0.5, -0.5]}),
                    [0.5, -0.5, ninf, ninf, 0])
    batch = compiled.evidence_batch(["b", "a"], [[0, 1], [2, 0]])
    assert_allclose(batch, [[ninf, 0, 0, ninf, ninf], [0, ninf, ninf, ninf, 0]])


def test_brute_force_by_hand():
    # Joint log p(a, b) = T[a, b] + P[b, a] + U[b] = a * 3 + b + b = 3a + 2b (unnormalised).
    # Marginal of a: sum_b e^{3a + 2b} -> proportional to [1, e^3].
    graph = _small()
    marginals = exact.marginals(graph)
    assert_allclose(marginals[0], np.array([1.0, np.e**3]) / (1 + np.e**3))
    np.testing.assert_array_equal(exact.map_assignment(graph), [1, 2])
    clamp_b0 = compile_graph(graph).evidence(clamp={"b": 0})
    np.testing.assert_array_equal(exact.map_assignment(graph, clamp_b0), [1, 0])


def test_bad_input_raises_clear_errors():
    graph = _small()
    compiled = compile_graph(graph)
    with pytest.raises(KeyError, match="unknown variable 'c'; known variables: 'a', 'b'"):
        compiled.evidence(clamp={"c": 0})
    with pytest.raises(ValueError, match="evidence for variable 'a' is 2; allowed states are 0..1"):
        compiled.evidence(clamp={"a": 2})
    with pytest.raises(ValueError, match="allowed states are 0..2 or one of"):
        compiled.evidence(clamp={"b": "max"})
    with pytest.raises(ValueError, match=r"evidence for variable 'b' is 3 \(row 1\)"):
        compiled.evidence_batch(["b"], np.array([[0], [3]]))
    with pytest.raises(ValueError, match="soft evidence for variable 'a' has shape"):
        compiled.evidence(soft={"a": [0.0, 0.0, 0.0]})
    with pytest.raises(ValueError, match="variable name 'a' is used twice"):
        FactorGraph([Variable("a", 2), Variable("a", 3)], [])
    with pytest.raises(ValueError, match="has cardinality 0; allowed: an int >= 1"):
        Variable("a", 0)
    with pytest.raises(ValueError, match="has no registered kind"):
        FactorGraph([Variable("a", 2)], [object()])
