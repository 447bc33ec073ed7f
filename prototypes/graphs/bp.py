"""Pure loopy belief propagation over a `CompiledGraph`: sum-product and max-product.

One temperature T selects the semiring: T = 1 is sum-product (marginals), T = 0 max-product
(max-marginals, MAP decoding), values in between anneal. Messages are log-space and flat (see
`graph.py`); an iteration is

    beliefs = evidence + segment_sum(factor-to-variable messages)        [S]
    vtof    = beliefs[edge var state] - own message                       [M] (exclude own)
    ftov'   = normalise(concat(kind.update(group) for group in graph))    [M] (one op per group)
    ftov    = damping * ftov + (1 - damping) * ftov'

run for a fixed number of iterations under `lax.scan` (no Python loop per iteration).
Normalising subtracts each edge's max; messages are clipped below at `NEG_INF`.

Written for one evidence vector; vmap for a batch:

    bp = make_bp(BPConfig(num_iters=200, temperature=0.0), compiled)
    def infer(log_potentials, evidence):
        state, metrics = bp.run(log_potentials, bp.init(), evidence)
        return bp.beliefs(state, evidence), metrics
    beliefs, metrics = jax.jit(jax.vmap(infer, in_axes=(None, 0)))(compiled.log_potentials, ev)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jaxtyping import Array, Float, Int

from prototypes.config import arg, check
from prototypes.graphs.factors import FACTOR_KINDS, NEG_INF
from prototypes.graphs.graph import CompiledGraph
from prototypes.types import Metrics

__all__ = ["BPConfig", "BPState", "Beliefs", "BP", "LogPotentials", "make_bp"]

LogPotentials = tuple[Any, ...]  # one array per factor group (CompiledGraph.log_potentials)


@dataclass(frozen=True)
class BPConfig:
    """Loopy BP settings (static under jit)."""

    num_iters: int = arg(100, "iterations, all run (fixed length, lax.scan)")
    temperature: float = arg(1.0, "1: sum-product, 0: max-product, between: annealed")
    damping: float = arg(0.5, "weight of the previous message in each update, in [0, 1)")

    def __post_init__(self):
        check(
            isinstance(self.num_iters, int)
            and not isinstance(self.num_iters, bool)
            and self.num_iters >= 1,
            f"num_iters is {self.num_iters!r}; allowed: an int >= 1",
        )
        check(
            math.isfinite(self.temperature) and self.temperature >= 0.0,
            f"temperature is {self.temperature!r}; allowed: a float >= 0",
        )
        check(0.0 <= self.damping < 1.0, f"damping is {self.damping!r}; allowed: 0 <= damping < 1")


@struct.dataclass
class BPState:
    """BP messages (batch them by vmapping `run`).

    Attributes:
        ftov: [M] factor-to-variable log messages, flat over edge states, each edge's max 0.
    """

    ftov: Float[Array, " M"]


@struct.dataclass
class Beliefs:
    """Per-variable beliefs, padded to the largest cardinality C.

    Attributes:
        log_marginals: [V, C] normalised log beliefs (max-marginals at T = 0); padded states
            are -inf, states ruled out by evidence about NEG_INF.
        marginals: [V, C] exp(log_marginals); padded states 0.
        map_states: [V] int32 argmax state of each variable (the MAP decoding under
            max-product; the marginal mode under sum-product).
    """

    log_marginals: Float[Array, "V C"]
    marginals: Float[Array, "V C"]
    map_states: Int[Array, " V"]


@dataclass(frozen=True)
class BP:
    """Pure BP functions for one compiled graph (jit and vmap them at the call site).

    Attributes:
        init: () -> BPState with all-zero (uniform) messages.
        run: (log_potentials, state, evidence [S]) -> (state, metrics); runs `num_iters`
            iterations from `state`. metrics["max_delta"] is the largest absolute message
            change in the last iteration (0 at a fixed point).
        beliefs: (state, evidence [S]) -> Beliefs.
    """

    init: Callable[[], BPState]
    run: Callable[[LogPotentials, BPState, Float[Array, " S"]], tuple[BPState, Metrics]]
    beliefs: Callable[[BPState, Float[Array, " S"]], Beliefs]


def make_bp(cfg: BPConfig, graph: CompiledGraph) -> BP:
    """Build the BP functions for `graph` (index arrays become jit-time constants).

    Args:
        cfg: iterations, temperature and damping.
        graph: a compiled factor graph.

    Returns:
        A `BP` of pure functions. Evidence is a flat [S] log-potential bias per variable state
        (`CompiledGraph.evidence`); -inf clamps a state off. `log_potentials` is one array
        per factor group, laid out as `graph.log_potentials`.
    """
    num_iters, temperature, damping = cfg.num_iters, float(cfg.temperature), float(cfg.damping)
    num_states = graph.num_var_states
    num_edge_states = graph.num_edge_states
    var_state = jnp.asarray(graph.edge_state_var_state)  # [M]
    pad_index, pad_mask = jnp.asarray(graph.pad_index), jnp.asarray(graph.pad_mask)
    edge_of = jnp.asarray(graph.edge_state_edge)  # [M]
    edge_pad_index = jnp.asarray(graph.edge_pad_index)  # [E, C]
    edge_pad_mask = jnp.asarray(graph.edge_pad_mask)
    incident = jnp.asarray(graph.var_state_edge_states)  # [S, D]
    incident_mask = jnp.asarray(graph.var_state_edge_mask)
    # Gathers vectorise on CPU where scatters (segment ops) do not; fall back to a segment sum
    # only when very uneven degrees would make the padded [S, D] gather wasteful.
    dense_sums = incident.size <= 4 * num_edge_states + 1024
    updates = []
    for group, (start, stop) in zip(graph.groups, graph.group_slices, strict=True):
        kind = FACTOR_KINDS[type(graph.graph.factors[group.factor_ids[0]])]
        indices = tuple(jnp.asarray(i) for i in group.indices)
        updates.append((functools.partial(kind.update, group.static, indices), start, stop))

    def incoming_sum(ftov: Float[Array, " M"]) -> Float[Array, " S"]:
        """Sum of the messages into each variable state."""
        if dense_sums:
            return jnp.sum(jnp.where(incident_mask, ftov[incident], 0.0), axis=-1)
        return jax.ops.segment_sum(ftov, var_state, num_states)

    edge_cards = set(graph.cardinalities[graph.edge_vars].tolist())
    uniform_card = edge_cards.pop() if len(edge_cards) == 1 else None

    def normalise(msgs: Float[Array, " M"]) -> Float[Array, " M"]:
        """Subtract each edge's max, clip below at NEG_INF."""
        if uniform_card is not None:  # every edge has the same cardinality: a reshape
            per_edge = msgs.reshape(-1, uniform_card)
            return jnp.maximum(per_edge - per_edge.max(-1, keepdims=True), NEG_INF).reshape(-1)
        edge_max = jnp.max(jnp.where(edge_pad_mask, msgs[edge_pad_index], -jnp.inf), axis=-1)
        return jnp.maximum(msgs - edge_max[edge_of], NEG_INF)

    def init() -> BPState:
        return BPState(ftov=jnp.zeros((num_edge_states,)))

    def run(
        log_potentials: LogPotentials, state: BPState, evidence: Float[Array, " S"]
    ) -> tuple[BPState, Metrics]:
        if len(log_potentials) != len(updates):
            raise ValueError(
                f"log_potentials has {len(log_potentials)} arrays; the graph has "
                f"{len(updates)} factor groups"
            )
        if evidence.shape != (num_states,):
            raise ValueError(
                f"evidence has shape {evidence.shape}; expected ({num_states},) (vmap batches)"
            )
        dtype = state.ftov.dtype
        evidence = jnp.maximum(evidence.astype(dtype), NEG_INF)
        log_potentials = tuple(jnp.asarray(p, dtype) for p in log_potentials)

        def iteration(carry, _):
            ftov, _ = carry
            beliefs = evidence + incoming_sum(ftov)
            # Factor updates are invariant (up to a per-edge constant, removed below) to shifting
            # an incoming message, so variable-to-factor messages need no normalising.
            vtof = jnp.maximum(beliefs[var_state] - ftov, NEG_INF)
            if updates:
                new = jnp.concatenate([
                    update(pots, vtof[start:stop], temperature)
                    for (update, start, stop), pots in zip(updates, log_potentials, strict=True)
                ])
            else:
                new = ftov
            new = normalise(new)
            new = (damping * ftov + (1.0 - damping) * new).astype(dtype)
            delta = jnp.max(jnp.abs(new - ftov), initial=0.0)
            return (new, delta), None

        init_carry = (state.ftov, jnp.asarray(jnp.inf, dtype))
        (ftov, delta), _ = jax.lax.scan(iteration, init_carry, None, length=num_iters)
        return BPState(ftov=ftov), {"max_delta": delta}

    def beliefs(state: BPState, evidence: Float[Array, " S"]) -> Beliefs:
        evidence = jnp.maximum(evidence.astype(state.ftov.dtype), NEG_INF)
        flat = evidence + incoming_sum(state.ftov)  # [S]
        padded = jnp.where(pad_mask, flat[pad_index], -jnp.inf)  # [V, C]
        log_marginals = padded - jax.nn.logsumexp(padded, axis=-1, keepdims=True)
        return Beliefs(
            log_marginals=log_marginals,
            marginals=jnp.exp(log_marginals),
            map_states=jnp.argmax(padded, axis=-1).astype(jnp.int32),
        )

    return BP(init=init, run=run, beliefs=beliefs)
