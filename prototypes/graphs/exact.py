"""Exact inference by brute-force enumeration (NumPy): the reference for BP on small graphs.

Builds the full log joint table over all variables, so it is only for graphs whose joint has at
most `MAX_JOINT_SIZE` entries.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from prototypes.graphs.graph import FactorGraph

__all__ = ["MAX_JOINT_SIZE", "log_joint", "marginals", "map_assignment"]

MAX_JOINT_SIZE = 1 << 24  # largest joint table enumerated (16M entries, 128 MB in float64)


def log_joint(graph: FactorGraph, evidence: ArrayLike | None = None) -> np.ndarray:
    """Unnormalised log joint: the sum of all factors' log tables plus evidence.

    Args:
        graph: the factor graph (V variables).
        evidence: optional flat [S] log-potential bias per variable state (the layout of
            `CompiledGraph.evidence`).

    Returns:
        [card_0, ..., card_{V-1}] float64 array.

    Raises:
        ValueError: if the joint has more than `MAX_JOINT_SIZE` entries, or evidence has the
            wrong length.
    """
    cards = tuple(v.cardinality for v in graph.variables)
    size = int(np.prod(cards, dtype=np.int64))
    if size > MAX_JOINT_SIZE:
        raise ValueError(f"joint table has {size} entries; allowed at most {MAX_JOINT_SIZE}")
    num_vars = len(cards)
    out = np.zeros(cards)
    for factor in graph.factors:
        axes = [graph.index(n) for n in factor.variables]
        table = factor.log_table(graph.cardinalities_of(factor.variables))
        order = np.argsort(axes)
        shape = [1] * num_vars
        for ax in axes:
            shape[ax] = cards[ax]
        out = out + table.transpose(order).reshape(shape)
    if evidence is not None:
        evidence = np.asarray(evidence, dtype=np.float64)
        if evidence.shape != (sum(cards),):
            raise ValueError(f"evidence has shape {evidence.shape}; expected ({sum(cards)},)")
        offsets = np.concatenate([[0], np.cumsum(cards)])
        for v in range(num_vars):
            shape = [1] * num_vars
            shape[v] = cards[v]
            out = out + evidence[offsets[v] : offsets[v + 1]].reshape(shape)
    return out


def marginals(graph: FactorGraph, evidence: ArrayLike | None = None) -> list[np.ndarray]:
    """Exact marginal probabilities of every variable (a list of [card] arrays, index order)."""
    joint = log_joint(graph, evidence)
    prob = np.exp(joint - joint.max())
    prob /= prob.sum()
    axes = range(prob.ndim)
    return [prob.sum(axis=tuple(a for a in axes if a != v)) for v in axes]


def map_assignment(graph: FactorGraph, evidence: ArrayLike | None = None) -> np.ndarray:
    """The most probable joint assignment [V] (first in C order among ties)."""
    joint = log_joint(graph, evidence)
    return np.array(np.unravel_index(np.argmax(joint), joint.shape), dtype=np.int64)
