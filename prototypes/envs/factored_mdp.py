"""Discrete factored MDPs: the task description factored models share, and a synthetic generator.

A factored task has n discrete state variables x_0..x_{n-1} (x_i in 0..card_i - 1) and one
discrete action a in 0..num_actions - 1. Its *inputs* are the n current state variables followed
by the action, so input index n is the action. The reward is additive over small tables on the
next state, R(s') = sum_k table_k[s'[scope_k]], which is what a factor graph can hold as factors.

`FactoredSpec` is that description (variables, actions, reward terms, termination); it is all a
factored world model or a planner needs to know about a task. `FactoredMDP` adds the true
dynamics as a dynamic Bayesian network: one conditional table P(x'_i | parents_i) per next-state
variable. `make_random_mdp` draws one with known parent sets and a controllable determinism, and
`sample_transitions` draws i.i.d. transitions from it (uniform states and actions, so every
parent configuration is visited: the setting of the structure-recovery measurement).

All randomness comes from an explicit `np.random.Generator`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "RewardTerm",
    "FactoredSpec",
    "FactoredMDP",
    "check_states",
    "check_actions",
    "enumerate_states",
    "parents_by_name",
    "make_random_mdp",
    "sample_transitions",
    "mdp_step",
]

ACTION = "action"  # the name of the action input


@dataclass(frozen=True, eq=False)
class RewardTerm:
    """One additive reward table on next-state variables.

    Attributes:
        variables: names of the state variables the table is indexed by, in axis order.
        table: float array, shape (card(v) for v in variables).
    """

    variables: tuple[str, ...]
    table: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "variables", tuple(self.variables))
        object.__setattr__(self, "table", np.asarray(self.table, dtype=np.float64))
        if not self.variables:
            raise ValueError("a reward term needs at least one variable")


@dataclass(frozen=True, eq=False)
class FactoredSpec:
    """What a factored model and a planner need to know about a discrete task.

    Attributes:
        names: state variable names (unique, not "action").
        cards: cardinality of each state variable (>= 1).
        num_actions: number of discrete actions (>= 1).
        reward_terms: additive reward tables on the next state.
        done_fn: optional pure-JAX terminal(state [n] int32) -> bool, for one example.

    Raises:
        ValueError: duplicate or reserved names, bad cardinalities, or a reward table whose shape
            is not its variables' cardinalities.
        KeyError: a reward term names an unknown variable.
    """

    names: tuple[str, ...]
    cards: tuple[int, ...]
    num_actions: int
    reward_terms: tuple[RewardTerm, ...] = ()
    done_fn: Callable | None = field(default=None)

    def __post_init__(self):
        names, cards = tuple(self.names), tuple(int(c) for c in self.cards)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "cards", cards)
        object.__setattr__(self, "reward_terms", tuple(self.reward_terms))
        if len(names) != len(cards) or not names:
            raise ValueError(f"{len(names)} names but {len(cards)} cardinalities; need one each")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"state variable name {dup!r} is used twice; names must be unique")
        if ACTION in names:
            raise ValueError(f"{ACTION!r} is reserved for the action input; rename the variable")
        for name, card in zip(names, cards, strict=True):
            if card < 1:
                raise ValueError(f"variable {name!r} has cardinality {card}; allowed: >= 1")
        if int(self.num_actions) < 1:
            raise ValueError(f"num_actions is {self.num_actions}; allowed: >= 1")
        for term in self.reward_terms:
            expected = tuple(cards[self.index(v)] for v in term.variables)
            if term.table.shape != expected:
                raise ValueError(
                    f"reward table over {term.variables} has shape {term.table.shape}; "
                    f"expected {expected} from the variable cardinalities"
                )

    @property
    def num_vars(self) -> int:
        """n, the number of state variables."""
        return len(self.names)

    @property
    def input_cards(self) -> tuple[int, ...]:
        """Cardinalities of the inputs: the n state variables, then the action."""
        return (*self.cards, int(self.num_actions))

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the inputs: the n state variables, then "action"."""
        return (*self.names, ACTION)

    def index(self, name: str) -> int:
        """Input index of a state variable or of "action" (n).

        Raises:
            KeyError: an unknown name (the message lists the known ones).
        """
        try:
            return self.input_names.index(name)
        except ValueError:
            raise KeyError(
                f"unknown variable {name!r}; known: {', '.join(self.input_names)}"
            ) from None

    def reward_np(self, states: ArrayLike) -> np.ndarray:
        """R(s') for a batch of next states [B, n] (NumPy, float64 [B])."""
        states = np.asarray(states)
        out = np.zeros(states.shape[:-1])
        for term in self.reward_terms:
            ids = [self.index(v) for v in term.variables]
            out = out + term.table[tuple(states[..., i] for i in ids)]
        return out

    def reward_jax(self, states):
        """R(s') for next states [..., n] int32 (pure JAX, float32 [...])."""
        out = jnp.zeros(states.shape[:-1], jnp.float32)
        for term in self.reward_terms:
            ids = [self.index(v) for v in term.variables]
            table = jnp.asarray(term.table, jnp.float32)
            out = out + table[tuple(states[..., i] for i in ids)]
        return out

    def done_jax(self, states):
        """terminal(s') for next states [B, n] (all False without a done_fn)."""
        if self.done_fn is None:
            return jnp.zeros(states.shape[:-1], bool)
        return _vmap_rows(self.done_fn, states)

    def state_from_dict(self, values: Mapping[str, int]) -> np.ndarray:
        """The int32 state vector [n] from {name: value} (every variable, each in range)."""
        missing = [n for n in self.names if n not in values]
        for name in values:
            if name not in self.names:
                raise KeyError(f"unknown variable {name!r}; known: {', '.join(self.names)}")
        if missing:
            raise KeyError(f"no value for variable(s) {', '.join(missing)}")
        state = np.array([values[n] for n in self.names], dtype=np.int64)
        check_states(self, state[None])
        return state.astype(np.int32)


