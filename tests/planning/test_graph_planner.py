"""Max-product planning on an unrolled DBN against brute force and the exact MAP."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prototypes.envs.factored_mdp import FactoredMDP, FactoredSpec, RewardTerm, make_random_mdp
from prototypes.graphs import BPConfig, exact
from prototypes.planning.graph_planner import make_graph_planner, unrolled_graph


def _brute_force_best_first_actions(dbn: FactoredMDP, root, horizon):
    """First actions of the best action sequences of a deterministic DBN, and the best return."""
    returns = {}
    for seq in itertools.product(range(dbn.spec.num_actions), repeat=horizon):
        s, ret = np.asarray(root), 0.0
        for a in seq:
            s = np.array([p.argmax() for p in dbn.transition_probs(s, a)])
            ret += dbn.spec.reward_np(s[None])[0]
        returns[seq] = ret
    best = max(returns.values())
    return {seq[0] for seq, r in returns.items() if r > best - 1e-9}, best


def _deterministic_mdp(seed, num_vars, cardinality, num_actions, max_parents):
    mdp = make_random_mdp(
        np.random.default_rng(seed),
        num_vars=num_vars,
        cardinality=cardinality,
        num_actions=num_actions,
        max_parents=max_parents,
        determinism=1.0,
    )
    rng = np.random.default_rng(seed + 100)
    terms = tuple(RewardTerm((n,), rng.normal(size=cardinality)) for n in mdp.spec.names)
    spec = FactoredSpec(mdp.spec.names, mdp.spec.cards, num_actions, terms)
    return FactoredMDP(spec, mdp.parents, mdp.cpts)


def test_graph_planning_equals_brute_force_on_a_chain():
    # one variable, x' depends on (x, a): the unrolled graph is a tree, so max-product is exact
    spec0 = FactoredSpec(("x",), (3,), 3, (RewardTerm(("x",), np.array([0.0, -1.0, 0.7])),))
    cpt = np.eye(3)[np.array([[1, 2, 0], [0, 0, 2], [2, 1, 1]])]  # [x, a, x']
    dbn = FactoredMDP(spec0, ((0, 1),), (cpt,))
    planner = make_graph_planner(dbn, horizon=3, bp_cfg=BPConfig(12, 0.0, 0.0))  # > diameter
    plan = jax.jit(planner.plan)
    for root in range(3):
        first, actions, _ = plan(jnp.array([root]))
        best_first, best = _brute_force_best_first_actions(dbn, [root], 3)
        assert int(first) in best_first
        # the decoded sequence achieves the optimum
        s, ret = np.array([root]), 0.0
        for a in np.asarray(actions):
            s = np.array([cpt[s[0], a].argmax()])
            ret += spec0.reward_np(s[None])[0]
        assert ret == pytest.approx(best)


def test_graph_planning_equals_brute_force_on_a_small_factored_mdp():
    # parents x0' <- (x0, a), x1' <- (x0, a): two factors share (x0@t, a@t), so the unrolled
    # graph is loopy; checked from every initial state, and against the exact MAP.
    dbn = _deterministic_mdp(seed=2, num_vars=2, cardinality=2, num_actions=2, max_parents=2)
    horizon = 3
    planner = make_graph_planner(dbn, horizon, BPConfig(60, 0.0, 0.5))
    plan = jax.jit(planner.plan)
    graph = unrolled_graph(dbn, horizon)
    for root in itertools.product(range(2), repeat=2):
        first, _, _ = plan(jnp.array(root))
        best_first, _ = _brute_force_best_first_actions(dbn, root, horizon)
        assert int(first) in best_first, (root, int(first), best_first)
        ev = planner.compiled.evidence(clamp={"x0@0": root[0], "x1@0": root[1]})
        map_first = exact.map_assignment(graph, ev)[graph.index("action@0")]
        assert map_first in best_first  # the graph's exact MAP is a best plan too


def test_unrolled_graph_has_one_factor_per_variable_step_and_reward_term():
    # 2 state variables over horizon 3: 2 * (3 + 1) states + 3 actions = 11 variables;
    # per step one table per variable and one per reward term: 3 * (2 + 2) = 12 factors
    dbn = _deterministic_mdp(seed=2, num_vars=2, cardinality=2, num_actions=2, max_parents=2)
    graph = unrolled_graph(dbn, 3)
    assert len(graph.variables) == 11 and len(graph.factors) == 12
    assert graph.variables[graph.index("action@2")].cardinality == 2
    with pytest.raises(ValueError, match="horizon is 0; allowed: >= 1"):
        unrolled_graph(dbn, 0)
    with pytest.raises(ValueError, match="needs max-product"):
        make_graph_planner(dbn, 3, BPConfig(10, 1.0, 0.0))
