"""Specialised factor updates agree with the same factor enumerated as a table."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from numpy.testing import assert_allclose

from prototypes.graphs import (
    NEG_INF,
    AndFactor,
    BPConfig,
    FactorGraph,
    OrFactor,
    PairwiseFactor,
    TableFactor,
    Variable,
    compile_graph,
    exact,
    make_bp,
)
from prototypes.graphs.factors import FACTOR_KINDS, compile_group


def _group_messages(factors, cards, vtof, temperature):
    """Run one group's (jitted) update on incoming messages `vtof`."""
    kind = FACTOR_KINDS[type(factors[0])]
    var_ids = [np.arange(len(f.variables)) for f in factors]
    key = kind.group_key(factors[0], cards[0])
    group = compile_group(key, range(len(factors)), factors, var_ids, cards)
    update = jax.jit(kind.update, static_argnums=(0, 4))
    return np.asarray(update(group.static, group.indices, group.log_potentials, vtof,
                             temperature))


def _normalised(msgs, cards):
    """Per-edge messages minus their max; everything below NEG_INF / 2 counts as ruled out."""
    msgs = np.where(msgs < NEG_INF / 2, NEG_INF, msgs)
    out, start = [], 0
    for card in cards:
        block = msgs[start : start + card]
        out.append(np.maximum(block - block.max(), NEG_INF))
        start += card
    return np.concatenate(out)


def _random_messages(rng, cards, dead_fraction=0.25):
    """Random normalised log messages, one block per edge of cardinality `cards[e]`, with some
    states ruled out (NEG_INF, as after clamping) but never all of an edge's states."""
    blocks = []
    for card in cards:
        msgs = rng.normal(size=card)
        msgs[rng.random(card) < dead_fraction] = NEG_INF
        msgs[rng.integers(card)] = rng.normal()
        blocks.append(msgs - msgs.max())
    return np.concatenate(blocks)


@pytest.mark.parametrize("factor_type", [OrFactor, AndFactor])
@pytest.mark.parametrize("temperature", [1.0, 0.0, 0.3])
def test_logical_factor_messages_equal_the_enumerated_table(factor_type, temperature):
    # 8 copies of each factor size in one group, each fed different random messages; both
    # the logical group and the table group lay edges out factor by factor, parents then child.
    rng = np.random.default_rng(0)
    for n in (1, 4):
        factors = [factor_type(tuple(f"p{i}" for i in range(n)), "c")] * 8
        cards = [(2,) * (n + 1)] * 8
        edge_cards = [2] * (8 * (n + 1))
        vtof = _random_messages(rng, edge_cards)
        fast = _group_messages(factors, cards, vtof, temperature)
        tables = [TableFactor(f.variables, f.log_table(c)) for f, c in zip(factors, cards,
                                                                             strict=True)]
        slow = _group_messages(tables, cards, vtof, temperature)
        # Compare each edge's message up to a constant, to 1e-5 in float32. Random inputs can
        # be contradictory (every output ruled out); the NEG_INF / 2 snap makes those agree.
        assert_allclose(_normalised(fast, edge_cards), _normalised(slow, edge_cards),
                        atol=1e-5, rtol=0, err_msg=f"{n} parents")


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_pairwise_messages_equal_the_enumerated_table(temperature):
    rng = np.random.default_rng(0)
    factors = [PairwiseFactor(("a", "b"), rng.normal(size=(3, 4))) for _ in range(4)]
    cards = [(3, 4)] * 4
    vtof = _random_messages(rng, [3] * 4 + [4] * 4)
    # Pairwise edges are slot-major (all first variables, then all second); tables are
    # factor-major: permute the same messages into each layout.
    first, second = vtof[:12].reshape(4, 3), vtof[12:].reshape(4, 4)
    fast = _group_messages(factors, cards, vtof, temperature)
    tables = [TableFactor(f.variables, f.log_potentials) for f in factors]
    factor_major = np.concatenate([np.concatenate([first[k], second[k]]) for k in range(4)])
    slow = _group_messages(tables, cards, factor_major, temperature)
    slow = slow.reshape(4, 7)
    fast_first, fast_second = fast[:12].reshape(4, 3), fast[12:].reshape(4, 4)
    assert_allclose(fast_first, slow[:, :3], atol=1e-5)
    assert_allclose(fast_second, slow[:, 3:], atol=1e-5)