def _vmap_rows(fn, states):
    return jax.vmap(fn)(states)


def check_states(spec: FactoredSpec, states: ArrayLike, what: str = "state") -> np.ndarray:
    """Validate integer-coded states [B, n] (host-side); returns them as int32.

    Raises:
        ValueError: wrong shape, non-integer values, or a value outside its variable's range
            (the message names the variable, the value and the row).
    """
    arr = np.asarray(states)
    if arr.ndim != 2 or arr.shape[1] != spec.num_vars:
        raise ValueError(f"{what} has shape {arr.shape}; expected (B, {spec.num_vars})")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            b, j = np.argwhere(~np.isfinite(arr) | (arr != np.round(arr)))[0]
            raise ValueError(
                f"{what} value {arr[b, j]!r} of variable {spec.names[j]!r} (row {b}) is not an "
                "integer state"
            )
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{what} has dtype {arr.dtype}; expected integer states")
    arr = arr.astype(np.int64)
    cards = np.asarray(spec.cards)
    bad = (arr < 0) | (arr >= cards[None, :])
    if bad.any():
        b, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{what} value {int(arr[b, j])} of variable {spec.names[j]!r} (row {b}) is out of "
            f"range; allowed: 0..{cards[j] - 1}"
        )
    return arr.astype(np.int32)


def check_actions(spec: FactoredSpec, actions: ArrayLike) -> np.ndarray:
    """Validate integer actions [B] or [B, 1] (host-side); returns int32 [B]."""
    arr = np.asarray(actions)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"actions have shape {np.shape(actions)}; expected (B,) or (B, 1)")
    if arr.dtype.kind == "f" and np.any(arr != np.floor(arr)):
        raise ValueError(f"action {arr[arr != np.floor(arr)][0]!r} is not an integer")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= spec.num_actions)
    if bad.any():
        b = int(np.argmax(bad))
        raise ValueError(
            f"action {int(arr[b])} (row {b}) is out of range; allowed: 0..{spec.num_actions - 1}"
        )
    return arr.astype(np.int32)


