"""Factor types and the registry of their vectorised BP message updates.

Every factor type has a host-side description (a frozen dataclass naming its variables) and a
`FactorKind` in `FACTOR_KINDS`: how factors of that type are grouped (by type and size), how a
group is compiled on the host into constant index arrays and a parameter array, and the pure
message update that maps a group's variable-to-factor messages to its factor-to-variable messages
in one vectorised op. The design follows PGMax (`pgmax/factor/__init__.py`).

Message conventions (shared with `bp.py`): messages are log-space vectors, one entry per state
of the edge's variable, flattened edge by edge in the group's edge order. `temperature` T is a
Python float: T = 1 gives sum-product, T = 0 max-product, and in general a factor-to-variable
message is T * log sum_config exp((log_potential + incoming) / T) (max over configs at T = 0).

Types:
    TableFactor: any arity, an enumerated log-potential table; grouped by arity k, updated by a
        gather over the flat [configs, k] configuration array and segment max / logsumexp.
    PairwiseFactor: two variables, a [c0, c1] log-potential matrix (dense batched update).
    OrFactor / AndFactor: binary parents and a binary child that equals OR / AND of the parents
        (hard constraint; closed-form updates, linear in the number of parents).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = [
    "NEG_INF",
    "TableFactor",
    "PairwiseFactor",
    "OrFactor",
    "AndFactor",
    "Factor",
    "FactorKind",
    "FactorGroup",
    "FACTOR_KINDS",
    "register_factor_kind",
    "compile_group",
    "lse_temperature",
    "segment_lse_temperature",
]

# Messages, evidence and beliefs are clipped from below at this finite stand-in for log(0):
# it keeps every message finite (no inf - inf = nan in "belief minus own message", in damping
# or in the convergence measure) while exp(NEG_INF - anything finite) is exactly 0.
NEG_INF = -1e30


# ---------------------------------------------------------------------------------------------
# Temperature-controlled reductions.


def lse_temperature(x: Float[Array, ...], axis: int, temperature: float) -> Float[Array, ...]:
    """T * logsumexp(x / T) along `axis`; the max at T = 0."""
    if temperature == 0.0:
        return jnp.max(x, axis=axis)
    return temperature * jax.nn.logsumexp(x / temperature, axis=axis)


def _lse2(x: Array, y: Array, temperature: float) -> Array:
    """Elementwise T * logaddexp(x / T, y / T); the max at T = 0."""
    if temperature == 0.0:
        return jnp.maximum(x, y)
    return temperature * jnp.logaddexp(x / temperature, y / temperature)


def segment_lse_temperature(
    x: Float[Array, " N"], segment_ids: Array, num_segments: int, temperature: float
) -> Float[Array, " S"]:
    """Per-segment T * logsumexp(x / T) (segment max at T = 0); empty or all -inf -> -inf."""
    seg_max = jax.ops.segment_max(x, segment_ids, num_segments)
    if temperature == 0.0:
        return seg_max
    safe = jnp.where(jnp.isfinite(seg_max), seg_max, 0.0)
    total = jax.ops.segment_sum(jnp.exp((x - safe[segment_ids]) / temperature), segment_ids,
                                num_segments)
    return safe + temperature * jnp.log(total)


# ---------------------------------------------------------------------------------------------
# Factor descriptions (host side).


def _check_variables(variables: Sequence[str], what: str) -> tuple[str, ...]:
    variables = tuple(variables)
    if not variables or not all(isinstance(v, str) for v in variables):
        raise ValueError(f"{what} needs a non-empty sequence of variable names, got {variables!r}")
    if len(set(variables)) != len(variables):
        raise ValueError(f"{what} over {variables} repeats a variable; each may appear once")
    return variables


def _check_binary(kind: str, variables: tuple[str, ...], cards: tuple[int, ...]) -> None:
    for name, card in zip(variables, cards, strict=True):
        if card != 2:
            raise ValueError(
                f"{kind} factor variable {name!r} has cardinality {card}; allowed: 2 (binary)"
            )


@dataclass(frozen=True, eq=False)
class TableFactor:
    """A factor given by its full log-potential table.

    Attributes:
        variables: the variable names, in table-axis order.
        log_potentials: array of shape (card(v) for v in variables); entries in [-inf, inf).
    """

    variables: tuple[str, ...]
    log_potentials: np.ndarray  # shape = cardinalities of `variables`

    def __post_init__(self):
        object.__setattr__(self, "variables", _check_variables(self.variables, "TableFactor"))
        table = np.asarray(self.log_potentials, dtype=np.float64)
        if np.isnan(table).any() or np.isposinf(table).any():
            raise ValueError(f"TableFactor over {self.variables} has NaN or +inf log-potentials")
        object.__setattr__(self, "log_potentials", table)

    def check(self, cards: tuple[int, ...]) -> None:
        """Raise ValueError if the table shape does not match the variables' cardinalities."""
        if self.log_potentials.shape != tuple(cards):
            raise ValueError(
                f"factor over {self.variables} has table shape {self.log_potentials.shape}; "
                f"expected {tuple(cards)} from the variable cardinalities"
            )

    def log_table(self, cards: tuple[int, ...]) -> np.ndarray:
        """The enumerated log-potential table, shape `cards`."""
        self.check(cards)
        return self.log_potentials


