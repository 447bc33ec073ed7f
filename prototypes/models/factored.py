"""A learned factored transition model: a DBN over discrete state variables, structure included.

Model. The next state factorises over variables given the current state and action (a two-slice
dynamic Bayesian network with arcs only from slice t to slice t + 1):

    P(s' | s, a) = prod_i P(x'_i | inputs[pa_i]),   inputs = (x_0, ..., x_{n-1}, a).

Structure learning. Each parent set pa_i is chosen to maximise a decomposable score (BDeu or
BIC) of the family (pa_i -> x'_i) on the observed transitions, among all subsets of the n + 1
inputs of size <= `max_parents`. Why exhaustive search: a DBN with only inter-slice arcs can
never have a cycle, so the score of the whole network is a sum of independent per-family terms
and maximising each family separately is the exact global optimum; no acyclicity constraint
couples the families, so greedy hill climbing or order search buys nothing but approximation
error. The cost is sum_{k <= K} C(n + 1, k) count tables per child, each one `np.bincount` over
the N transitions: for ~10 variables and K = 3, 232 subsets per child, a second or two in all.
Past ~20 inputs or K > 4 it grows too fast; then a greedy or sparse-candidate search would be
the replacement.

Scores (per family, counts N_jk = #(parent config j, child state k), q configs, r states):
    BIC   = sum_jk N_jk log(N_jk / N_j) - (log N / 2) q (r - 1)
    BDeu  = sum_j [lgG(a_j) - lgG(a_j + N_j)] + sum_jk [lgG(a_jk + N_jk) - lgG(a_jk)],
            a_j = ess / q, a_jk = ess / (q r)   (lgG = log Gamma)
BDeu's unobserved parent configurations contribute exactly 0, so on tasks that visit a small
part of a big configuration space (the arm) it does not charge for parameters never exercised,
where BIC charges q (r - 1) for all of them. Both are consistent; BIC is the default for i.i.d.
data (the synthetic MDP), BDeu for trajectory data.

Parameters. Dirichlet-smoothed tables: P(x'_i = k | j) = (N_jk + alpha) / (N_j + r alpha); an
unvisited configuration gets the uniform distribution. With `backoff` = b >= 0 the Dirichlet is
centred on a coarser model instead, (N_jk + alpha r P_b(k | j)) / (N_j + alpha r), where P_b is
the best-scoring family on at most b of the chosen parents: an unvisited configuration of a
big family then predicts what the coarse family does (the gripper keeps moving where the block
has never been seen) rather than a uniform guess, whose mode is an arbitrary jump to state 0.

Behind `WorldModel` (`make_factored_model`): the state is a fixed-shape pytree (parent indices,
strides and log tables padded to the cap), so refitting never retraces `predict`, which is a
gather: config = sum_p inputs[pa_p] * stride_p, then log_probs[i, config]. Actions come in as
[B, 1] floats (what the continuous planners produce) and are floored and clipped to
0..num_actions - 1, so a uniform sample of [0, num_actions) is a uniform discrete action.

Planning by inference on the learned DBN lives in planning/graph_planner.py: hand it the
tables as a `FactoredMDP` (`state_to_dbn(spec, state)`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Float, Int
from numpy.typing import ArrayLike
from scipy.special import gammaln

from prototypes.config import arg, check
from prototypes.envs.factored_mdp import (
    FactoredMDP,
    FactoredSpec,
    check_actions,
    check_states,
)
from prototypes.models.base import WorldModel
from prototypes.types import Metrics, PRNGKey, Step, Transition

__all__ = [
    "FactoredModelConfig",
    "FactoredState",
    "make_factored_model",
    "family_counts",
    "family_score",
    "estimate_cpt",
    "learn_parents",
    "learn_dbn",
    "dbn_to_state",
    "state_to_dbn",
]

ScoreKind = Literal["bdeu", "bic"]
PredictMode = Literal["mode", "sample"]


@dataclass(frozen=True)
class FactoredModelConfig:
    """Structure search, smoothing and prediction mode of the factored model."""

    max_parents: int = arg(3, "in-degree cap K: largest parent set searched per variable")
    score: ScoreKind = arg("bic", "structure score: bic, or bdeu (no charge for unseen configs)")
    ess: float = arg(1.0, "BDeu equivalent sample size (prior strength)")
    pseudocount: float = arg(0.1, "Dirichlet pseudocount per table cell of the CPT estimates")
    backoff: int = arg(
        -1,
        "centre each table's Dirichlet prior on the best family of at most "
        "this many of its parents (-1: uniform prior)",
    )
    mode: PredictMode = arg("mode", "predict: mode (most likely next state) or sample")

    def __post_init__(self) -> None:
        check(self.max_parents >= 0, f"max_parents must be >= 0, got {self.max_parents}")
        check(self.score in ("bdeu", "bic"), f"score must be bdeu or bic, got {self.score!r}")
        check(self.ess > 0, f"ess must be > 0, got {self.ess}")
        check(self.pseudocount >= 0, f"pseudocount must be >= 0, got {self.pseudocount}")
        check(self.backoff >= -1, f"backoff must be >= -1, got {self.backoff}")
        check(self.mode in ("mode", "sample"), f"mode must be mode or sample, got {self.mode!r}")


# ---------------------------------------------------------------------------------------------
# Counting, scoring, estimating (host-side NumPy).


def _config_index(inputs: np.ndarray, parents: tuple[int, ...], cards: tuple[int, ...]):
    """Row-major parent configuration index [N] and the number of configurations q."""
    config = np.zeros(len(inputs), dtype=np.int64)
    for p in parents:
        config = config * cards[p] + inputs[:, p]
    return config, int(np.prod([cards[p] for p in parents], dtype=np.int64))


def family_counts(
    inputs: ArrayLike,
    targets: ArrayLike,
    parents: tuple[int, ...],
    input_cards: tuple[int, ...],
    child_card: int,
) -> np.ndarray:
    """Counts N_jk of (parent configuration j, child state k).

    Args:
        inputs: [N, n + 1] int inputs (states then action).
        targets: [N] int child values.
        parents: input indices; configurations are numbered row-major in this order.
        input_cards: cardinality of each input.
        child_card: r.

    Returns:
        [q, r] int64 counts, q = prod of the parents' cardinalities (1 with no parents).
    """
    inputs, targets = np.asarray(inputs, dtype=np.int64), np.asarray(targets, dtype=np.int64)
    config, q = _config_index(inputs, tuple(parents), tuple(input_cards))
    flat = np.bincount(config * child_card + targets, minlength=q * child_card)
    return flat.reshape(q, child_card)


def family_score(counts: ArrayLike, kind: ScoreKind = "bic", ess: float = 1.0) -> float:
    """The BIC or BDeu score of one family from its counts [q, r] (see the module docstring)."""
    counts = np.asarray(counts, dtype=np.float64)
    q, r = counts.shape
    row = counts.sum(axis=1)
    if kind == "bic":
        total = row.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.where(counts > 0, counts * np.log(counts / row[:, None]), 0.0).sum()
        return float(ll - 0.5 * np.log(max(total, 1.0)) * q * (r - 1))
    if kind == "bdeu":
        a_j, a_jk = ess / q, ess / (q * r)
        return float(
            np.sum(gammaln(a_j) - gammaln(a_j + row))
            + np.sum(gammaln(a_jk + counts) - gammaln(a_jk))
        )
    raise ValueError(f"unknown score {kind!r}; allowed: bic, bdeu")


def estimate_cpt(
    counts: ArrayLike, pseudocount: float, prior: ArrayLike | None = None
) -> np.ndarray:
    """Dirichlet-smoothed conditional table [q, r]: (N_jk + alpha r p_jk) / (N_j + alpha r).

    With the uniform prior p = 1/r (the default) this is (N_jk + alpha) / (N_j + r alpha); a
    `prior` [q, r] (rows summing to 1, e.g. a coarser model's predictions) centres the Dirichlet
    on it instead. Rows with no data take the prior (uniform when alpha = 0).
    """
    counts = np.asarray(counts, dtype=np.float64)
    r = counts.shape[1]
    prior = np.full_like(counts, 1.0 / r) if prior is None else np.asarray(prior, np.float64)
    num = counts + pseudocount * r * prior
    den = num.sum(axis=1, keepdims=True)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), prior)


def learn_parents(
    inputs: ArrayLike,
    targets: ArrayLike,
    input_cards: tuple[int, ...],
    child_card: int,
    max_parents: int,
    kind: ScoreKind = "bic",
    ess: float = 1.0,
) -> tuple[tuple[int, ...], float]:
    """The best-scoring parent set of size <= max_parents (exhaustive; ties go to the smaller,
    then lexicographically first, set).

    Returns:
        (parents as sorted input indices, its score).
    """
    inputs = np.asarray(inputs, dtype=np.int64)
    best, best_score = (), -np.inf
    for size in range(min(max_parents, inputs.shape[1]) + 1):
        for ps in itertools.combinations(range(inputs.shape[1]), size):
            s = family_score(family_counts(inputs, targets, ps, input_cards, child_card), kind, ess)
            if s > best_score + 1e-9:
                best, best_score = ps, s
    return best, best_score


def _as_inputs(spec: FactoredSpec, states, actions, next_states):
    states = check_states(spec, states, "state")
    next_states = check_states(spec, next_states, "next state")
    actions = check_actions(spec, actions)
    if not len(states) == len(actions) == len(next_states):
        raise ValueError(
            f"{len(states)} states, {len(actions)} actions and {len(next_states)} "
            "next states; need the same number"
        )
    return np.concatenate([states, actions[:, None]], axis=1).astype(np.int64), next_states


def learn_dbn(
    spec: FactoredSpec,
    states: ArrayLike,
    actions: ArrayLike,
    next_states: ArrayLike,
    max_parents: int = 3,
    kind: ScoreKind = "bic",
    ess: float = 1.0,
    pseudocount: float = 0.1,
    backoff: int = -1,
) -> tuple[FactoredMDP, list[float]]:
    """Learn parent sets and smoothed tables from transitions (host-side).

    Args:
        spec: the task's variables.
        states: [N, n] int states; actions: [N] (or [N, 1]) int actions; next_states: [N, n].
        max_parents, kind, ess, pseudocount, backoff: see `FactoredModelConfig`.

    Returns:
        (the learned DBN as a `FactoredMDP`, the score of each family).

    Raises:
        ValueError: a value outside its variable's range (named in the message), or mismatched
            lengths.
    """
    inputs, next_states = _as_inputs(spec, states, actions, next_states)
    cards = spec.input_cards
    # Configuration indices depend only on the parent subset: compute each once for all children.
    subsets = [
        ps
        for size in range(min(max_parents, len(cards)) + 1)
        for ps in itertools.combinations(range(len(cards)), size)
    ]
    scores: list[dict[tuple[int, ...], float]] = [{} for _ in spec.cards]
    best = [((), -np.inf)] * spec.num_vars
    for ps in subsets:
        config, q = _config_index(inputs, ps, cards)
        for i, r in enumerate(spec.cards):
            counts = np.bincount(config * r + next_states[:, i], minlength=q * r).reshape(q, r)
            scores[i][ps] = s = family_score(counts, kind, ess)
            if s > best[i][1] + 1e-9:
                best[i] = (ps, s)
    parents, cpts = [], []
    for i, r in enumerate(spec.cards):
        ps = best[i][0]
        shape = (*(cards[p] for p in ps), r)
        counts = family_counts(inputs, next_states[:, i], ps, cards, r)
        prior = None
        if backoff >= 0 and len(ps) > backoff:
            sub = max(
                (b for b in scores[i] if len(b) <= backoff and set(b) <= set(ps)),
                key=lambda b: scores[i][b],
            )
            sub_counts = family_counts(inputs, next_states[:, i], sub, cards, r)
            sub_cpt = estimate_cpt(sub_counts, pseudocount).reshape(*(cards[p] for p in sub), r)
            missing = tuple(ax for ax, p in enumerate(ps) if p not in sub)
            prior = np.broadcast_to(np.expand_dims(sub_cpt, missing), shape).reshape(-1, r)
        cpts.append(estimate_cpt(counts, pseudocount, prior).reshape(shape))
        parents.append(ps)
    return FactoredMDP(spec, tuple(parents), tuple(cpts)), [b[1] for b in best]


# ---------------------------------------------------------------------------------------------
# The WorldModel.


@struct.dataclass
class FactoredState:
    """A learned DBN as fixed-shape arrays (K = the in-degree cap, Q = the most configurations
    any K inputs have, C = the largest cardinality).

    Attributes:
        parent_idx: [n, K] int32 input index of each parent slot (0 where padded).
        strides: [n, K] int32 row-major stride of each slot (0 where padded).
        log_probs: [n, Q, C] float32 log P(x'_i = c | config); -inf for padded states.
        num_parents: [n] int32.
    """

    parent_idx: Int[Array, "n K"]
    strides: Int[Array, "n K"]
    log_probs: Float[Array, "n Q C"]
    num_parents: Int[Array, " n"]


def _padded_sizes(spec: FactoredSpec, max_parents: int) -> tuple[int, int, int]:
    k = min(max_parents, len(spec.input_cards))
    q = int(np.prod(sorted(spec.input_cards, reverse=True)[:k], dtype=np.int64))
    return k, q, max(spec.cards)


def dbn_to_state(dbn: FactoredMDP, max_parents: int) -> FactoredState:
    """Pack a DBN into the padded `FactoredState` (every parent set must fit the cap)."""
    spec = dbn.spec
    k, q_max, c_max = _padded_sizes(spec, max_parents)
    n, cards = spec.num_vars, spec.input_cards
    parent_idx = np.zeros((n, max(k, 1)), np.int32)
    strides = np.zeros((n, max(k, 1)), np.int32)
    log_probs = np.full((n, q_max, c_max), -np.inf, np.float32)
    for i, (ps, cpt) in enumerate(zip(dbn.parents, dbn.cpts, strict=True)):
        if len(ps) > k:
            raise ValueError(f"{spec.names[i]!r} has {len(ps)} parents; the cap is {k}")
        stride = 1
        for slot in reversed(range(len(ps))):
            parent_idx[i, slot], strides[i, slot] = ps[slot], stride
            stride *= cards[ps[slot]]
        table = cpt.reshape(-1, spec.cards[i])
        with np.errstate(divide="ignore"):
            log_probs[i, : len(table), : spec.cards[i]] = np.log(table)
    return FactoredState(
        parent_idx=jnp.asarray(parent_idx),
        strides=jnp.asarray(strides),
        log_probs=jnp.asarray(log_probs),
        num_parents=jnp.asarray([len(ps) for ps in dbn.parents], jnp.int32),
    )


def state_to_dbn(spec: FactoredSpec, state: FactoredState) -> FactoredMDP:
    """Unpack a `FactoredState` into the DBN it holds (host-side)."""
    parent_idx, log_probs = np.asarray(state.parent_idx), np.asarray(state.log_probs, np.float64)
    cards = spec.input_cards
    parents, cpts = [], []
    for i, m in enumerate(np.asarray(state.num_parents)):
        ps = tuple(int(p) for p in parent_idx[i, :m])
        q = int(np.prod([cards[p] for p in ps], dtype=np.int64))
        table = np.exp(log_probs[i, :q, : spec.cards[i]])
        parents.append(ps)
        cpts.append(
            (table / table.sum(-1, keepdims=True)).reshape(*(cards[p] for p in ps), spec.cards[i])
        )
    return FactoredMDP(spec, tuple(parents), tuple(cpts))


def make_factored_model(cfg: FactoredModelConfig, spec: FactoredSpec) -> WorldModel:
    """The factored DBN model of a discrete task behind the `WorldModel` interface.

    Planning states are int32 [B, n] (a float array of integer values also works); actions
    [B, 1] floats are floored and clipped to 0..num_actions - 1. `predict` returns the next
    state (most likely, or a sample: `cfg.mode`), the task reward R(next) and termination.
    `fit` replaces the structure and tables with ones learned from all of `data` (obs [N, n],
    action [N, 1], next_obs [N, n]); it validates ranges and raises ValueError naming the value.
    """
    max_parents, kind, ess, alpha = cfg.max_parents, cfg.score, cfg.ess, cfg.pseudocount
    backoff = cfg.backoff
    sample = cfg.mode == "sample"
    n, num_actions = spec.num_vars, spec.num_actions
    rows = jnp.arange(n)

    def init(key: PRNGKey, example: Transition) -> FactoredState:
        del key, example
        empty = FactoredMDP(spec, ((),) * n, tuple(np.full(c, 1.0 / c) for c in spec.cards))
        return dbn_to_state(empty, max_parents)

    def predict(state: FactoredState, key: PRNGKey, obs, action) -> Step:
        s = jnp.asarray(obs).astype(jnp.int32)  # [B, n]
        a = jnp.clip(jnp.floor(jnp.asarray(action)[:, 0]), 0, num_actions - 1).astype(jnp.int32)
        inputs = jnp.concatenate([s, a[:, None]], axis=1)  # [B, n + 1]
        gathered = inputs[:, state.parent_idx]  # [B, n, K]
        config = jnp.sum(gathered * state.strides[None], axis=-1)  # [B, n]
        logits = state.log_probs[rows[None, :], config]  # [B, n, C]
        if sample:
            nxt = jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
        else:
            nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return Step(obs=nxt, reward=spec.reward_jax(nxt), done=spec.done_jax(nxt))

    def fit(state: FactoredState, key: PRNGKey, data: Transition):
        del state, key
        dbn, scores = learn_dbn(
            spec,
            np.asarray(data.obs),
            np.asarray(data.action),
            np.asarray(data.next_obs),
            max_parents,
            kind,
            ess,
            alpha,
            backoff,
        )
        metrics: Metrics = {
            "model/num_edges": jnp.asarray(sum(len(p) for p in dbn.parents)),
            "model/score": jnp.asarray(float(np.sum(scores))),
        }
        return dbn_to_state(dbn, max_parents), metrics

    return WorldModel(init=init, predict=predict, fit=fit, name=f"factored_{kind}")
