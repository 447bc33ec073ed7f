"""Factor graphs and loopy belief propagation in JAX (PGMax's design, rebuilt on current JAX).

Modules:
    variables: `Variable` (name, cardinality, optional state names).
    factors: factor types (`TableFactor`, `PairwiseFactor`, `OrFactor`, `AndFactor`) and the
        registry of their vectorised message updates (`FACTOR_KINDS`).
    graph: `FactorGraph` (host-side description) and `compile_graph` -> `CompiledGraph`
        (flat index arrays, evidence builders).
    bp: `make_bp(BPConfig, CompiledGraph)` -> pure sum-/max-product loopy BP.
    exact: brute-force enumeration (the reference on small graphs).
    pgmpy_io: pgmpy import/export and exact VariableElimination marginals (imported on demand,
        `from prototypes.graphs import pgmpy_io`, since pgmpy is slow to import).
"""

from prototypes.graphs.bp import BP, Beliefs, BPConfig, BPState, LogPotentials, make_bp
from prototypes.graphs.factors import (
    FACTOR_KINDS,
    NEG_INF,
    AndFactor,
    Factor,
    FactorGroup,
    FactorKind,
    OrFactor,
    PairwiseFactor,
    TableFactor,
    register_factor_kind,
)
from prototypes.graphs.graph import CompiledGraph, FactorGraph, compile_graph
from prototypes.graphs.variables import Variable

__all__ = [
    "AndFactor",
    "BP",
    "BPConfig",
    "BPState",
    "Beliefs",
    "CompiledGraph",
    "FACTOR_KINDS",
    "Factor",
    "FactorGraph",
    "FactorGroup",
    "FactorKind",
    "LogPotentials",
    "NEG_INF",
    "OrFactor",
    "PairwiseFactor",
    "TableFactor",
    "Variable",
    "compile_graph",
    "make_bp",
    "register_factor_kind",
]