@dataclass(frozen=True, eq=False)
class PairwiseFactor:
    """A factor on two variables given by a [c0, c1] log-potential matrix."""

    variables: tuple[str, str]
    log_potentials: np.ndarray  # [card(variables[0]), card(variables[1])]

    def __post_init__(self):
        variables = _check_variables(self.variables, "PairwiseFactor")
        if len(variables) != 2:
            raise ValueError(f"PairwiseFactor needs exactly 2 variables, got {variables}")
        object.__setattr__(self, "variables", variables)
        table = np.asarray(self.log_potentials, dtype=np.float64)
        if np.isnan(table).any() or np.isposinf(table).any():
            raise ValueError(f"PairwiseFactor over {variables} has NaN or +inf log-potentials")
        object.__setattr__(self, "log_potentials", table)

    check = TableFactor.check
    log_table = TableFactor.log_table


@dataclass(frozen=True, eq=False)
class OrFactor:
    """Hard constraint child == OR(parents), on binary variables (state 1 = true)."""

    parents: tuple[str, ...]
    child: str

    def __post_init__(self):
        parents = tuple(self.parents)
        _check_variables((*parents, self.child), type(self).__name__)
        object.__setattr__(self, "parents", parents)

    @property
    def variables(self) -> tuple[str, ...]:
        """Parents, then the child (the table-axis order of `log_table`)."""
        return (*self.parents, self.child)

    def check(self, cards: tuple[int, ...]) -> None:
        """Raise ValueError unless every variable is binary."""
        _check_binary("OR", self.variables, cards)

    def log_table(self, cards: tuple[int, ...]) -> np.ndarray:
        """0 where child == OR(parents), -inf elsewhere; shape (2,) * (len(parents) + 1)."""
        self.check(cards)
        grid = np.indices((2,) * len(self.variables))
        valid = grid[-1] == grid[:-1].any(axis=0)
        return np.where(valid, 0.0, -np.inf)


@dataclass(frozen=True, eq=False)
class AndFactor:
    """Hard constraint child == AND(parents), on binary variables (state 1 = true)."""

    parents: tuple[str, ...]
    child: str

    __post_init__ = OrFactor.__post_init__
    variables = OrFactor.variables

    def check(self, cards: tuple[int, ...]) -> None:
        """Raise ValueError unless every variable is binary."""
        _check_binary("AND", self.variables, cards)

    def log_table(self, cards: tuple[int, ...]) -> np.ndarray:
        """0 where child == AND(parents), -inf elsewhere; shape (2,) * (len(parents) + 1)."""
        self.check(cards)
        grid = np.indices((2,) * len(self.variables))
        valid = grid[-1] == grid[:-1].all(axis=0)
        return np.where(valid, 0.0, -np.inf)


Factor = TableFactor | PairwiseFactor | OrFactor | AndFactor


# ---------------------------------------------------------------------------------------------
# Compiled groups and the registry.


@dataclass(frozen=True, eq=False)
class FactorGroup:
    """Factors of one kind and size, compiled on the host (numpy) for one vectorised update.

    Attributes:
        key: the group key, e.g. ("pairwise", 2, 2); key[0] names the kind.
        factor_ids: positions of the group's factors in the graph's factor tuple.
        edge_vars: [E_g] int32 variable index of each factor-to-variable edge, in group order.
        log_potentials: the group's parameters (layout chosen by the kind; may be empty).
        indices: constant index arrays used by the update.
        static: hashable sizes used by the update (static under jit).
    """

    key: tuple
    factor_ids: tuple[int, ...]
    edge_vars: np.ndarray
    log_potentials: np.ndarray
    indices: tuple[np.ndarray, ...]
    static: tuple


# update(static, indices, log_potentials, vtof [M_g], temperature) -> ftov [M_g]
UpdateFn = Callable[[tuple, tuple[Any, ...], Array, Array, float], Array]
# compile(factors, var_ids per factor, cards per factor)
#   -> (edge_vars, log_potentials, indices, static)
CompileFn = Callable[
    [Sequence[Any], Sequence[np.ndarray], Sequence[tuple[int, ...]]],
    tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...], tuple],
]