@dataclass(frozen=True, eq=False)
class FactoredMDP:
    """A factored MDP with known dynamics: P(s' | s, a) = prod_i P(x'_i | inputs[parents_i]).

    Attributes:
        spec: variables, actions, reward.
        parents: per next-state variable, the sorted input indices of its parents (n = action).
        cpts: per next-state variable, P(x'_i | parents) with shape
            (input card of each parent..., card_i); rows sum to 1.

    Raises:
        ValueError: a parent index out of range, or a table of the wrong shape or not normalised.
    """

    spec: FactoredSpec
    parents: tuple[tuple[int, ...], ...]
    cpts: tuple[np.ndarray, ...]

    def __post_init__(self):
        n = self.spec.num_vars
        parents = tuple(tuple(int(p) for p in ps) for ps in self.parents)
        cpts = tuple(np.asarray(c, dtype=np.float64) for c in self.cpts)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "cpts", cpts)
        if len(parents) != n or len(cpts) != n:
            raise ValueError(f"need {n} parent sets and tables, got {len(parents)}, {len(cpts)}")
        cards = self.spec.input_cards
        for i, (ps, cpt) in enumerate(zip(parents, cpts, strict=True)):
            if any(not 0 <= p <= n for p in ps) or len(set(ps)) != len(ps):
                raise ValueError(f"parents of {self.spec.names[i]!r} are {ps}; allowed: distinct "
                                 f"input indices 0..{n}")
            expected = (*(cards[p] for p in ps), self.spec.cards[i])
            if cpt.shape != expected:
                raise ValueError(
                    f"table of {self.spec.names[i]!r} has shape {cpt.shape}; expected {expected}"
                )
            if not np.allclose(cpt.sum(-1), 1.0, atol=1e-6) or (cpt < 0).any():
                raise ValueError(f"table of {self.spec.names[i]!r} is not a distribution per row")

    def edges(self) -> set[tuple[int, int]]:
        """The true parent edges {(input index, child index)}."""
        return {(p, i) for i, ps in enumerate(self.parents) for p in ps}

    def transition_probs(self, state: ArrayLike, action: int) -> list[np.ndarray]:
        """P(x'_i | s, a) for each i (a list of [card_i] vectors)."""
        inputs = np.append(np.asarray(state, dtype=np.int64), int(action))
        return [cpt[tuple(inputs[list(ps)])] for ps, cpt in zip(self.parents, self.cpts,
                                                                 strict=True)]


def _random_parents(rng: np.random.Generator, num_inputs: int, max_parents: int) -> tuple:
    size = int(rng.integers(1, max_parents + 1))
    return tuple(sorted(rng.choice(num_inputs, size=size, replace=False).tolist()))


def _all_parents_matter(det: np.ndarray) -> bool:
    """True if each parent axis of the deterministic target table changes it somewhere."""
    for ax in range(det.ndim):
        if det.shape[ax] > 1 and np.all(det == np.take(det, [0], axis=ax)):
            return False
    return True


