"""Shared fixtures for the factor-graph tests: strict rank promotion, random tree graphs."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from prototypes.graphs import FactorGraph, PairwiseFactor, TableFactor, Variable


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    """STYLE.md section 5: tests run with implicit rank promotion turned into an error."""
    with jax.numpy_rank_promotion("raise"):
        yield


def random_tree(
    seed: int, max_vars: int = 12, max_joint: int = 1 << 18, prefix: str = ""
) -> FactorGraph:
    """A random factor graph whose factor-variable graph is a tree.

    2..max_vars variables of cardinality 2-4 (shrunk until the joint has <= max_joint
    entries, so brute force stays cheap), named f"{prefix}x{i}"; a random unary table on every
    variable; each new variable attaches to a random earlier one through a 2-variable
    `TableFactor` (or, when both are binary, usually a `PairwiseFactor`: few group shapes keep
    compiles short), or (30%) two new variables attach to one earlier variable through a
    single 3-variable `TableFactor`. All log-potentials are N(0, 1), so ties are measure-zero.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, max_vars + 1))
    cards = rng.integers(2, 5, size=n)
    while np.prod(cards) > max_joint:
        cards[rng.choice(np.flatnonzero(cards > 2))] -= 1
    names = [f"{prefix}x{i}" for i in range(n)]
    variables = [Variable(name, int(c)) for name, c in zip(names, cards, strict=True)]
    factors = [
        TableFactor((name,), rng.normal(size=(c,))) for name, c in zip(names, cards, strict=True)
    ]
    i = 1
    while i < n:
        parent = int(rng.integers(0, i))
        if i + 1 < n and rng.random() < 0.3:
            scope = (names[parent], names[i], names[i + 1])
            table = rng.normal(size=(cards[parent], cards[i], cards[i + 1]))
            factors.append(TableFactor(scope, table))
            i += 2
            continue
        table = rng.normal(size=(cards[parent], cards[i]))
        if cards[parent] == cards[i] == 2 and rng.random() < 0.7:
            factors.append(PairwiseFactor((names[parent], names[i]), table))
        else:  # the child first, to exercise non-sorted scopes
            factors.append(TableFactor((names[i], names[parent]), table.T))
        i += 1
    order = rng.permutation(len(factors))  # factor order must not matter
    return FactorGraph(variables, [factors[k] for k in order])


def forest(seeds) -> tuple[list[FactorGraph], FactorGraph]:
    """Random trees `random_tree(seed, prefix=f"t{seed}_")` and their disjoint union (itself a
    tree-structured factor graph, so BP on it is exact on every component at once: one
    compile covers many random structures). Variables keep their per-tree order, tree by tree.
    """
    trees = [random_tree(seed, prefix=f"t{seed}_") for seed in seeds]
    union = FactorGraph(
        [v for t in trees for v in t.variables], [f for t in trees for f in t.factors]
    )
    return trees, union
