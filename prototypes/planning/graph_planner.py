"""Planning by max-product inference on a DBN unrolled over the horizon.

The DBN unrolled over T steps is a factor graph over x_i@t, action@t, with one table factor
log P(x_i@t+1 | parents@t) per variable and step and reward factors beta * R(x@t+1). Max-product
BP on it approximates

    max over a_0..a_{T-1}, x_1..x_T of  sum_t log P(x_{t+1} | x_t, a_t) + beta R(x_{t+1})

given x_0 (clamped), and the first action is decoded from its max-marginal. For deterministic
dynamics this is exactly the best action sequence; with stochastic dynamics it plans for the
most likely outcome (optimistic about which outcome happens, penalised by its log probability).
On a tree-structured unrolling BP is exact; on loopy ones it is the usual approximation.

Dependencies. Unlike the planners over a `StepFn` (CEM, MPPI, MCTS), this one needs the model's
structure, not a sampler: inference runs on the factor tables themselves. It takes them as a
`FactoredMDP` (envs/factored_mdp.py: parent sets and conditional tables), the plain description
of a DBN that both a task's exact model and the learned one produce (`learn_dbn`, or
`state_to_dbn` of a fitted `FactoredState` in models/factored.py). So planning/ depends on
envs/ and graphs/ only, and never on models/: the learned model hands its tables over as a
`FactoredMDP`, and this module does not know how they were learned or packed for `predict`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from prototypes.envs.factored_mdp import FactoredMDP
from prototypes.graphs import (
    BPConfig,
    CompiledGraph,
    FactorGraph,
    TableFactor,
    Variable,
    compile_graph,
    make_bp,
)

__all__ = ["unrolled_graph", "GraphPlanner", "make_graph_planner"]


def _node(name: str, t: int) -> str:
    return f"{name}@{t}"


def unrolled_graph(dbn: FactoredMDP, horizon: int, reward_scale: float = 1.0) -> FactorGraph:
    """The DBN unrolled over `horizon` steps, with reward factors, as a factor graph.

    Variables: x@t for every state variable and t = 0..T, action@t for t = 0..T-1 (named
    "<name>@<t>"). Factors: log P(x_i@t+1 | parents@t) per variable and step, and
    reward_scale * R_k(scope_k@t+1) per reward term and step. Zero probabilities become -inf.
    """
    if horizon < 1:
        raise ValueError(f"horizon is {horizon}; allowed: >= 1")
    spec = dbn.spec
    names = spec.input_names
    variables = [
        Variable(_node(v, t), c)
        for t in range(horizon + 1)
        for v, c in zip(spec.names, spec.cards, strict=True)
    ]
    variables += [Variable(_node("action", t), spec.num_actions) for t in range(horizon)]
    factors = []
    with np.errstate(divide="ignore"):
        log_cpts = [np.log(c) for c in dbn.cpts]
    for t in range(horizon):
        for i, ps in enumerate(dbn.parents):
            scope = (*(_node(names[p], t) for p in ps), _node(spec.names[i], t + 1))
            factors.append(TableFactor(scope, log_cpts[i]))
        for term in spec.reward_terms:
            scope = tuple(_node(v, t + 1) for v in term.variables)
            factors.append(TableFactor(scope, reward_scale * term.table))
    return FactorGraph(variables, factors)


@dataclass(frozen=True)
class GraphPlanner:
    """Max-product planning on an unrolled DBN.

    Attributes:
        graph, compiled: the unrolled factor graph and its compiled form.
        plan: (state [n] int32) -> (first action int32 [], actions [T] int32, action@0
            max-marginals [num_actions] float32). Pure and jittable; vmap for a batch.
    """

    graph: FactorGraph
    compiled: CompiledGraph
    plan: Callable[[Int[Array, " n"]], tuple[Array, Array, Array]]


def make_graph_planner(
    dbn: FactoredMDP, horizon: int, bp_cfg: BPConfig | None = None, reward_scale: float = 1.0
) -> GraphPlanner:
    """Plan by max-product BP on `unrolled_graph(dbn, horizon, reward_scale)`.

    The initial state is clamped with evidence; each action is decoded from its max-marginal,
    so the first action is that of a best (MAP) trajectory even when several tie.
    """
    bp_cfg = bp_cfg or BPConfig(num_iters=50, temperature=0.0, damping=0.5)
    if bp_cfg.temperature != 0.0:
        raise ValueError(
            f"graph planning needs max-product (temperature 0), got {bp_cfg.temperature}"
        )
    spec = dbn.spec
    graph = unrolled_graph(dbn, horizon, reward_scale)
    compiled = compile_graph(graph)
    bp = make_bp(bp_cfg, compiled)
    ids0 = np.array([graph.index(_node(v, 0)) for v in spec.names])
    starts0 = jnp.asarray(compiled.var_state_offsets[ids0])  # [n]
    block = np.zeros(compiled.num_var_states, bool)
    for v, c in zip(ids0, spec.cards, strict=True):
        block[compiled.var_state_offsets[v] : compiled.var_state_offsets[v] + c] = True
    block = jnp.asarray(block)
    act_ids = jnp.asarray([graph.index(_node("action", t)) for t in range(horizon)])
    log_potentials = tuple(jnp.asarray(p, jnp.float32) for p in compiled.log_potentials)
    num_actions = spec.num_actions

    def plan(state):
        state = jnp.asarray(state, jnp.int32)
        evidence = jnp.where(block, -jnp.inf, 0.0).astype(jnp.float32)
        evidence = evidence.at[starts0 + state].set(0.0)
        bp_state, _ = bp.run(log_potentials, bp.init(), evidence)
        beliefs = bp.beliefs(bp_state, evidence)
        actions = beliefs.map_states[act_ids]
        return actions[0], actions, beliefs.log_marginals[act_ids[0], :num_actions]

    return GraphPlanner(graph=graph, compiled=compiled, plan=plan)
