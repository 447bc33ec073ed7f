"""pgmpy interchange: import its models, export ours, and agree with its exact inference."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest
from numpy.testing import assert_allclose

with warnings.catch_warnings():  # pgmpy 1.1.2 warns about its own deprecated estimators
    warnings.simplefilter("ignore", FutureWarning)
    from pgmpy.factors.discrete import DiscreteFactor, TabularCPD
    from pgmpy.inference import VariableElimination
    from pgmpy.models import DiscreteBayesianNetwork, DiscreteMarkovNetwork
    from pgmpy.models import FactorGraph as PgmpyFactorGraph

    from prototypes.graphs import (
        BPConfig,
        FactorGraph,
        OrFactor,
        TableFactor,
        Variable,
        compile_graph,
        exact,
        make_bp,
        pgmpy_io,
    )

from .test_bp import _forest_beliefs, _forest_case


def _beliefs(graph, clamp, num_iters=20):
    compiled = compile_graph(graph)
    bp = make_bp(BPConfig(num_iters=num_iters, damping=0.0), compiled)
    evidence = compiled.evidence(clamp=clamp, dtype=np.float64)
    with jax.enable_x64(True):
        state, _ = jax.jit(bp.run)(compiled.log_potentials, bp.init(), evidence)
        return compiled.unpad(bp.beliefs(state, evidence).marginals)


def test_sum_product_on_random_trees_equals_pgmpy_variable_elimination():
    trees, _, compiled, _, (clamp1, _) = _forest_case()
    beliefs, _ = _forest_beliefs(1.0)
    ours = [compiled.unpad(beliefs.marginals[b]) for b in (0, 1)]  # rows: none, clamp1
    for tree in trees[:4]:
        for b, evidence in enumerate([{}, clamp1]):
            local = {k: v for k, v in evidence.items() if k in tree.names}
            for var, want in pgmpy_io.exact_marginals(tree, local).items():
                assert_allclose(ours[b][var], want, atol=1e-6, err_msg=f"{var}, row {b}")


def _tree_bayes_net():
    """A tree-shaped BN, cloudy -> rain -> wet and cloudy -> sprinkler (every CPD has at most
    one parent, so the imported factor graph is a tree and BP on it is exact)."""
    bn = DiscreteBayesianNetwork([("cloudy", "rain"), ("rain", "wet"), ("cloudy", "sprinkler")])
    bn.add_cpds(
        TabularCPD("cloudy", 2, [[0.5], [0.5]]),
        TabularCPD("rain", 2, [[0.8, 0.2], [0.2, 0.8]], evidence=["cloudy"], evidence_card=[2]),
        TabularCPD("sprinkler", 3, [[0.5, 0.9], [0.3, 0.05], [0.2, 0.05]],
                   evidence=["cloudy"], evidence_card=[2]),
        TabularCPD("wet", 2, [[0.9, 0.1], [0.1, 0.9]], evidence=["rain"], evidence_card=[2]),
    )
    assert bn.check_model()
    return bn


def test_bayesian_network_import_matches_pgmpy_inference():
    bn = _tree_bayes_net()
    graph = pgmpy_io.from_pgmpy(bn)
    assert sorted(graph.names) == ["cloudy", "rain", "sprinkler", "wet"]
    assert graph.variable("sprinkler").cardinality == 3
    # Each CPD became a table over (child, *parents) with log-probabilities.
    cpd = bn.get_cpds("rain")
    (table,) = [f for f in graph.factors if f.variables == ("rain", "cloudy")]
    assert_allclose(np.exp(table.log_potentials), cpd.get_values())
    inference = VariableElimination(bn)
    ours = _beliefs(graph, {"wet": 1})
    for name in ("cloudy", "rain", "sprinkler"):
        want = inference.query([name], evidence={"wet": 1}, show_progress=False).values
        assert_allclose(ours[name], want, atol=1e-6)


def _loopy_markov_network():
    rng = np.random.default_rng(7)
    mn = DiscreteMarkovNetwork([("a", "b"), ("b", "c"), ("a", "c")])
    mn.add_factors(
        DiscreteFactor(["a", "b"], [2, 3], rng.uniform(0.1, 1.0, size=6)),
        DiscreteFactor(["b", "c"], [3, 2], rng.uniform(0.1, 1.0, size=6)),
        DiscreteFactor(["a", "c"], [2, 2], rng.uniform(0.1, 1.0, size=4)),
    )
    assert mn.check_model()
    return mn


def test_markov_network_import_and_export_round_trip():
    mn = _loopy_markov_network()
    graph = pgmpy_io.from_pgmpy(mn)
    # Loopy, so compare exact answers: our enumeration against pgmpy VE (normalised).
    inference = VariableElimination(mn)
    for name, ours in zip(graph.names, exact.marginals(graph), strict=True):
        want = inference.query([name], show_progress=False).values
        assert_allclose(ours, want / want.sum(), atol=1e-12)
    again = pgmpy_io.from_pgmpy(pgmpy_io.to_pgmpy_markov_network(graph))
    assert again.names == graph.names
    for f, g in zip(graph.factors, again.factors, strict=True):
        assert f.variables == g.variables
        assert_allclose(g.log_potentials, f.log_potentials, atol=1e-12)


def test_factor_graph_import_and_export_keep_state_names_and_logic():
    graph = FactorGraph(
        [Variable("x", 2, ("off", "on")), Variable("y", 2), Variable("z", 2)],
        [OrFactor(("x", "y"), "z"), TableFactor(("x",), np.log([0.25, 0.75]))],
    )
    exported = pgmpy_io.to_pgmpy_factor_graph(graph)
    assert isinstance(exported, PgmpyFactorGraph) and exported.check_model()
    back = pgmpy_io.from_pgmpy(exported)
    assert back.variable("x").state_names == ("off", "on")
    assert back.variable("y").state_names is None
    # The OR factor comes back enumerated: 0 where z == x or y, -inf elsewhere.
    (logic,) = [f for f in back.factors if len(f.variables) == 3]
    assert_allclose(logic.log_potentials, graph.factors[0].log_table((2, 2, 2)))
    # y has no factor but the OR one; exact marginals by name-keyed evidence.
    want = pgmpy_io.exact_marginals(graph, {"x": "on"})
    assert_allclose(want["z"], [0.0, 1.0])
    assert_allclose(want["y"], [0.5, 0.5])


def test_import_rejects_unsupported_models():
    with pytest.raises(ValueError, match="cannot import a dict"):
        pgmpy_io.from_pgmpy({})