def _schema_graph():
    """Schema-style OR of ANDs, out = OR(AND(a, b), AND(c, d), e), with random unaries on the
    inputs and on `out`; twice in one graph: copy "s_" with the specialised factors, copy
    "t_" with the same factors enumerated as tables (a forest, so BP is exact)."""
    rng = np.random.default_rng(3)
    inputs = ["a", "b", "c", "d", "e"]
    unaries = {n: rng.normal(size=2) for n in [*inputs, "out"]}
    variables, factors = [], []
    for prefix in ("s_", "t_"):
        p = {n: prefix + n for n in [*inputs, "ab", "cd", "out"]}
        variables += [Variable(name, 2) for name in p.values()]
        logic = [AndFactor((p["a"], p["b"]), p["ab"]), AndFactor((p["c"], p["d"]), p["cd"]),
                 OrFactor((p["ab"], p["cd"], p["e"]), p["out"])]
        if prefix == "t_":
            logic = [TableFactor(f.variables, f.log_table((2,) * len(f.variables)))
                     for f in logic]
        factors += logic + [TableFactor((p[n],), u) for n, u in unaries.items()]
    return FactorGraph(variables, factors)


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_or_of_ands_bp_equals_enumerated_tables_and_brute_force(temperature):
    graph = _schema_graph()
    compiled = compile_graph(graph)
    bp = make_bp(BPConfig(num_iters=8, temperature=temperature, damping=0.0), compiled)
    evidence = np.stack([compiled.evidence(),
                         compiled.evidence(clamp={"s_out": 0, "t_out": 0})])

    def infer(evidence):
        state, _ = bp.run(compiled.log_potentials, bp.init(), evidence)
        return bp.beliefs(state, evidence)

    beliefs = jax.device_get(jax.jit(jax.vmap(infer))(evidence))
    fast, slow = slice(0, 8), slice(8, 16)  # the two copies' variables
    assert_allclose(beliefs.marginals[:, fast], beliefs.marginals[:, slow], atol=1e-5)
    np.testing.assert_array_equal(beliefs.map_states[:, fast], beliefs.map_states[:, slow])
    # And both are exact: brute force over the specialised copy alone.
    copy = FactorGraph(graph.variables[:8], graph.factors[: len(graph.factors) // 2])
    for b, row in enumerate(evidence):
        row = row[:16]  # the first copy's 8 binary variables
        if temperature == 1.0:
            want = np.stack(exact.marginals(copy, row))
            assert_allclose(beliefs.marginals[b, fast], want, atol=1e-5)
        else:
            np.testing.assert_array_equal(beliefs.map_states[b, fast],
                                          exact.map_assignment(copy, row))


def test_logical_tables_by_hand():
    # OR(p0, p1) -> c, axes (p0, p1, c): valid rows are (0,0,0), (0,1,1), (1,0,1), (1,1,1).
    table = OrFactor(("p0", "p1"), "c").log_table((2, 2, 2))
    valid = np.argwhere(np.isfinite(table)).tolist()
    assert valid == [[0, 0, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]]
    table = AndFactor(("p0", "p1"), "c").log_table((2, 2, 2))
    valid = np.argwhere(np.isfinite(table)).tolist()
    assert valid == [[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 1]]


def test_bad_factors_raise_clear_errors():
    with pytest.raises(ValueError, match=r"has table shape \(2, 3\); expected \(2, 2\)"):
        FactorGraph([Variable("a", 2), Variable("b", 2)],
                    [TableFactor(("a", "b"), np.zeros((2, 3)))])
    with pytest.raises(ValueError, match="repeats a variable"):
        TableFactor(("a", "a"), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        PairwiseFactor(("a", "b"), [[0.0, np.nan], [0.0, 0.0]])
    with pytest.raises(ValueError, match="needs exactly 2 variables"):
        PairwiseFactor(("a", "b", "c"), np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="variable 'c' has cardinality 3; allowed: 2"):
        FactorGraph([Variable("p", 2), Variable("c", 3)], [OrFactor(("p",), "c")])
    with pytest.raises(KeyError, match="unknown variable 'z'"):
        FactorGraph([Variable("a", 2)], [TableFactor(("a", "z"), np.zeros((2, 2)))])