@dataclass(frozen=True)
class FactorKind:
    """How one factor type is grouped, compiled and updated.

    Attributes:
        group_key: (factor, cards) -> hashable key; factors with equal keys share a group.
        compile: builds a group's constant arrays (see `CompileFn`).
        update: the pure vectorised message update (see `UpdateFn`).
    """

    group_key: Callable[[Any, tuple[int, ...]], Hashable]
    compile: CompileFn
    update: UpdateFn


FACTOR_KINDS: dict[type, FactorKind] = {}


def register_factor_kind(factor_type: type, kind: FactorKind) -> None:
    """Register (or replace) the `FactorKind` used for factors of `factor_type`."""
    FACTOR_KINDS[factor_type] = kind


def compile_group(
    key: tuple,
    factor_ids: Sequence[int],
    factors: Sequence[Any],
    var_ids: Sequence[np.ndarray],
    cards: Sequence[tuple[int, ...]],
) -> FactorGroup:
    """Compile factors sharing `key` (all of one type) into a `FactorGroup`."""
    kind = FACTOR_KINDS[type(factors[0])]
    edge_vars, log_potentials, indices, static = kind.compile(factors, var_ids, cards)
    return FactorGroup(
        key=key,
        factor_ids=tuple(factor_ids),
        edge_vars=np.asarray(edge_vars, dtype=np.int32),
        log_potentials=log_potentials,
        indices=tuple(indices),
        static=static,
    )


# --- table factors: gather over a flat configuration array + segment reductions ---------------


def _table_compile(factors, var_ids, cards):
    edge_vars, entry_state, tables = [], [], []
    state_offset = 0
    for factor, ids, card in zip(factors, var_ids, cards, strict=True):
        k = len(card)
        configs = np.indices(card).reshape(k, -1).T  # [C, k], C order = table.ravel() order
        slot_offsets = state_offset + np.concatenate([[0], np.cumsum(card)[:-1]])
        entry_state.append(configs + slot_offsets)  # [C, k] edge state of each (config, slot)
        tables.append(factor.log_table(card).ravel())
        edge_vars.extend(ids)
        state_offset += int(sum(card))
    indices = (np.concatenate(entry_state).astype(np.int32),)  # [N, k] over all configs
    return np.asarray(edge_vars), np.concatenate(tables), indices, (state_offset,)


def _table_update(static, indices, log_potentials, vtof, temperature):
    # Table factors are grouped by arity k, so every configuration has k slots: for each
    # (config, slot) the potential plus the *other* slots' messages is an exclusive sum along
    # the slot axis (prefix + suffix, no "total minus own", which would lose a state's
    # information once a message is NEG_INF); then reduce over the configs of each edge state.
    (num_states,) = static
    (entry_state,) = indices
    incoming = vtof[entry_state]  # [N, k]
    excluded = log_potentials[:, None] + _exclusive_sum(incoming)  # [N, k]
    return segment_lse_temperature(excluded.reshape(-1), entry_state.reshape(-1), num_states,
                                   temperature)


register_factor_kind(
    TableFactor,
    FactorKind(group_key=lambda f, cards: ("table", len(cards)), compile=_table_compile,
               update=_table_update),
)


# --- pairwise factors: dense [F, c0, c1] batched update --------------------------------------


def _pairwise_compile(factors, var_ids, cards):
    ids = np.stack(var_ids)  # [F, 2]
    edge_vars = np.concatenate([ids[:, 0], ids[:, 1]])  # slot-major: all first, then all second
    tables = np.stack([f.log_table(c) for f, c in zip(factors, cards, strict=True)])
    c0, c1 = cards[0]
    return edge_vars, tables, (), (len(factors), c0, c1)


def _pairwise_update(static, indices, log_potentials, vtof, temperature):
    num, c0, c1 = static
    to_first_in = vtof[: num * c0].reshape(num, c0)  # messages from the first variables
    to_second_in = vtof[num * c0 :].reshape(num, c1)
    out_first = lse_temperature(log_potentials + to_second_in[:, None, :], 2, temperature)
    out_second = lse_temperature(log_potentials + to_first_in[:, :, None], 1, temperature)
    return jnp.concatenate([out_first.reshape(-1), out_second.reshape(-1)])


register_factor_kind(
    PairwiseFactor,
    FactorKind(
        group_key=lambda f, cards: ("pairwise", *cards),
        compile=_pairwise_compile,
        update=_pairwise_update,
    ),
)


# --- logical OR / AND factors ------------------------------------------------------------------


