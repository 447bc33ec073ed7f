"""Factor graphs: a host-side description, compiled once (numpy) into flat index arrays.

The compiled layout follows PGMax. Every (factor, variable) pair is an *edge*; each edge has one
*edge state* per state of its variable, and all factor-to-variable messages live in one flat
array over edge states (length M). Variable states are flattened the same way (length S, the
sum of cardinalities); evidence and beliefs are arrays over them. Factors are grouped by kind and
size (`factors.FACTOR_KINDS`), each group's edges are contiguous, so BP updates each group with
one vectorised op and concatenates the results.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from prototypes.graphs.factors import FACTOR_KINDS, Factor, FactorGroup, compile_group
from prototypes.graphs.variables import Variable

__all__ = ["FactorGraph", "CompiledGraph", "compile_graph"]


def _names_hint(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


@dataclass(frozen=True, eq=False)
class FactorGraph:
    """Variables and the factors over them (host-side, validated at construction).

    Attributes:
        variables: the variables, names unique; their order fixes the variable index.
        factors: the factors; each names only variables in `variables`.

    Raises:
        ValueError: duplicate variable names, or a factor that does not fit its variables
            (e.g. a table whose shape is not the variables' cardinalities).
        KeyError: a factor names an unknown variable.
    """

    variables: tuple[Variable, ...]
    factors: tuple[Factor, ...]

    def __post_init__(self):
        variables, factors = tuple(self.variables), tuple(self.factors)
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "factors", factors)
        names = [v.name for v in variables]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"variable name {dup!r} is used twice; names must be unique")
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})
        for factor in factors:
            if type(factor) not in FACTOR_KINDS:
                raise ValueError(
                    f"factor type {type(factor).__name__} has no registered kind; allowed: "
                    f"{', '.join(t.__name__ for t in FACTOR_KINDS)}"
                )
            factor.check(self.cardinalities_of(factor.variables))

    @property
    def names(self) -> tuple[str, ...]:
        """Variable names in index order."""
        return tuple(v.name for v in self.variables)

    def index(self, name: str) -> int:
        """The index of variable `name`.

        Raises:
            KeyError: if there is no such variable.
        """
        try:
            return self._index[name]
        except (KeyError, TypeError):
            raise KeyError(
                f"unknown variable {name!r}; known variables: {_names_hint(self.names)}"
            ) from None

    def variable(self, name: str) -> Variable:
        """The `Variable` called `name` (KeyError if unknown)."""
        return self.variables[self.index(name)]

    def cardinalities_of(self, names: Sequence[str]) -> tuple[int, ...]:
        """Cardinalities of the named variables (KeyError if one is unknown)."""
        return tuple(self.variables[self.index(n)].cardinality for n in names)


@dataclass(frozen=True, eq=False)
class CompiledGraph:
    """A `FactorGraph` compiled into flat numpy index arrays (see the module docstring).

    Sizes: V variables, S = sum of cardinalities (variable states), E edges, M edge states,
    C = max cardinality.

    Attributes:
        graph: the source `FactorGraph`.
        cardinalities: [V] int32.
        var_state_offsets: [V + 1] int32; variable v's states are var_state_offsets[v] + s.
        groups: the compiled factor groups, in edge order.
        group_slices: (start, stop) edge-state range of each group in the message array.
        edge_vars: [E] int32 variable of each edge.
        edge_state_offsets: [E + 1] int32 start of each edge's states in the message array.
        edge_state_var_state: [M] int32 variable state of each edge state.
        edge_state_edge: [M] int32 edge of each edge state (sorted).
        pad_index: [V, C] int32 variable state for (variable, state), clipped where padded.
        pad_mask: [V, C] bool, True where state < cardinality.
        edge_pad_index: [E, C] int32 edge state for (edge, state), clipped where padded.
        edge_pad_mask: [E, C] bool, True where state < the edge's cardinality.
        var_state_edge_states: [S, D] int32 edge states incident to each variable state (D is
            the largest variable degree), padded with 0 where `var_state_edge_mask` is False.
        var_state_edge_mask: [S, D] bool.
    """

    graph: FactorGraph
    cardinalities: np.ndarray
    var_state_offsets: np.ndarray
    groups: tuple[FactorGroup, ...]
    group_slices: tuple[tuple[int, int], ...]
    edge_vars: np.ndarray
    edge_state_offsets: np.ndarray
    edge_state_var_state: np.ndarray
    edge_state_edge: np.ndarray
    pad_index: np.ndarray
    pad_mask: np.ndarray
    edge_pad_index: np.ndarray
    edge_pad_mask: np.ndarray
    var_state_edge_states: np.ndarray
    var_state_edge_mask: np.ndarray

    @property
    def num_variables(self) -> int:
        """V."""
        return len(self.cardinalities)

    @property
    def num_var_states(self) -> int:
        """S, the length of evidence and flat belief arrays."""
        return int(self.var_state_offsets[-1])

    @property
    def num_edges(self) -> int:
        """E."""
        return len(self.edge_vars)

    @property
    def num_edge_states(self) -> int:
        """M, the length of the flat message array."""
        return int(self.edge_state_offsets[-1])

    @property
    def max_cardinality(self) -> int:
        """C, the padded state axis of `Beliefs`."""
        return int(self.pad_mask.shape[1])

    @property
    def log_potentials(self) -> tuple[np.ndarray, ...]:
        """The graph's own parameters: one array per group (pass to `BP.run`, or replace)."""
        return tuple(g.log_potentials for g in self.groups)

    def evidence(
        self,
        clamp: Mapping[str, Hashable] | None = None,
        soft: Mapping[str, ArrayLike] | None = None,
        dtype: type = np.float32,
    ) -> np.ndarray:
        """A flat evidence array [S]: log-potential biases added to each variable state.

        Args:
            clamp: variable name -> observed state (int, or a state name); other states of
                that variable get -inf.
            soft: variable name -> log-potential vector [cardinality] added to its states.
            dtype: float dtype of the result.

        Returns:
            evidence: [S] array, zero for unobserved variables.

        Raises:
            KeyError: an unknown variable name.
            ValueError: a state outside the variable's range, or a soft vector of wrong length.
        """
        out = np.zeros(self.num_var_states, dtype=dtype)
        for name, vec in (soft or {}).items():
            var = self.graph.variable(name)
            vec = np.asarray(vec, dtype=dtype)
            if vec.shape != (var.cardinality,):
                raise ValueError(
                    f"soft evidence for variable {name!r} has shape {vec.shape}; "
                    f"expected ({var.cardinality},)"
                )
            start = self.var_state_offsets[self.graph.index(name)]
            out[start : start + var.cardinality] += vec
        for name, value in (clamp or {}).items():
            var = self.graph.variable(name)
            start = self.var_state_offsets[self.graph.index(name)]
            state = var.state_index(value)
            block = np.full(var.cardinality, -np.inf, dtype=dtype)
            block[state] = 0.0
            out[start : start + var.cardinality] += block
        return out

    def evidence_batch(
        self, names: Sequence[str], values: ArrayLike, dtype: type = np.float32
    ) -> np.ndarray:
        """Clamping evidence for a batch: `values[b, j]` is the state of `names[j]` in row b.

        Args:
            names: k variable names.
            values: [B, k] integer states.
            dtype: float dtype of the result.

        Returns:
            evidence: [B, S] array (0 / -inf).

        Raises:
            KeyError: an unknown variable name.
            ValueError: a state outside its variable's range.
        """
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ValueError(f"values has shape {values.shape}; expected (B, {len(names)})")
        ids = np.array([self.graph.index(n) for n in names], dtype=np.int64)
        cards = self.cardinalities[ids]
        bad = (values < 0) | (values >= cards)
        if bad.any():
            b, j = np.argwhere(bad)[0]
            raise ValueError(
                f"evidence for variable {names[j]!r} is {int(values[b, j])} (row {b}); allowed "
                f"states are 0..{cards[j] - 1}"
            )
        out = np.zeros((len(values), self.num_var_states), dtype=dtype)
        rows = np.arange(len(values))[:, None]
        for j, v in enumerate(ids):
            start = self.var_state_offsets[v]
            out[:, start : start + cards[j]] = -np.inf
        out[rows, self.var_state_offsets[ids][None, :] + values] = 0.0
        return out

    def unpad(self, padded: ArrayLike) -> dict[str, np.ndarray]:
        """Split a padded [..., V, C] array (e.g. `Beliefs.marginals`) into name -> [..., card]."""
        padded = np.asarray(padded)
        return {
            v.name: padded[..., i, : v.cardinality] for i, v in enumerate(self.graph.variables)
        }


def compile_graph(graph: FactorGraph) -> CompiledGraph:
    """Compile `graph` into flat index arrays (host-side numpy; do this once per structure).

    Factors are grouped by their kind's group key (first-seen order), so every group is one
    vectorised message update in BP.
    """
    cards = np.array([v.cardinality for v in graph.variables], dtype=np.int32)
    var_state_offsets = np.concatenate([[0], np.cumsum(cards)]).astype(np.int32)

    grouped: dict[Hashable, list[int]] = {}
    for i, factor in enumerate(graph.factors):
        key = FACTOR_KINDS[type(factor)].group_key(
            factor, graph.cardinalities_of(factor.variables)
        )
        grouped.setdefault(key, []).append(i)

    groups, slices, edge_vars = [], [], []
    start = 0
    for key, ids in grouped.items():
        factors = [graph.factors[i] for i in ids]
        var_ids = [np.array([graph.index(n) for n in f.variables]) for f in factors]
        fcards = [graph.cardinalities_of(f.variables) for f in factors]
        group = compile_group(key, ids, factors, var_ids, fcards)
        groups.append(group)
        size = int(cards[group.edge_vars].sum())
        slices.append((start, start + size))
        start += size
        edge_vars.append(group.edge_vars)

    edge_vars = np.concatenate(edge_vars) if edge_vars else np.zeros((0,), np.int32)
    edge_cards = cards[edge_vars]
    edge_state_offsets = np.concatenate([[0], np.cumsum(edge_cards)]).astype(np.int32)
    num_edge_states = int(edge_state_offsets[-1])
    edge_state_edge = np.repeat(np.arange(len(edge_vars)), edge_cards).astype(np.int32)
    within = np.arange(num_edge_states) - edge_state_offsets[edge_state_edge]
    edge_state_var_state = (var_state_offsets[edge_vars][edge_state_edge] + within).astype(
        np.int32
    )

    max_card = int(cards.max()) if len(cards) else 1
    states = np.arange(max_card)[None, :]
    pad_mask = states < cards[:, None]
    pad_index = np.where(pad_mask, var_state_offsets[:-1, None] + states, 0).astype(np.int32)

    edge_pad_mask = states < edge_cards[:, None]
    edge_pad_index = np.where(edge_pad_mask, edge_state_offsets[:-1, None] + states, 0)

    # Gather layout of "sum the messages into each variable state": row s lists the edge states
    # of variable state s (one per incident edge), padded to the largest degree.
    num_var_states = int(var_state_offsets[-1])
    order = np.argsort(edge_state_var_state, kind="stable")
    counts = np.bincount(edge_state_var_state, minlength=num_var_states)
    max_degree = int(counts.max()) if num_edge_states else 0
    rank = np.arange(num_edge_states) - np.repeat(np.cumsum(counts) - counts, counts)
    var_state_edge_states = np.zeros((num_var_states, max_degree), dtype=np.int32)
    var_state_edge_states[edge_state_var_state[order], rank] = order
    var_state_edge_mask = np.arange(max_degree)[None, :] < counts[:, None]

    return CompiledGraph(
        graph=graph,
        cardinalities=cards,
        var_state_offsets=var_state_offsets,
        groups=tuple(groups),
        group_slices=tuple(slices),
        edge_vars=edge_vars.astype(np.int32),
        edge_state_offsets=edge_state_offsets,
        edge_state_var_state=edge_state_var_state,
        edge_state_edge=edge_state_edge,
        pad_index=pad_index,
        pad_mask=pad_mask,
        edge_pad_index=edge_pad_index.astype(np.int32),
        edge_pad_mask=edge_pad_mask,
        var_state_edge_states=var_state_edge_states,
        var_state_edge_mask=var_state_edge_mask,
    )
