"""Loopy BP: exact on trees (vs enumeration and pgmpy), MAP, evidence, vmap, damping."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from numpy.testing import assert_allclose

from prototypes.graphs import (
    BPConfig,
    FactorGraph,
    PairwiseFactor,
    TableFactor,
    Variable,
    compile_graph,
    exact,
    make_bp,
)

from .conftest import forest, random_tree

SEEDS = range(16)  # random tree structures, all in one forest (one compile per temperature)


def _infer_fn(compiled, cfg):
    bp = make_bp(cfg, compiled)

    def infer(log_potentials, evidence):
        state, metrics = bp.run(log_potentials, bp.init(), evidence)
        return bp.beliefs(state, evidence), metrics

    return infer


@functools.cache
def _forest_case():
    """The forest of `SEEDS` trees and 3 evidence rows: none; one variable clamped per tree;
    two clamped per tree plus soft evidence on a third variable."""
    trees, graph = forest(SEEDS)
    compiled = compile_graph(graph)
    rng = np.random.default_rng(1000)
    clamp1, clamp2, soft = {}, {}, {}
    for tree in trees:
        pick = [tree.variables[k] for k in rng.permutation(len(tree.variables))]
        clamp1[pick[0].name] = int(rng.integers(pick[0].cardinality))
        for var in pick[:2]:
            clamp2[var.name] = int(rng.integers(var.cardinality))
        if len(pick) > 2:
            soft[pick[2].name] = rng.normal(size=pick[2].cardinality)
    evidence = np.stack([
        compiled.evidence(dtype=np.float64),
        compiled.evidence(clamp=clamp1, dtype=np.float64),
        compiled.evidence(clamp=clamp2, soft=soft, dtype=np.float64),
    ])
    return trees, graph, compiled, evidence, (clamp1, clamp2)


@functools.cache
def _forest_beliefs(temperature):
    """Batched float64 BP on the forest; undamped, (largest tree size + 1) iterations, which is
    at least the tree diameter in factor hops, after which flooding BP on a tree is exact."""
    trees, _, compiled, evidence, _ = _forest_case()
    cfg = BPConfig(num_iters=max(len(t.variables) for t in trees) + 1,
                   temperature=temperature, damping=0.0)
    infer = jax.jit(jax.vmap(_infer_fn(compiled, cfg), in_axes=(None, 0)))
    with jax.enable_x64(True):
        beliefs, metrics = infer(compiled.log_potentials, evidence)
        return jax.device_get((beliefs, metrics))


def _components(trees, evidence_row):
    """(tree, its slice of the flat evidence, its first variable index) for each tree."""
    start_state = start_var = 0
    for tree in trees:
        size = sum(v.cardinality for v in tree.variables)
        yield tree, evidence_row[start_state : start_state + size], start_var
        start_state += size
        start_var += len(tree.variables)


def test_sum_product_on_random_trees_equals_enumeration():
    trees, _, _, evidence, _ = _forest_case()
    beliefs, metrics = _forest_beliefs(1.0)
    assert beliefs.marginals.dtype == np.float64
    for b, row in enumerate(evidence):
        for seed, (tree, tree_evidence, first) in zip(SEEDS, _components(trees, row),
                                                      strict=True):
            for v, want in enumerate(exact.marginals(tree, tree_evidence)):
                got = beliefs.marginals[b, first + v]
                assert_allclose(got[: len(want)], want, atol=1e-6,
                                err_msg=f"tree seed {seed}, evidence row {b}, variable {v}")
                assert_allclose(got[len(want):], 0.0)
    # Converged: the last undamped iteration changed nothing beyond float64 round-off.
    assert np.all(metrics["max_delta"] < 1e-9)


def test_max_product_on_random_trees_decodes_the_map():
    trees, _, _, evidence, _ = _forest_case()
    beliefs, _ = _forest_beliefs(0.0)
    for b, row in enumerate(evidence):
        for seed, (tree, tree_evidence, first) in zip(SEEDS, _components(trees, row),
                                                      strict=True):
            got = beliefs.map_states[b, first : first + len(tree.variables)]
            want = exact.map_assignment(tree, tree_evidence)
            np.testing.assert_array_equal(got, want, err_msg=f"tree seed {seed}, row {b}")


def test_clamped_variables_decode_to_their_evidence():
    _, graph, _, _, (clamp1, clamp2) = _forest_case()
    for temperature in (1.0, 0.0):
        beliefs, _ = _forest_beliefs(temperature)
        for b, clamp in ((1, clamp1), (2, clamp2)):
            for name, state in clamp.items():
                v = graph.index(name)
                assert beliefs.map_states[b, v] == state
                assert beliefs.marginals[b, v, state] == 1.0


def test_max_product_max_marginals_on_a_chain_by_hand():
    # Chain a - b with a unary on a: log phi(a) = [0, 1], log psi(a, b) = [[2, 0], [0, 0]].
    # Max-marginal of a: max_b (phi + psi) = [0 + 2, 1 + 0] = [2, 1]; of b: max_a = [2, 1].
    # Normalised (log-sum-exp) beliefs: [2, 1] - log(e^2 + e^1).
    graph = FactorGraph(
        [Variable("a", 2), Variable("b", 2)],
        [TableFactor(("a",), [0.0, 1.0]), PairwiseFactor(("a", "b"), [[2.0, 0.0], [0.0, 0.0]])],
    )
    compiled = compile_graph(graph)
    infer = jax.jit(_infer_fn(compiled, BPConfig(num_iters=3, temperature=0.0, damping=0.0)))
    beliefs, _ = infer(compiled.log_potentials, compiled.evidence())
    expected = np.array([2.0, 1.0]) - np.logaddexp(2.0, 1.0)
    assert_allclose(beliefs.log_marginals, np.stack([expected, expected]), atol=1e-6)
    np.testing.assert_array_equal(beliefs.map_states, [0, 0])


def test_vmap_over_evidence_equals_a_loop():
    graph = random_tree(3, max_vars=5)
    compiled = compile_graph(graph)
    rng = np.random.default_rng(0)
    names = list(graph.names[:2])
    cards = graph.cardinalities_of(names)
    values = np.stack([rng.integers(c, size=5) for c in cards], axis=1)
    evidence = compiled.evidence_batch(names, values)
    cfg = BPConfig(num_iters=len(graph.variables) + 1, temperature=1.0, damping=0.0)
    infer = _infer_fn(compiled, cfg)
    batched, _ = jax.jit(jax.vmap(infer, in_axes=(None, 0)))(compiled.log_potentials, evidence)
    single = jax.jit(infer)
    for b in range(len(evidence)):
        one, _ = single(compiled.log_potentials, evidence[b])
        assert_allclose(batched.marginals[b], one.marginals, atol=1e-6)
        # The batch row agrees with the hand-built clamp dictionary too.
        clamp = dict(zip(names, values[b].tolist(), strict=True))
        np.testing.assert_array_equal(evidence[b], compiled.evidence(clamp=clamp))


def test_jit_traces_once_and_is_deterministic():
    graph = random_tree(5, max_vars=5)
    compiled = compile_graph(graph)
    cfg = BPConfig(num_iters=4, temperature=1.0, damping=0.3)
    infer = _infer_fn(compiled, cfg)
    traces = []

    def counted(log_potentials, evidence):
        traces.append(1)
        return infer(log_potentials, evidence)

    jitted = jax.jit(counted)
    first, _ = jitted(compiled.log_potentials, compiled.evidence())
    clamp = {graph.names[0]: 1}
    jitted(compiled.log_potentials, compiled.evidence(clamp=clamp))
    again, _ = jitted(compiled.log_potentials, compiled.evidence())
    assert len(traces) == 1
    np.testing.assert_array_equal(first.marginals, again.marginals)


def _frustrated_triangle(coupling=-4.0):
    """3-cycle of binary spins, anti-ferromagnetic couplings (log psi = J for equal spins,
    -J for unequal, J < 0) and small distinct fields: no assignment satisfies all three
    couplings, and undamped flooding BP oscillates (measured: max-product keeps a period-2
    swing of 0.6 indefinitely; sum-product's swing decays only as ~0.998 per iteration)."""
    names = ["s0", "s1", "s2"]
    psi = np.array([[coupling, -coupling], [-coupling, coupling]])
    fields = [0.3, -0.2, 0.1]
    factors = [PairwiseFactor((names[i], names[j]), psi) for i, j in [(0, 1), (1, 2), (0, 2)]]
    factors += [TableFactor((n,), [h, -h]) for n, h in zip(names, fields, strict=True)]
    return FactorGraph([Variable(n, 2) for n in names], factors)


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_damping_makes_bp_converge_on_a_frustrated_loop(temperature):
    compiled = compile_graph(_frustrated_triangle())
    evidence = compiled.evidence()
    deltas = {}
    for damping in (0.0, 0.5):
        bp = make_bp(BPConfig(num_iters=100, temperature=temperature, damping=damping),
                     compiled)
        _, metrics = jax.jit(bp.run)(compiled.log_potentials, bp.init(), evidence)
        deltas[damping] = float(metrics["max_delta"])
    assert deltas[0.0] > 0.3  # still oscillating after 100 undamped iterations
    # Damped: converged. A damped step moves by (1 - damping) * (undamped step), so this also
    # bounds the undamped residual at the damped answer by 2e-5: it is a fixed point of BP.
    assert deltas[0.5] < 1e-5


def test_replaced_log_potentials_change_the_answer_without_recompiling():
    # Two binary variables joined by psi; replacing psi by a diagonal-heavy table moves b
    # towards a's state. Here a is clamped to 1 and psi' = [[0, 0], [0, log 3]], so
    # p(b | a = 1) = [1, 3] / 4.
    graph = FactorGraph(
        [Variable("a", 2), Variable("b", 2)],
        [PairwiseFactor(("a", "b"), np.zeros((2, 2)))],
    )
    compiled = compile_graph(graph)
    infer = jax.jit(_infer_fn(compiled, BPConfig(num_iters=2, damping=0.0)))
    evidence = compiled.evidence(clamp={"a": 1})
    before, _ = infer(compiled.log_potentials, evidence)
    assert_allclose(before.marginals[1], [0.5, 0.5], atol=1e-6)
    new = (np.array([[[0.0, 0.0], [0.0, np.log(3.0)]]]),)
    after, _ = infer(new, evidence)
    assert_allclose(after.marginals[1], [0.25, 0.75], atol=1e-6)
    assert_allclose(after.marginals[0], [0.0, 1.0], atol=1e-6)


def test_bp_config_rejects_bad_values():
    with pytest.raises(ValueError, match="damping is 1.0"):
        BPConfig(damping=1.0)
    with pytest.raises(ValueError, match="temperature is -1"):
        BPConfig(temperature=-1.0)
    with pytest.raises(ValueError, match="num_iters is 0"):
        BPConfig(num_iters=0)