def _exclusive_sum(x: Array) -> Array:
    """out[..., j] = sum_{i != j} x[..., i], by prefix + suffix sums (no subtraction)."""
    zero = jnp.zeros_like(x[..., :1])
    prefix = jnp.concatenate([zero, jnp.cumsum(x, axis=-1)[..., :-1]], axis=-1)
    suffix = jnp.flip(jnp.cumsum(jnp.flip(x, -1), axis=-1), -1)
    suffix = jnp.concatenate([suffix[..., 1:], zero], axis=-1)
    return prefix + suffix


def _exclusive_max(x: Array) -> Array:
    """out[..., j] = max_{i != j} x[..., i] (-inf when there is no other i)."""
    ninf = jnp.full_like(x[..., :1], -jnp.inf)
    axis = x.ndim - 1
    prefix = jnp.concatenate([ninf, jax.lax.cummax(x, axis=axis)[..., :-1]], axis=-1)
    suffix = jax.lax.cummax(x, axis=axis, reverse=True)
    suffix = jnp.concatenate([suffix[..., 1:], ninf], axis=-1)
    return jnp.maximum(prefix, suffix)


def _log1mexp(u: Array) -> Array:
    """log(1 - exp(u)) for u <= 0, accurate at both ends; -inf at u = 0."""
    return jnp.where(u > -0.6931472, jnp.log(-jnp.expm1(u)), jnp.log1p(-jnp.exp(u)))


def _logical_compile(factors, var_ids, cards):
    ids = np.stack(var_ids)  # [F, n + 1], parents then child
    for factor, card in zip(factors, cards, strict=True):
        factor.check(card)
    num, width = ids.shape
    return ids.reshape(-1), np.zeros((0,)), (), (num, width - 1)


def _or_messages(m: Float[Array, "F n1 2"], temperature: float) -> Float[Array, "F n1 2"]:
    """Factor-to-variable messages of child = OR(parents) from incoming messages m.

    With a_i, b_i the incoming messages of parent i for states 0, 1 and c0, c1 the child's,
    and l_i = lse_T(a_i, b_i):
      to child:      (0) sum_i a_i                 (1) N(all)
      to parent j:   (1) c1 + sum_{i!=j} l_i       (0) lse_T(c0 + sum_{i!=j} a_i, c1 + N(-j))
    where N(S) is lse_T over configurations of the parents in S that are not all 0:
      T > 0:  sum_S l_i + T log(1 - exp(sum_S (a_i - l_i) / T))
      T = 0:  sum_S l_i + min(0, max_S (b_i - a_i))   (flip the cheapest parent if none is on)
    """
    a, b = m[:, :-1, 0], m[:, :-1, 1]  # [F, n] parents
    c0, c1 = m[:, -1, 0], m[:, -1, 1]  # [F] child
    lse = _lse2(a, b, temperature)
    if temperature == 0.0:
        diff = b - a
        gap_all = jnp.minimum(0.0, jnp.max(diff, axis=-1))
        gap_ex = jnp.minimum(0.0, _exclusive_max(diff))
    else:
        # (a - l) / T = -softplus((b - a) / T), computed without cancellation.
        log_p0 = -jax.nn.softplus((b - a) / temperature)
        gap_all = temperature * _log1mexp(jnp.sum(log_p0, axis=-1))
        gap_ex = temperature * _log1mexp(_exclusive_sum(log_p0))
    not_all_zero = jnp.sum(lse, axis=-1) + gap_all  # [F]
    not_all_zero_ex = _exclusive_sum(lse) + gap_ex  # [F, n]
    to_child = jnp.stack([jnp.sum(a, axis=-1), not_all_zero], axis=-1)  # [F, 2]
    to_parent_1 = c1[:, None] + _exclusive_sum(lse)
    to_parent_0 = _lse2(c0[:, None] + _exclusive_sum(a), c1[:, None] + not_all_zero_ex,
                        temperature)
    to_parents = jnp.stack([to_parent_0, to_parent_1], axis=-1)  # [F, n, 2]
    return jnp.concatenate([to_parents, to_child[:, None, :]], axis=1)


def _or_update(static, indices, log_potentials, vtof, temperature):
    num, n = static
    return _or_messages(vtof.reshape(num, n + 1, 2), temperature).reshape(-1)


def _and_update(static, indices, log_potentials, vtof, temperature):
    # AND(x) = NOT OR(NOT x): swap the states of every variable, apply OR, swap back.
    num, n = static
    flipped = jnp.flip(vtof.reshape(num, n + 1, 2), axis=-1)
    return jnp.flip(_or_messages(flipped, temperature), axis=-1).reshape(-1)


register_factor_kind(
    OrFactor,
    FactorKind(group_key=lambda f, cards: ("or", len(f.parents)), compile=_logical_compile,
               update=_or_update),
)
register_factor_kind(
    AndFactor,
    FactorKind(group_key=lambda f, cards: ("and", len(f.parents)), compile=_logical_compile,
               update=_and_update),
)