def make_random_mdp(
    rng: np.random.Generator,
    num_vars: int = 8,
    cardinality: int = 3,
    num_actions: int = 4,
    max_parents: int = 3,
    determinism: float = 0.8,
) -> FactoredMDP:
    """A random factored MDP with known parent sets.

    Each next-state variable gets a uniformly drawn parent set of size 1..max_parents among the
    n current state variables and the action. Each row of its table is

        P(x'_i | config) = determinism * onehot(f_i(config)) + (1 - determinism) * Dirichlet(1)

    where f_i is a random target function, redrawn until every parent changes f_i for some
    configuration, so every true edge carries information (an edge a learner cannot see from
    any amount of data would make "recall" meaningless). determinism = 1 gives deterministic
    dynamics, 0 fully random rows.

    Args:
        rng: the generator (consumed).
        num_vars: n state variables.
        cardinality: states per variable (>= 2).
        num_actions: actions (>= 2).
        max_parents: the largest parent set (1 .. n + 1).
        determinism: in [0, 1].

    Returns:
        A `FactoredMDP` with no reward terms.
    """
    if num_vars < 1 or cardinality < 2 or num_actions < 2:
        raise ValueError(f"need num_vars >= 1, cardinality >= 2, num_actions >= 2; got "
                         f"{num_vars}, {cardinality}, {num_actions}")
    if not 1 <= max_parents <= num_vars + 1:
        raise ValueError(f"max_parents is {max_parents}; allowed: 1..{num_vars + 1}")
    if not 0.0 <= determinism <= 1.0:
        raise ValueError(f"determinism is {determinism}; allowed: 0..1")
    spec = FactoredSpec(tuple(f"x{i}" for i in range(num_vars)), (cardinality,) * num_vars,
                        num_actions)
    cards = spec.input_cards
    parents, cpts = [], []
    for _ in range(num_vars):
        ps = _random_parents(rng, num_vars + 1, max_parents)
        shape = tuple(cards[p] for p in ps)
        for _attempt in range(100):
            det = rng.integers(0, cardinality, size=shape)
            if _all_parents_matter(det):
                break
        else:  # pragma: no cover - astronomically unlikely for cardinality >= 2
            raise RuntimeError("could not draw a target function in which every parent matters")
        noise = rng.dirichlet(np.ones(cardinality), size=shape)
        onehot = np.eye(cardinality)[det]
        parents.append(ps)
        cpts.append(determinism * onehot + (1.0 - determinism) * noise)
    return FactoredMDP(spec, tuple(parents), tuple(cpts))


def mdp_step(
    mdp: FactoredMDP, rng: np.random.Generator, states: ArrayLike, actions: ArrayLike
) -> np.ndarray:
    """Sample next states [B, n] for states [B, n] and actions [B] (the generator is consumed)."""
    states = check_states(mdp.spec, states)
    actions = check_actions(mdp.spec, actions)
    inputs = np.concatenate([states, actions[:, None]], axis=1)
    out = np.empty_like(states)
    for i, (ps, cpt) in enumerate(zip(mdp.parents, mdp.cpts, strict=True)):
        probs = cpt[tuple(inputs[:, p] for p in ps)]  # [B, card_i]
        u = rng.random(len(states))[:, None]
        out[:, i] = np.minimum((u > np.cumsum(probs, axis=1)).sum(axis=1), probs.shape[1] - 1)
    return out


def sample_transitions(
    mdp: FactoredMDP, rng: np.random.Generator, num: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`num` i.i.d. transitions with uniformly random states and actions.

    Returns:
        (states [num, n], actions [num], next_states [num, n]), all int32.
    """
    spec = mdp.spec
    states = np.stack([rng.integers(0, c, size=num) for c in spec.cards], axis=1).astype(np.int32)
    actions = rng.integers(0, spec.num_actions, size=num).astype(np.int32)
    return states, actions, mdp_step(mdp, rng, states, actions)


def enumerate_states(spec: FactoredSpec) -> np.ndarray:
    """Every joint state [prod(cards), n] in C order (for brute force on tiny tasks)."""
    return np.array(list(itertools.product(*(range(c) for c in spec.cards))), dtype=np.int32)


def parents_by_name(mdp: FactoredMDP) -> dict[str, tuple[str, ...]]:
    """{child name: parent input names} (for printing)."""
    names = mdp.spec.input_names
    return {mdp.spec.names[i]: tuple(names[p] for p in ps) for i, ps in enumerate(mdp.parents)}
