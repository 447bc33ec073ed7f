"""Interchange with pgmpy 1.1.2: import its discrete models, export ours, exact reference answers.

pgmpy is the interoperability layer; the fast inference is `bp.py`. Notes on pgmpy 1.1.2:
plain `BayesianNetwork` and `MarkovNetwork` are deprecated stubs that raise (use
`DiscreteBayesianNetwork` / `DiscreteMarkovNetwork`); `VariableElimination(FactorGraph).query`
fails, so exact answers go through a `DiscreteMarkovNetwork`; VE on a Markov network returns
unnormalised factors, which `exact_marginals` normalises.

Variable names become `str(name)`; state names are kept unless they are just 0..card-1.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping

import numpy as np
from pgmpy.factors.discrete import DiscreteFactor
from pgmpy.inference import VariableElimination
from pgmpy.models import DiscreteBayesianNetwork, DiscreteMarkovNetwork
from pgmpy.models import FactorGraph as PgmpyFactorGraph

from prototypes.graphs.factors import TableFactor
from prototypes.graphs.graph import FactorGraph
from prototypes.graphs.variables import Variable

__all__ = ["from_pgmpy", "to_pgmpy_markov_network", "to_pgmpy_factor_graph", "exact_marginals"]


def _factor_to_table(factor: DiscreteFactor) -> TableFactor:
    values = np.asarray(factor.values, dtype=np.float64).reshape(tuple(factor.cardinality))
    if (values < 0).any():
        raise ValueError(f"pgmpy factor over {factor.variables} has negative values")
    with np.errstate(divide="ignore"):
        return TableFactor(tuple(str(v) for v in factor.variables), np.log(values))


def _variables_from_factors(nodes, factors) -> tuple[Variable, ...]:
    cards: dict[str, int] = {}
    states: dict[str, list] = {}
    for factor in factors:
        for var, card in zip(factor.variables, factor.cardinality, strict=True):
            name = str(var)
            if cards.setdefault(name, int(card)) != int(card):
                raise ValueError(
                    f"variable {name!r} has cardinality {int(card)} in one factor and "
                    f"{cards[name]} in another; they must agree"
                )
            states.setdefault(name, list(factor.state_names.get(var, range(card))))
    variables = []
    for node in nodes:
        name = str(node)
        if name not in cards:
            raise ValueError(f"variable {name!r} is in no factor, so its cardinality is unknown")
        names = tuple(states[name])
        keep = names != tuple(range(cards[name]))
        variables.append(Variable(name, cards[name], names if keep else None))
    return tuple(variables)


def from_pgmpy(model) -> FactorGraph:
    """Build our `FactorGraph` from a pgmpy discrete model.

    Args:
        model: a `DiscreteBayesianNetwork` (each CPD becomes a table factor over
            (child, *parents)), `DiscreteMarkovNetwork` or pgmpy `FactorGraph`.

    Returns:
        A `FactorGraph` of `TableFactor`s with log-potentials log(values).

    Raises:
        ValueError: an unsupported model type, or inconsistent cardinalities.
    """
    if isinstance(model, DiscreteBayesianNetwork):
        factors = [cpd.to_factor() for cpd in model.get_cpds()]
        nodes = list(model.nodes())
    elif isinstance(model, DiscreteMarkovNetwork):
        factors = list(model.get_factors())
        nodes = list(model.nodes())
    elif isinstance(model, PgmpyFactorGraph):
        factors = list(model.get_factors())
        nodes = list(model.get_variable_nodes())
    else:
        raise ValueError(
            f"cannot import a {type(model).__name__}; allowed: DiscreteBayesianNetwork, "
            "DiscreteMarkovNetwork, FactorGraph"
        )
    variables = _variables_from_factors(nodes, factors)
    return FactorGraph(variables, tuple(_factor_to_table(f) for f in factors))


def _pgmpy_factors(graph: FactorGraph) -> list[DiscreteFactor]:
    def states(var: Variable) -> list:
        return list(var.state_names) if var.state_names else list(range(var.cardinality))

    out = []
    covered: set[str] = set()
    for factor in graph.factors:
        names = factor.variables
        cards = graph.cardinalities_of(names)
        out.append(DiscreteFactor(
            list(names), list(cards), np.exp(factor.log_table(cards)),
            state_names={n: states(graph.variable(n)) for n in names},
        ))
        covered.update(names)
    for var in graph.variables:  # pgmpy wants every variable in some factor: add uniform ones
        if var.name not in covered:
            out.append(DiscreteFactor(
                [var.name], [var.cardinality], np.ones(var.cardinality),
                state_names={var.name: states(var)},
            ))
    return out


def to_pgmpy_markov_network(graph: FactorGraph) -> DiscreteMarkovNetwork:
    """Export as a `DiscreteMarkovNetwork` (factor scopes become cliques; tables enumerated)."""
    model = DiscreteMarkovNetwork()
    model.add_nodes_from(graph.names)
    factors = _pgmpy_factors(graph)
    for factor in factors:
        model.add_edges_from(itertools.combinations(factor.variables, 2))
    model.add_factors(*factors)
    return model


def to_pgmpy_factor_graph(graph: FactorGraph) -> PgmpyFactorGraph:
    """Export as a pgmpy `FactorGraph` (every factor enumerated as a `DiscreteFactor`)."""
    model = PgmpyFactorGraph()
    model.add_nodes_from(graph.names)
    factors = _pgmpy_factors(graph)
    model.add_factors(*factors)
    model.add_nodes_from(factors)
    model.add_edges_from([(v, f) for f in factors for v in f.variables])
    return model


def exact_marginals(
    graph: FactorGraph, evidence: Mapping[str, Hashable] | None = None
) -> dict[str, np.ndarray]:
    """Exact marginals of the unobserved variables by pgmpy VariableElimination.

    Args:
        graph: our factor graph (exported to a `DiscreteMarkovNetwork` for pgmpy).
        evidence: variable name -> observed state (int, or state name).

    Returns:
        name -> normalised [card] probabilities, for every variable not in `evidence`.
    """
    evidence = dict(evidence or {})
    pg_evidence = {}
    for name, value in evidence.items():
        var = graph.variable(name)
        state = var.state_index(value)
        pg_evidence[name] = var.state_names[state] if var.state_names else state
    inference = VariableElimination(to_pgmpy_markov_network(graph))
    out = {}
    for name in graph.names:
        if name in evidence:
            continue
        factor = inference.query([name], evidence=pg_evidence or None, show_progress=False)
        values = np.asarray(factor.values, dtype=np.float64)
        out[name] = values / values.sum()
    return out
