"""A probabilistic ensemble of object-factored relational dynamics over the task's entity layout.

Each member is a small graph network (an interaction network, Battaglia et al. 2016; jraph's
`InteractionNetwork` is the reference design) over the entities of `spec.layout`
(envs/layout.py). The graph is compiled once on the host (`compile_graph`) into static index
arrays; the network is a few gathers, MLPs and one `jax.ops.segment_sum`.

One member, for one example::

    node i of type T:   h_i = silu(Enc_T([features_i, action if T is arm]))          [H]
    edge s -> r:        e_sr = [pos_s - pos_r, |pos_s - pos_r|]                       (normalised)
                        m_sr, g_sr = Edge([h_s, h_r, e_sr])   message [H], gate logit [1]
                        msg_sr = sigmoid(g_sr) * cut(|pos_s - pos_r|) * m_sr
    aggregate:          a_r = sum_s msg_sr                                             (segment_sum)
    decode, type T:     mean_i, logvar_i = Dec_T([h_i, a_i])                           [D_T] each
    passive T (object): mean_i = Dec_T([h_i, a_i]) - Dec_T([h_i, 0])   (exactly 0 if a_i = 0)

- Features are relative and translation-invariant: a node sees its own velocity, rotation,
  "other" and non-derivable "relative" entries (envs/layout.py kinds), never its absolute
  position; edges carry the displacement between the two entities' positions and its length.
  An entity without a position but with a `relative` to one that has one (Reacher's fingertip,
  relative to the target) is placed at `pos_other + relative` for its edges.
- Weights are shared by entity type: one encoder and one decoder per type (the encoder's bias is
  the type embedding; Pusher's object has no features but position, so that is all it gets),
  one edge network for all edges (sender and receiver types are in their latents).
- The action goes to arm nodes only; objects feel it through the arm's messages.
- Goal entities are not physical: by default they send no messages and their delta is exactly
  zero (a goal never moves within an episode). `goal_edges=True` lets them send messages.
- Passive entities (type "object") move only through what they receive: with no incoming message
  their mean delta is exactly zero (an object nobody touches does not move), and the learned
  sigmoid gate, times an optional smooth distance cut-off, lets an edge fall silent when the
  two entities are apart.
- Outputs are per-entity Gaussian deltas (mean and bounded log-variance, as GaussianMLP), mapped
  back to the flat observation by a scatter along the layout's indices. A `relative` entry whose
  two positions are both observed (FetchPush's object - gripper) is not predicted but recomputed
  from the predicted next positions, so it stays consistent. Rotation deltas are wrapped to
  (-pi, pi] when training (Fetch's Euler angles jump by 2 pi at the wrap; for cos/sin features
  the wrap never applies), so the next rotation may leave (-pi, pi].
- Normalisation is per entity type: every node-feature, output and edge-feature column is
  standardised with statistics pooled over the entities (edges) of its type (type pair), so
  same-type entities stay interchangeable. Passive outputs are scaled but not centred (their
  zero stays zero). Output columns that never varied are predicted exactly (as the ensemble).
- Velocities that the observation gives relative to another entity's (FetchPush's object) are
  put back in the world frame on the way in and out (`RELATIVE_VELOCITIES`).
- `object_velocity=False` hides a passive object's own velocity from its inputs (it still
  predicts it), so an open-loop rollout cannot feed its own velocity errors back: on
  experiments/model_error.py's seed-0 data the 10-step contact error of windows that end with the
  block on the table falls from 8.5 to 6.2 cm, but that of windows where it falls off the table
  rises from 12.8 to 17.6 cm (a fall is carried by velocity), 11.3 -> 13.7 cm overall: off by
  default.
- Contact projection (`contact_projection`, on): objects cannot be inside the arm. Each fit
  measures, from the pushes in its data (an object slid horizontally with the arm within
  10 cm), the closest the arm's and the object's centres come (5th percentile of their
  horizontal distance) and how far apart in height they may be (99th percentile); in
  `predict`, an object that ends a step closer to an arm than that is carried along by the
  arm's horizontal displacement (`project_contacts`). It is a physical prior, like the arm's
  kinematic one, for what the network extrapolates worst: an open-loop rollout in which the
  gripper has sunk into the block (never seen in data). Without it, the model fit on the first
  32 episodes of a FetchPush run, asked to push from real pushing positions for 10 steps at
  full speed, moved the block 1.9 cm while the gripper passed 25 cm through it, so the planner
  valued pushing less than standing still; with it, 29.5 cm with the gripper still behind.
- Solid top (`solid_top`, on, with the projection): the object is a solid the arm cannot enter.
  Each fit measures how close the arm comes from the side (`solid_extent`: 1st percentile of the
  horizontal distance with the arm below the object's centre) and how low it gets over the
  object (its top); these replace the pushes' separation and height, and an arm that
  starts a step above the top and is predicted inside the object rests on the top instead of
  carrying it. Why: in FetchPush the gripper often rides on the block, dragging it a few mm a
  step; the pushes-only projection (separation 1.3 cm, height 7.5 cm, both set by those drags)
  let an open-loop rollout carry the block with an arm sliding over its top, so the planner sat
  on the block (30 of 70 failed episodes of a 179-episode run; with that run's last model frozen
  37/40 planned episodes succeed with it, 33/40 without).
- Table-top features (`surface_features`, on where the task's spec has a `surface`: Fetch;
  no effect elsewhere): each object node also sees `Surface.features` of its own position
  (envs/layout.py: a vector towards the nearby table edges, its distance inside the top's
  outline, its height above the top), the one place where an absolute position enters. Without
  them the model cannot know where the table ends, and falls off it are most of FetchPush's
  10-step contact error. On experiments/model_error.py's data, with beta-NLL (`nll_beta` 0.5)
  they bring the 10-step contact error to 0.57 of the flat ensemble's on seed 0 (README, model
  error).
- Lookahead edges (`lookahead`): every edge also carries its displacement and distance after the
  arm nodes move by the kinematic prior's mean delta, i.e. where the gripper will be this step.
- Optional kinematic prior for the arm: a ridge regression, refitted in closed form at each fit,
  from the arm node's normalised inputs (its features and the action) to its normalised delta;
  the network learns the residual. With Fetch's Cartesian actions this is the "gripper follows
  the action" prior, learned rather than hand-coded.

Propagation (TS-1, TS-inf, expectation) and training (bootstrap, NLL plus log-variance-bound
penalty, per-member early stopping on a held-out MSE) are the flat ensemble's functions
(models/ensemble.py, models/fitting.py), applied to the flattened graph inputs `x` [B, I] and
outputs `z` [B, D].
Three training defaults differ from the flat ensemble's: beta-NLL with `nll_beta` 0.5, and after
each one-step fit 250 steps of fine-tuning on 10-step open-loop rollouts (`rollout_horizon`,
`rollout_steps`; models/rollout.py). With the table-top features they are the config that halves
the flat ensemble's 10-step contact error on FetchPush (0.47 / 0.32 / 0.45 on seeds 0-2) and
plans it (README, "FetchPush"); the earlier defaults (0, 0, and no table top) are one flag each.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from prototypes.config import arg, check
from prototypes.envs.layout import ARM, GOAL, SURFACE_FEATURES, EntityLayout, Surface, indices
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import WorldModel
from prototypes.models.ensemble import (
    PREDICT_BY_PROPAGATION,
    ensemble_loss,
    holdout_mse,
    predict_expectation,
)
from prototypes.models.fitting import (
    EnsembleTrainingConfig,
    bucket_rows,
    make_train_steps,
    pad_rows,
    train_with_early_stopping,
)
from prototypes.models.normalizer import Normalizer
from prototypes.models.rollout import rollout_finetuner
from prototypes.types import Array, Float, Metrics, Params, PRNGKey, Step, Transition

__all__ = [
    "StructuredConfig",
    "StructuredState",
    "NodeGroup",
    "Graph",
    "GraphNet",
    "compile_graph",
    "graph_inputs",
    "graph_targets",
    "pooled_normalizer",
    "cutoff_weight",
    "prior_outputs",
    "fit_prior",
    "tasks_with_layout",
    "check_structured_task",
    "contact_pairs",
    "contact_separation",
    "solid_extent",
    "project_contacts",
    "RELATIVE_VELOCITIES",
    "make_structured",
    "transfer_state",
]

# Velocities the observation gives relative to another entity's, as (entity, first entries of its
# velocity, the entity whose velocity was subtracted): FetchPush's object_velp is object_velp -
# grip_velp (envs/fetch.py). The model adds the other's velocity back on the way in and subtracts
# it on the way out, so every node sees its own velocity in the world frame (one-step object error
# on contact steps 10.4 -> 6.1 mm in profiling/benchmark_structured.py). This belongs in the
# EntityLayout (a `velocity_relative_to`); it lives here until the layout can say it.
RELATIVE_VELOCITIES: dict[str, tuple[tuple[str, int, str], ...]] = {
    "fetch_push": (("object", 3, "gripper"),),
    "fetch_push2": (("object", 3, "gripper"), ("object1", 3, "gripper")),
}

STATIC, ACTUATED, PASSIVE, FREE = "static", "actuated", "passive", "free"  # node roles
INPUT_KINDS = ("velocity", "rotation", "relative", "other")  # never position: no absolute place


@dataclass(frozen=True)
class StructuredConfig(EnsembleTrainingConfig):
    """The structured ensemble: the shared ensemble fields (members, propagation, training; the
    network size redeclared with its own defaults) plus the graph network's own."""

    hidden_size: int = arg(64, "width of every hidden layer, node latent and message")
    hidden_layers: int = arg(2, "hidden layers of the edge and decoder MLPs")
    passive_objects: bool = arg(
        True, "an object's mean delta is exactly zero when no message reaches it"
    )
    kinematic_prior: bool = arg(
        True, "arm delta = closed-form ridge fit on (arm features, action) + learned residual"
    )
    cutoff: float = arg(
        0.0, "edges longer than this (obs units, e.g. metres) carry no message; 0: no cut-off"
    )
    goal_edges: bool = arg(False, "goal entities send messages (they are not physical)")
    lookahead: bool = arg(
        True, "edges also see the displacement after the arm's prior step (needs the prior)"
    )
    object_velocity: bool = arg(
        True, "passive objects see their own velocity (off: only messages and rotation)"
    )
    contact_projection: bool = arg(
        True, "an object the arm comes closer to than in 95% of the data's pushes is carried by it"
    )
    solid_top: bool = arg(
        True,
        "with the contact projection: the object is a solid the arm cannot enter; an arm that "
        "comes down onto it rests on its top (off: the pushes-only projection, arm sinks in)",
    )
    # Defaults changed on 2026-12-05 to the config that both halves the flat ensemble's 10-step
    # contact error on FetchPush and plans it (README, "FetchPush"); `absent` is the earlier
    # default, which runs and results saved without the field mean. The flat ensemble keeps the
    # shared ones (models/fitting.py). rollout_steps needs none: with rollout_horizon 0 it is inert.
    surface_features: bool = arg(
        True,
        "objects also see where the table top ends (edge vector, distance inside, height above "
        "it: envs/layout.py Surface), on tasks that describe one (Fetch); no effect elsewhere",
        absent=False,
    )
    nll_beta: float = arg(
        0.5,
        "beta-NLL (Seitzer et al. 2022): each output's NLL weighted by its stop-gradient "
        "variance ** beta, in [0, 1]; 0 is the plain NLL. With the table-top features, 0.5 "
        "brought the 10-step contact error on FetchPush to 0.57 of the flat ensemble's",
        absent=0.0,
    )
    rollout_horizon: int = arg(
        10,
        "after each one-step fit, fine-tune every member's mean on its own open-loop rollouts "
        "of this many real steps (prototypes/models/rollout.py); 0 is off",
        absent=0,
    )
    rollout_steps: int = arg(250, "gradient steps of that fine-tuning, per fit")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.cutoff >= 0.0, f"model.cutoff must be >= 0, got {self.cutoff}")


# --- the graph, compiled once on the host ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NodeGroup:
    """The nodes of one entity type, in layout order.

    Attributes:
        type: the entity type.
        role: "actuated" (arm: gets the action), "passive" (object: moves only through
            messages), "free" (object with `passive_objects=False`: decoded like the arm, without
            the action) or "static" (goal: only sends messages, delta exactly zero).
        names: the entities, n of them.
        in_idx: [n, F] obs indices of each node's input features.
        out_idx: [n, D] obs indices of each node's predicted delta (D = 0 for static nodes).
        wrap: [D] which output columns are rotations (deltas wrapped to (-pi, pi] in training).
        surface_pos: [n, P] obs indices of each node's position when the nodes also see the
            table top (`SURFACE_FEATURES` more input features after in_idx's), else None.
    """

    type: str
    role: str
    names: tuple[str, ...]
    in_idx: np.ndarray
    out_idx: np.ndarray
    wrap: np.ndarray
    surface_pos: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def in_dim(self) -> int:
        return self.in_idx.shape[1] + (SURFACE_FEATURES if self.surface_pos is not None else 0)

    @property
    def out_dim(self) -> int:
        return self.out_idx.shape[1]


@dataclass(frozen=True, eq=False)
class Graph:
    """A task's entity graph as static arrays. Nodes are numbered group-major (groups in order of
    first type appearance, entities in layout order inside a group). Goal entities are nodes only
    with `goal_edges` (otherwise nothing reads them and their delta is zero).

    Attributes:
        groups: the node groups, one per type.
        obs_dim, act_dim: O and A.
        pos_idx: [N, P] obs indices of each node's position (or of the position its `relative`
            is measured from, when it has none); rows of -1 for nodes with neither.
        rel_idx: [N, P] obs indices of the relative entry added to pos_idx, or -1 rows.
        senders, receivers: [Ed] node ids of every directed edge.
        edge_group: [Ed] id of each edge's (sender type, receiver type) pair.
        derived: (relative, own position, other's position) obs indices of every relative entry
            recomputed from the predicted positions instead of predicted.
        lookahead: edges also carry their displacement and distance after the arm's
            kinematic-prior step (a second edge block at the end of the input).
        surface: the table top that the groups with `surface_pos` see, or None.
    """

    groups: tuple[NodeGroup, ...]
    obs_dim: int
    act_dim: int
    pos_idx: np.ndarray
    rel_idx: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    edge_group: np.ndarray
    derived: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    lookahead: bool = False
    surface: Surface | None = None

    @property
    def num_nodes(self) -> int:
        return sum(g.n for g in self.groups)

    @property
    def num_edges(self) -> int:
        return len(self.senders)

    @property
    def edge_dim(self) -> int:
        """Edge features: displacement (P) and distance (1); 0 without edges."""
        return self.pos_idx.shape[1] + 1 if self.num_edges else 0

    @property
    def base_dim(self) -> int:
        """Node features + edge features + action + one cut-off weight per edge."""
        nodes = sum(g.n * g.in_dim for g in self.groups)
        return nodes + self.num_edges * self.edge_dim + self.act_dim + self.num_edges

    @property
    def in_dim(self) -> int:
        """I = `base_dim`, plus the lookahead edge features if `lookahead`."""
        return self.base_dim + (self.num_edges * self.edge_dim if self.lookahead else 0)

    @property
    def out_dim(self) -> int:
        """D = the deltas of every decoded node."""
        return sum(g.n * g.out_dim for g in self.groups)

    @property
    def out_cols(self) -> np.ndarray:
        """[D] the obs index of every output column (the scatter back to the observation)."""
        return np.concatenate([g.out_idx.ravel() for g in self.groups]).astype(np.int32)


def compile_graph(
    layout: EntityLayout,
    act_dim: int,
    *,
    goal_edges: bool = False,
    passive_objects: bool = True,
    lookahead: bool = False,
    object_velocity: bool = True,
    surface: Surface | None = None,
) -> Graph:
    """Node groups, edges and recomputed relative entries of a layout, as static arrays.

    Edges: every ordered pair (s, r) of distinct nodes whose receiver is decoded (not a goal).
    A `relative` entry is recomputed (not an input, not an output) when both its entity and the
    one it is measured from have positions. With a `surface`, object nodes (passive or free) that
    have a 3-d position also see `surface.features` of it.

    Raises:
        ValueError: entity positions of different lengths.
    """
    ents = {e.name: e for e in layout.entities}

    def derivable(e) -> bool:
        return (
            e.relative is not None
            and e.position is not None
            and ents[e.relative_to].position is not None
        )

    groups = []
    for type_ in layout.types:
        if type_ == GOAL and not goal_edges:
            continue
        members = layout.entities_of_type(type_)
        role = {ARM: ACTUATED, GOAL: STATIC}.get(type_, PASSIVE if passive_objects else FREE)
        ins, outs, wrap = [], [], []
        for e in members:  # same-type entities have the same kinds and sizes (layout.validate)
            kinds = {k: v for k, v in e.kinds.items() if not (k == "relative" and derivable(e))}
            seen = [k for k in INPUT_KINDS if object_velocity or role != PASSIVE or k != "velocity"]
            ins.append([i for k in seen if k in kinds for i in indices(kinds[k])])
            outs.append([i for k in kinds for i in indices(kinds[k])])
            wrap = [k == "rotation" for k in kinds for _ in indices(kinds[k])]
        if role == STATIC:
            outs, wrap = [[] for _ in members], []
        sees_surface = (
            surface is not None
            and role in (PASSIVE, FREE)
            and all(e.position is not None and len(indices(e.position)) == 3 for e in members)
        )
        groups.append(
            NodeGroup(
                type=type_,
                role=role,
                names=tuple(e.name for e in members),
                in_idx=np.asarray(ins, np.int32).reshape(len(members), -1),
                out_idx=np.asarray(outs, np.int32).reshape(len(members), -1),
                wrap=np.asarray(wrap, bool),
                surface_pos=(
                    np.asarray([indices(e.position) for e in members], np.int32)
                    if sees_surface
                    else None
                ),
            )
        )
    order = [(name, g.type, g.role) for g in groups for name in g.names]
    pos, rel = [], []
    for name, _, _ in order:
        e = ents[name]
        if e.position is not None:
            pos.append(indices(e.position))
            rel.append(None)
        elif e.relative is not None and ents[e.relative_to].position is not None:
            pos.append(indices(ents[e.relative_to].position))
            rel.append(indices(e.relative))
        else:
            pos.append(None)
            rel.append(None)
    dims = sorted({len(p) for p in pos if p is not None})
    if len(dims) > 1:
        raise ValueError(f"entity positions must all have one length, got lengths {dims}")
    P = dims[0] if dims else 0
    pairs = [
        (s, r)
        for r in range(len(order))
        for s in range(len(order))
        if s != r and order[r][2] != STATIC
    ]
    type_pairs = list(dict.fromkeys((order[s][1], order[r][1]) for s, r in pairs))
    return Graph(
        groups=tuple(groups),
        obs_dim=layout.obs_dim,
        act_dim=act_dim,
        pos_idx=np.asarray([p or (-1,) * P for p in pos], np.int32).reshape(-1, P),
        rel_idx=np.asarray([r or (-1,) * P for r in rel], np.int32).reshape(-1, P),
        senders=np.asarray([s for s, _ in pairs], np.int32),
        receivers=np.asarray([r for _, r in pairs], np.int32),
        edge_group=np.asarray(
            [type_pairs.index((order[s][1], order[r][1])) for s, r in pairs], np.int32
        ),
        derived=tuple(
            (indices(e.relative), indices(e.position), indices(ents[e.relative_to].position))
            for e in layout.entities
            if derivable(e)
        ),
        lookahead=lookahead and any(g.role == ACTUATED for g in groups) and bool(pairs),
        surface=surface if any(g.surface_pos is not None for g in groups) else None,
    )


# --- inputs and targets (pure functions of raw observations) -------------------------------------


def cutoff_weight(dist: Float[Array, ...], cutoff: float) -> Float[Array, ...]:
    """1 up to 0.75 cutoff, then linearly down to 0 at `cutoff` and beyond; 1 if cutoff is 0."""
    if cutoff <= 0:
        return jnp.ones_like(dist)
    return jnp.clip(4.0 * (1.0 - dist / cutoff), 0.0, 1.0)


def edge_features(graph: Graph, obs: Float[Array, "B O"]) -> Float[Array, "B Ed P+1"]:
    """Each edge's sender position minus receiver position, and its length (zero for nodes
    without a position)."""
    B, P = obs.shape[0], graph.pos_idx.shape[1]
    if P == 0:
        return jnp.zeros((B, graph.num_edges, 1), obs.dtype)
    has_pos, has_rel = graph.pos_idx[:, 0] >= 0, graph.rel_idx[:, 0] >= 0
    pos = jnp.where(has_pos[None, :, None], obs[:, graph.pos_idx], 0.0)
    pos = pos + jnp.where(has_rel[None, :, None], obs[:, graph.rel_idx], 0.0)
    disp = pos[:, graph.senders] - pos[:, graph.receivers]  # [B, Ed, P]
    return jnp.concatenate([disp, jnp.sqrt(jnp.sum(disp**2, axis=-1, keepdims=True))], axis=-1)


def graph_inputs(
    graph: Graph, cutoff: float, obs: Float[Array, "B O"], action: Float[Array, "B A"]
) -> Float[Array, "B I0"]:
    """The raw (unnormalised) base input of the graph network, for a batch (I0 = base_dim):
    [node features by group, entity-major (n F each)], [edge displacement and distance (Ed (P+1))],
    [action (A)], [cut-off weight of each edge (Ed)]. No absolute position enters, except through
    the table-top features of the groups that see it (last of each node's F)."""
    B = obs.shape[0]
    parts = []
    for g in graph.groups:
        feats = obs[:, g.in_idx]  # [B, n, F]
        if g.surface_pos is not None:
            feats = jnp.concatenate([feats, graph.surface.features(obs[:, g.surface_pos])], -1)
        parts.append(feats.reshape(B, -1))
    if graph.num_edges:
        edges = edge_features(graph, obs)
        parts += [edges.reshape(B, -1), action, cutoff_weight(edges[..., -1], cutoff)]
    else:
        parts.append(action)
    return jnp.concatenate(parts, axis=-1)


def _wrap(d: np.ndarray) -> np.ndarray:
    return (d + np.pi) % (2 * np.pi) - np.pi


def graph_targets(
    graph: Graph, obs: Float[np.ndarray, "N O"], next_obs: Float[np.ndarray, "N O"]
) -> Float[np.ndarray, "N D"]:
    """The raw output targets (host, NumPy): each decoded node's delta next_obs - obs along its
    out_idx, rotations wrapped to (-pi, pi], in the column order of `Graph.out_cols`."""
    delta = np.asarray(next_obs, np.float64) - np.asarray(obs, np.float64)
    parts = []
    for g in graph.groups:
        d = delta[:, g.out_idx]  # [N, n, D]
        d[..., g.wrap] = _wrap(d[..., g.wrap])
        parts.append(d.reshape(len(delta), -1))
    return np.concatenate(parts, axis=-1).astype(np.float32)


def _column_groups(graph: Graph) -> tuple[list, list]:
    """For the input and output columns: a pooling key per column (columns with one key share
    their statistics) and, for outputs, whether to centre. Cut-off weights get key None (kept)."""
    keys_in = [
        ("node", g.type, f) for g in graph.groups for _ in range(g.n) for f in range(g.in_dim)
    ]
    if graph.num_edges:
        keys_in += [("edge", int(t), f) for t in graph.edge_group for f in range(graph.edge_dim)]
    keys_in += [("action", a) for a in range(graph.act_dim)]
    keys_in += [None] * graph.num_edges
    if graph.lookahead:
        keys_in += [("look", int(t), f) for t in graph.edge_group for f in range(graph.edge_dim)]
    keys_out = [
        ("out", g.type, d) for g in graph.groups for _ in range(g.n) for d in range(g.out_dim)
    ]
    center_out = [g.role != PASSIVE for g in graph.groups for _ in range(g.n * g.out_dim)]
    return keys_in, [keys_out, center_out]


def pooled_normalizer(
    x: Float[np.ndarray, "N D"], keys: list, center: list[bool] | None = None
) -> Normalizer:
    """Per-column standardisation with statistics pooled over all columns sharing a key (entities
    of one type, edges of one type pair); key None leaves a column as is (mean 0, std 1). With
    center[c] False, column c keeps mean 0 and is scaled by its root mean square. Columns whose
    pooled spread is below 1e-6 get std 1 and are flagged constant (as `fit_normalizer`)."""
    x = np.asarray(x, np.float64)
    D = x.shape[1]
    center = [True] * D if center is None else center
    mean, std, const = np.zeros(D), np.ones(D), np.zeros(D, bool)
    for key in dict.fromkeys(k for k in keys if k is not None):
        cols = [c for c in range(D) if keys[c] == key]
        vals = x[:, cols]
        m = vals.mean() if center[cols[0]] else 0.0
        s = np.sqrt(np.mean((vals - m) ** 2)) if vals.size else 0.0
        mean[cols] = m
        if s < 1e-6:
            const[cols] = True
        else:
            std[cols] = s
    return Normalizer(
        mean=jnp.asarray(mean, jnp.float32),
        std=jnp.asarray(std, jnp.float32),
        constant=jnp.asarray(const),
    )


# --- the network ----------------------------------------------------------------------------------


class _MLP(nn.Module):
    """silu hidden layers of width `hidden` (`layers` of them), then a linear layer `out`."""

    hidden: int
    layers: int
    out: int

    @nn.compact
    def __call__(self, x: Float[Array, "... I"]) -> Float[Array, "... Y"]:
        for _ in range(self.layers):
            x = nn.silu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.out)(x)


class GraphNet(nn.Module):
    """One member: flat normalised graph inputs x [M, I] -> mean and bounded log-variance of the
    normalised deltas [M, D] (module docstring for the equations)."""

    graph: Graph
    hidden_size: int
    hidden_layers: int

    @nn.compact
    def __call__(self, x: Float[Array, "M I"]) -> tuple[Float[Array, "M D"], Float[Array, "M D"]]:
        g, H, M = self.graph, self.hidden_size, x.shape[0]
        Ed, A = g.num_edges, g.act_dim
        off, feats = 0, []
        for grp in g.groups:
            feats.append(x[:, off : off + grp.n * grp.in_dim].reshape(M, grp.n, grp.in_dim))
            off += grp.n * grp.in_dim
        edges = x[:, off : off + Ed * g.edge_dim].reshape(M, Ed, g.edge_dim)
        off += Ed * g.edge_dim
        action = x[:, off : off + A]
        cut = x[:, off + A : off + A + Ed]
        if g.lookahead:
            look = x[:, g.base_dim :].reshape(M, Ed, g.edge_dim)
            edges = jnp.concatenate([edges, look], axis=-1)
        latents = []
        for grp, f in zip(g.groups, feats, strict=True):
            if grp.role == ACTUATED:
                f = jnp.concatenate([f, jnp.broadcast_to(action[:, None], (M, grp.n, A))], -1)
            if f.shape[-1]:
                pre = nn.Dense(H, name=f"encoder_{grp.type}")(f)
            else:  # no features (Pusher's object): a learned type embedding
                embed = self.param(f"embed_{grp.type}", nn.initializers.normal(1.0), (H,))
                pre = jnp.broadcast_to(embed, (M, grp.n, H))
            latents.append(nn.silu(pre))
        h = jnp.concatenate(latents, axis=1)  # [M, N, H]
        if Ed:
            inp = jnp.concatenate([h[:, g.senders], h[:, g.receivers], edges], axis=-1)
            out = _MLP(H, self.hidden_layers, H + 1, name="edge")(inp)  # [M, Ed, H + 1]
            msg = nn.sigmoid(out[..., H:]) * cut[..., None] * out[..., :H]
            agg = jax.ops.segment_sum(
                jnp.swapaxes(msg, 0, 1), g.receivers, num_segments=g.num_nodes
            )
            agg = jnp.swapaxes(agg, 0, 1)  # [M, N, H]
        means, logvars, node = [], [], 0
        for grp, h_t in zip(g.groups, latents, strict=True):
            n, D = grp.n, grp.out_dim
            a_t = agg[:, node : node + n] if Ed else None
            node += n
            if grp.role == STATIC:
                continue
            dec = _MLP(H, self.hidden_layers, 2 * D, name=f"decoder_{grp.type}")
            if grp.role == PASSIVE and Ed:  # Dec([h, a]) - Dec([h, 0]): zero without messages
                both = jnp.concatenate(
                    [jnp.stack([h_t, h_t]), jnp.stack([a_t, jnp.zeros_like(a_t)])], -1
                )
                out = dec(both)
                mean, logvar = out[0, ..., :D] - out[1, ..., :D], out[0, ..., D:]
            else:
                out = dec(jnp.concatenate([h_t, a_t], -1) if Ed else h_t)
                mean, logvar = out[..., :D], out[..., D:]
                if grp.role == PASSIVE:  # no edges: nothing ever moves it
                    mean = jnp.zeros_like(mean)
            means.append(mean.reshape(M, n * D))
            logvars.append(logvar.reshape(M, n * D))
        mean, logvar = jnp.concatenate(means, -1), jnp.concatenate(logvars, -1)
        Dt = g.out_dim
        max_lv = self.param("max_logvar", lambda _: jnp.full((Dt,), 0.5, jnp.float32))
        min_lv = self.param("min_logvar", lambda _: jnp.full((Dt,), -10.0, jnp.float32))
        max_lv, min_lv = (
            jnp.broadcast_to(max_lv, logvar.shape),
            jnp.broadcast_to(min_lv, logvar.shape),
        )
        logvar = max_lv - nn.softplus(max_lv - logvar)
        logvar = min_lv + nn.softplus(logvar - min_lv)
        return mean, logvar


# --- the kinematic prior --------------------------------------------------------------------------


def _prior_layout(graph: Graph) -> tuple[int, int, int, int, int, int] | None:
    """(x offset, n, F, action offset, z offset, D) of the actuated group, or None."""
    x_off, z_off = 0, 0
    act_off = sum(g.n * g.in_dim for g in graph.groups) + graph.num_edges * graph.edge_dim
    for g in graph.groups:
        if g.role == ACTUATED:
            return x_off, g.n, g.in_dim, act_off, z_off, g.out_dim
        x_off += g.n * g.in_dim
        z_off += g.n * g.out_dim
    return None


def _prior_inputs(graph: Graph, x: Float[Array, "B I"]) -> Float[Array, "B n K"]:
    """Each actuated node's [normalised features, action, 1], K = F + A + 1."""
    x_off, n, F, act_off, _, _ = _prior_layout(graph)
    B, A = x.shape[0], graph.act_dim
    f = x[:, x_off : x_off + n * F].reshape(B, n, F)
    a = jnp.broadcast_to(x[:, None, act_off : act_off + A], (B, n, A))
    return jnp.concatenate([f, a, jnp.ones((B, n, 1), x.dtype)], axis=-1)


def prior_outputs(
    graph: Graph, weights: Float[Array, "K Da"], x: Float[Array, "B I"]
) -> Float[Array, "B D"]:
    """The kinematic prior in normalised output units: the actuated nodes' columns are
    `[features, action, 1] @ weights`, every other column is zero."""
    layout = _prior_layout(graph)
    if layout is None or weights.size == 0:
        return jnp.zeros((x.shape[0], graph.out_dim), x.dtype)
    _, n, _, _, z_off, D = layout
    B = x.shape[0]
    arm = (_prior_inputs(graph, x) @ weights).reshape(B, n * D)
    return jnp.concatenate(
        [
            jnp.zeros((B, z_off), x.dtype),
            arm,
            jnp.zeros((B, graph.out_dim - z_off - n * D), x.dtype),
        ],
        axis=-1,
    )


def fit_prior(
    graph: Graph, x: Float[np.ndarray, "N I"], y: Float[np.ndarray, "N D"], ridge: float = 1e-3
) -> np.ndarray:
    """Ridge regression (host) of the actuated nodes' normalised deltas on their
    [normalised features, action, 1], pooled over the nodes: weights [F + A + 1, D]
    (an empty array if the graph has no actuated node)."""
    layout = _prior_layout(graph)
    if layout is None:
        return np.zeros((0, 0), np.float32)
    _, n, _, _, z_off, D = layout
    u = np.asarray(_prior_inputs(graph, jnp.asarray(x)), np.float64).reshape(
        -1, layout[2] + graph.act_dim + 1
    )
    t = np.asarray(y, np.float64)[:, z_off : z_off + n * D].reshape(-1, D)
    gram = u.T @ u + ridge * len(u) * np.eye(u.shape[1])
    return np.linalg.solve(gram, u.T @ t).astype(np.float32)


# --- the contact projection ----------------------------------------------------------------------

MIN_PUSHES = 20  # pushes a fit needs to see before it turns the contact projection on


def contact_pairs(layout: EntityLayout) -> np.ndarray:
    """[C, 2, P] obs indices of the (arm position, object position) of every arm-object pair
    whose positions have P >= 2 entries (the last is vertical); [0, 2, 0] if none."""
    arms = [e for e in layout.entities_of_type(ARM) if e.position is not None]
    objs = [
        e
        for t in layout.types
        if t not in (ARM, GOAL)
        for e in layout.entities_of_type(t)
        if e.position is not None
    ]
    out = [
        (indices(a.position), indices(o.position))
        for a in arms
        for o in objs
        if len(indices(a.position)) == len(indices(o.position)) >= 2
    ]
    if not out:
        return np.zeros((0, 2, 0), np.int32)
    return np.asarray(out, np.int32)


def contact_separation(
    obs: Float[np.ndarray, "N O"],
    next_obs: Float[np.ndarray, "N O"],
    pairs: np.ndarray,
    moved: float = 1e-3,
) -> np.ndarray:
    """(separation, height) of the contact projection, from data (host, NumPy, world frame).

    A push is a transition in which an object slid (moved more than `moved` horizontally and less
    than `moved` vertically) with the arm within 0.1 horizontally; over all pairs' pushes, the
    separation is the 5th percentile of the arm-object horizontal distance after the step and
    the height the 99th percentile of their vertical offset. Zeros (projection off) with fewer than
    `MIN_PUSHES` pushes."""
    dists, heights = [], []
    for arm, obj in pairs:
        step = next_obs[:, obj] - obs[:, obj]
        d = next_obs[:, obj] - next_obs[:, arm]
        dist = np.linalg.norm(d[:, :-1], axis=-1)
        push = (
            (np.linalg.norm(step[:, :-1], axis=-1) > moved)
            & (np.abs(step[:, -1]) < moved)
            & (dist < 0.1)
        )
        dists.append(dist[push])
        heights.append(np.abs(d[push, -1]))
    dist, height = np.concatenate(dists), np.concatenate(heights)
    if len(dist) < MIN_PUSHES:
        return np.zeros(2, np.float32)
    return np.asarray([np.percentile(dist, 5), np.percentile(height, 99)], np.float32)


def solid_extent(next_obs: Float[np.ndarray, "N O"], pairs: np.ndarray) -> np.ndarray:
    """(radius, top) of the solid-object projection, from data (host, NumPy, world frame).

    radius: the 1st percentile of the arm-object horizontal distance over the steps that end with
    the arm lower than the object's centre and within 0.1 of it horizontally (how close the arm
    gets from the side); top: the 1st percentile of the arm's height over the steps that end with
    the arm within `radius / 2` horizontally (how low it gets over the middle of the object: it
    rests on the top; near the edge it can slide down the side), or `radius` itself (an object
    as tall as it is wide) while fewer than `MIN_PUSHES` such steps are in the data: a planner
    that has learnt to stay off the object rarely shows one (9 in 40 episodes of a FetchPush
    run). Zeros (off) with fewer than `MIN_PUSHES` steps from the side. On the 179 episodes of
    a FetchPush run that often rode on the block: radius 4.0 cm (a 5 cm block and the
    fingers), top 3.6 cm."""
    d = np.concatenate([next_obs[:, arm] - next_obs[:, obj] for arm, obj in pairs])  # obj -> arm
    dist = np.linalg.norm(d[:, :-1], axis=-1)  # horizontal
    side = dist[(d[:, -1] < 0) & (dist < 0.1)]
    if len(side) < MIN_PUSHES:
        return np.zeros(2, np.float32)
    radius = np.percentile(side, 1)
    top = d[dist < radius / 2, -1]
    height = np.percentile(top, 1) if len(top) >= MIN_PUSHES else radius
    return np.asarray([radius, height], np.float32)


def project_contacts(
    prev: Float[Array, "B O"],
    nxt: Float[Array, "B O"],
    pairs: np.ndarray,
    separation,
    height,
    top=0.0,
) -> Float[Array, "B O"]:
    """Objects cannot be inside the arm: an object whose predicted centre ends a step closer to
    an arm's than `separation` horizontally (within `height` vertically) is carried by the arm:
    it keeps the horizontal offset from the arm it had before the step (`prev`), i.e. it moves
    by the arm's horizontal displacement instead of what the network predicted. Carrying, not
    pushing the object straight out to `separation`, keeps it ahead of an arm that moves
    several centimetres a step instead of letting the arm slip past its side. With separation 0
    nothing moves (exactly).

    With `top` > 0 (`solid_top`; separation and height are then `solid_extent`'s radius and
    top) an arm that started the step at least `top` above the object's centre cannot come down
    into it either: it comes to rest on the top (its height set to the object's plus `top`) and
    does not carry the object, which keeps the network's prediction (it may drag it a little).
    Only an arm that comes from the side, lower than the top, carries the object."""
    for arm, obj in pairs:
        d = nxt[:, obj[:-1]] - nxt[:, arm[:-1]]  # horizontal, arm -> object [B, P-1]
        dz = nxt[:, arm[-1]] - nxt[:, obj[-1]]  # the arm's height above the object
        over = jnp.linalg.norm(d, axis=-1) < separation  # [B]
        inside = over & (jnp.abs(dz) < height)
        if not isinstance(top, (int, float)) or top > 0:
            above = (prev[:, arm[-1]] - prev[:, obj[-1]] >= top) & (top > 0)
            rest = over & above & (dz < top)
            lifted = jnp.where(rest, nxt[:, obj[-1]] + top, nxt[:, arm[-1]])
            nxt = nxt.at[:, arm[-1]].set(lifted)
            inside = inside & ~above
        carried = prev[:, obj[:-1]] + nxt[:, arm[:-1]] - prev[:, arm[:-1]]
        nxt = nxt.at[:, obj[:-1]].set(jnp.where(inside[:, None], carried, nxt[:, obj[:-1]]))
    return nxt


# --- the model ------------------------------------------------------------------------------------


@struct.dataclass
class StructuredState:
    """params: member-stacked GraphNet params (leading dim E); opt_state: optax state; in_norm
    over the graph inputs [I] and out_norm over the outputs [D], pooled per type; prior: the
    kinematic prior's weights [F + A + 1, D_arm] (zeros until the first fit; [0, 0] if none);
    contact: the contact projection's (separation, height, top) in obs units (zeros, i.e. off,
    until a fit finds enough pushes; see `contact_separation`, and `solid_extent` for `solid_top`,
    whose radius and top are the separation and height, top > 0)."""

    params: Params
    opt_state: optax.OptState
    in_norm: Normalizer
    out_norm: Normalizer
    prior: Float[Array, "K Da"]
    contact: Float[Array, " 3"]


def _velocity_frame(spec: EnvSpec) -> tuple[np.ndarray, np.ndarray]:
    """Obs indices (to, from) with obs[to] + obs[from] the world-frame velocity, for the task's
    `RELATIVE_VELOCITIES` (empty arrays for other tasks)."""
    to, frm = [], []
    for name, count, other in RELATIVE_VELOCITIES.get(spec.name, ()):
        to += spec.layout.index_of(name, "velocity")[:count]
        frm += spec.layout.index_of(other, "velocity")[:count]
    return np.asarray(to, np.int32), np.asarray(frm, np.int32)


def _graph_options(cfg: StructuredConfig, spec: EnvSpec) -> dict:
    """`compile_graph`'s keyword options for a config on a task (the table top only where
    `surface_features` is on and the task describes one). ValueError (one line): the task has no
    entity layout."""
    if spec.layout is None:
        raise ValueError(
            f"task {spec.name!r} has no entity layout, which model 'structured' needs: "
            f"choose from {', '.join(tasks_with_layout())}"
        )
    return dict(
        goal_edges=cfg.goal_edges,
        passive_objects=cfg.passive_objects,
        lookahead=cfg.lookahead and cfg.kinematic_prior,
        object_velocity=cfg.object_velocity,
        surface=spec.surface if cfg.surface_features else None,  # None where there is none
    )


def check_structured_task(cfg: StructuredConfig, spec: EnvSpec) -> None:
    """ValueError (one line) unless `cfg` can model `spec`'s task: it has an entity layout (the
    registry's check before a run)."""
    _graph_options(cfg, spec)


def tasks_with_layout() -> tuple[str, ...]:
    """The registered tasks whose spec has an entity layout, sorted."""
    from prototypes.envs.registry import ALL_TASKS

    return tuple(sorted(name for name, spec in ALL_TASKS.items() if spec.layout is not None))


def make_structured(cfg: StructuredConfig, spec: EnvSpec) -> WorldModel:
    """Build the structured ensemble for a task. The returned functions close over plain scalars
    and the host-compiled graph.

    Raises:
        ValueError: the task has no entity layout (one line naming the tasks that have one).
    """
    options = _graph_options(cfg, spec)  # raises before spec.layout is read
    graph = compile_graph(spec.layout, spec.act_dim, **options)
    E, I, I0, D = cfg.members, graph.in_dim, graph.base_dim, graph.out_dim
    frame_to, frame_from = _velocity_frame(spec)
    net = GraphNet(graph=graph, hidden_size=cfg.hidden_size, hidden_layers=cfg.hidden_layers)
    optimizer = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay)
    propagate = PREDICT_BY_PROPAGATION[cfg.propagation]
    logvar_penalty, use_prior, cutoff = cfg.logvar_penalty, cfg.kinematic_prior, cfg.cutoff
    nll_beta = cfg.nll_beta
    use_projection, solid_top = cfg.contact_projection, cfg.contact_projection and cfg.solid_top
    pairs = contact_pairs(spec.layout)
    reward_fn, done_fn = jax.vmap(spec.reward_fn), jax.vmap(spec.done_fn)
    keys_in, (keys_out, center_out) = _column_groups(graph)
    out_cols = jnp.asarray(graph.out_cols)
    arm_cols = jnp.asarray(
        np.concatenate([np.full(g.n * g.out_dim, g.role == ACTUATED) for g in graph.groups])
    )
    prior_shape = (
        (0, 0)
        if _prior_layout(graph) is None
        else (
            _prior_layout(graph)[2] + spec.act_dim + 1,
            _prior_layout(graph)[5],
        )
    )
    base_inputs = jax.jit(functools.partial(graph_inputs, graph, cutoff))
    jit_lookahead = jax.jit(lambda *args: lookahead_raw(*args))
    train_steps = make_train_steps(
        lambda params, x, y: ensemble_loss(net.apply, params, x, y, logvar_penalty, nll_beta),
        optimizer,
    )
    member_holdout_mse = jax.jit(functools.partial(holdout_mse, net.apply))

    # jitted: the graph network's init run op by op took ~17 s here, compiled ~4 s (same values)
    init_members = jax.jit(jax.vmap(net.init, in_axes=(0, None)))

    def init(key: PRNGKey, example: Transition) -> StructuredState:
        del example  # shapes come from the spec
        params = init_members(jax.random.split(key, E), jnp.zeros((1, I), jnp.float32))
        return StructuredState(
            params=params,
            opt_state=optimizer.init(params),
            in_norm=Normalizer.identity(I),
            out_norm=Normalizer.identity(D),
            prior=jnp.zeros(prior_shape, jnp.float32),
            contact=jnp.zeros(3, jnp.float32),
        )

    def lookahead_raw(out_norm: Normalizer, prior, x0, obs) -> Float[Array, "B L"]:
        """Raw edge features after moving the arm nodes by the prior's mean delta (x0: the
        normalised base inputs)."""
        delta = out_norm.denormalize_or_mean(prior_outputs(graph, prior, x0))
        moved = obs.at[:, out_cols].add(jnp.where(arm_cols[None], delta, 0.0))
        return edge_features(graph, moved).reshape(obs.shape[0], -1)

    def model_inputs(state: StructuredState, obs, action) -> Float[Array, "B I"]:
        """The normalised network input of a batch."""
        n = state.in_norm
        x0 = (graph_inputs(graph, cutoff, obs, action) - n.mean[None, :I0]) / n.std[None, :I0]
        if not graph.lookahead:
            return x0
        look = lookahead_raw(state.out_norm, state.prior, x0, obs)
        return jnp.concatenate([x0, (look - n.mean[None, I0:]) / n.std[None, I0:]], axis=-1)

    def to_world(o):  # relative velocities made absolute (RELATIVE_VELOCITIES)
        return o.at[:, frame_to].add(o[:, frame_from]) if frame_to.size else o

    def from_world(o):
        return o.at[:, frame_to].add(-o[:, frame_from]) if frame_to.size else o

    def predict(state: StructuredState, key: PRNGKey, obs, action) -> Step:
        """Batched: obs [B, O], action [B, A] -> Step [B]. The key is consumed."""
        next_obs = next_obs_by(propagate, state, key, obs, action)
        return Step(obs=next_obs, reward=reward_fn(obs, action, next_obs), done=done_fn(next_obs))

    def next_obs_by(propagate_fn, state: StructuredState, key: PRNGKey, obs, action):
        obs, action = jnp.asarray(obs), jnp.asarray(action)
        world = to_world(obs)
        x = model_inputs(state, world, action)
        z = propagate_fn(net.apply, state.params, key, x) + prior_outputs(graph, state.prior, x)
        nxt = world.at[:, out_cols].add(state.out_norm.denormalize_or_mean(z))
        if pairs.size:
            c = state.contact
            nxt = project_contacts(world, nxt, pairs, c[0], c[1], c[2] if solid_top else 0.0)
        for rel, pos, other in graph.derived:
            rel_i, pos_i, other_i = (np.asarray(i, np.int32) for i in (rel, pos, other))
            nxt = nxt.at[:, rel_i].set(nxt[:, pos_i] - nxt[:, other_i])
        return from_world(nxt)

    finetune = rollout_finetuner(
        cfg, lambda st, o, a: next_obs_by(predict_expectation, st, jax.random.key(0), o, a)
    )

    def training_arrays(data: Transition):
        """Normalised inputs x [N', I] and residual targets y [N', D] (zero-padded to
        `bucket_rows(N)` rows), the normalisers and the prior's weights."""
        obs = np.asarray(to_world(jnp.asarray(data.obs, jnp.float32)))
        next_obs = np.asarray(to_world(jnp.asarray(data.next_obs, jnp.float32)))
        x_raw = np.asarray(base_inputs(obs, np.asarray(data.action, np.float32)))
        y_raw = graph_targets(graph, obs, next_obs)
        in_norm = pooled_normalizer(x_raw, keys_in[:I0])
        out_norm = pooled_normalizer(y_raw, keys_out, center_out)
        x = (x_raw - np.asarray(in_norm.mean)) / np.asarray(in_norm.std)
        y = (y_raw - np.asarray(out_norm.mean)) / np.asarray(out_norm.std)
        y = np.where(np.asarray(out_norm.constant), 0.0, y)
        prior = fit_prior(graph, x, y) if use_prior else np.zeros(prior_shape, np.float32)
        y = y - np.asarray(prior_outputs(graph, jnp.asarray(prior), jnp.asarray(x)))
        if graph.lookahead:
            look = np.asarray(jit_lookahead(out_norm, jnp.asarray(prior), jnp.asarray(x), obs))
            look_norm = pooled_normalizer(look, keys_in[I0:])
            x = np.concatenate([x, np.asarray(look_norm.normalize(look))], axis=-1)
            in_norm = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), in_norm, look_norm)
        rows = bucket_rows(len(x))
        return (
            jnp.asarray(pad_rows(x.astype(np.float32), rows)),
            jnp.asarray(pad_rows(y.astype(np.float32), rows)),
            in_norm,
            out_norm,
            jnp.asarray(prior),
        )

    def fit(
        state: StructuredState, key: PRNGKey, data: Transition
    ) -> tuple[StructuredState, Metrics]:
        """Refit normalisers and prior, then train with early stopping on a held-out split (the
        ensemble's loop, and its multi-step fine-tuning when rollout_horizon > 0; minibatch
        indices from a NumPy generator seeded by `key`)."""
        x, y, in_norm, out_norm, prior = training_arrays(data)
        state = state.replace(in_norm=in_norm, out_norm=out_norm, prior=prior)
        if pairs.size and use_projection:
            nxt_w = np.asarray(to_world(jnp.asarray(data.next_obs, jnp.float32)))
            if solid_top:
                radius, top = solid_extent(nxt_w, pairs)
                contact = np.asarray([radius, top, top], np.float32)
            else:
                obs_w = np.asarray(to_world(jnp.asarray(data.obs, jnp.float32)))
                contact = np.append(contact_separation(obs_w, nxt_w, pairs), 0.0)
            state = state.replace(contact=jnp.asarray(contact, jnp.float32))
        state, metrics = train_with_early_stopping(
            state,
            key,
            x,
            y,
            len(data.obs),
            cfg,
            train_steps=train_steps,
            member_holdout_mse=member_holdout_mse,
        )
        return finetune(state, key, data, metrics)

    return WorldModel(init=jax.jit(init), predict=predict, fit=fit, name="structured")


# --- carrying a fitted model over to another layout -----------------------------------------------


def _node_types(graph: Graph) -> list[str]:
    return [g.type for g in graph.groups for _ in range(g.n)]


def _edge_pairs(graph: Graph) -> dict[int, tuple[str, str]]:
    """edge-group id -> its (sender type, receiver type)."""
    types = _node_types(graph)
    return {
        int(t): (types[s], types[r])
        for t, s, r in zip(graph.edge_group, graph.senders, graph.receivers, strict=True)
    }


def _converted_types(spec: EnvSpec) -> dict[str, bool]:
    """type -> whether its entities' velocities are put back in the world frame
    (`RELATIVE_VELOCITIES`); ValueError if only some entities of a type are."""
    names = {name for name, _, _ in RELATIVE_VELOCITIES.get(spec.name, ())}
    out: dict[str, bool] = {}
    for e in spec.layout.entities:
        if out.setdefault(e.type, e.name in names) != (e.name in names):
            raise ValueError(f"task {spec.name!r}: only some {e.type!r} velocities are relative")
    return out


def _stats_by_key(norm: Normalizer, keys: list) -> dict:
    """key -> (mean, std, constant) of the first column with that key (all columns with one key
    share their statistics, `pooled_normalizer`)."""
    mean, std, const = (np.asarray(a, np.float64) for a in (norm.mean, norm.std, norm.constant))
    out = {}
    for c, key in enumerate(keys):
        if key is not None and key not in out:
            out[key] = (mean[c], std[c], bool(const[c]))
    return out


def _pool(stats: list[tuple[float, float, bool, int]]) -> tuple[float, float, bool]:
    """The (mean, std, constant) of the union of groups given as (mean, std, constant, count):
    what `pooled_normalizer` gives on all their columns together (a constant group's spread is
    below 1e-6 and counted as 0)."""
    n = np.asarray([c for *_, c in stats], np.float64)
    m = np.asarray([s[0] for s in stats])
    sd = np.asarray([0.0 if s[2] else s[1] for s in stats])
    mean = float(np.sum(n * m) / n.sum())
    std = float(np.sqrt(np.sum(n * (sd**2 + (m - mean) ** 2)) / n.sum()))
    return (mean, 1.0, True) if std < 1e-6 else (mean, std, False)


def transfer_state(
    state: StructuredState, cfg: StructuredConfig, from_spec: EnvSpec, to_spec: EnvSpec
) -> StructuredState:
    """A structured model fitted on one task's layout, rebuilt for another layout of the same
    entity types (FetchPush's one block -> fetch_push2's two), with no new data.

    Weights are shared per entity type, so they carry over as they are: each type's encoder
    (or embedding) and decoder, the edge network, the arm's kinematic prior and the contact
    projection. What is laid out per column of the flattened graph is re-laid out for the new
    graph from the per-type statistics, never refitted: the input normaliser (node features by
    type, edge features by (sender type, receiver type), actions; cut-off weights stay as they
    are), the output normaliser (by type) and the per-column log-variance bounds (a new entity
    takes those of the first entity of its type). An edge type pair the old graph never had
    (object -> object, with one object in training) gets the edge statistics pooled over all of
    the old graph's edges, exactly as `pooled_normalizer` would have pooled them on the old data
    with one key per feature. The optimiser's moments are re-laid out like the parameters (its
    step count kept), so training could continue. Types of the old layout that the new one lacks
    are dropped. Build the new model with `make_structured(cfg, to_spec)` and the same `cfg`.

    The flat ensemble cannot be carried over: its input size is the observation's.

    Args:
        state: the fitted state, of `make_structured(cfg, from_spec)`.
        cfg: the structured config both models use.
        from_spec, to_spec: the tasks, both with an entity layout.

    Raises:
        ValueError (one line): `cfg` is not a StructuredConfig (the flat ensemble); a task has no
            layout; the new layout has an entity type the old one lacks, or a type whose feature
            kinds or sizes, role or velocity frame differ (the type is named); or the action or
            position sizes differ.
    """
    if not isinstance(cfg, StructuredConfig):
        raise ValueError(
            f"a {type(cfg).__name__} model cannot be carried over from {from_spec.name!r} to "
            f"{to_spec.name!r}: its input size is fixed by the flat observation "
            f"({from_spec.obs_dim} vs {to_spec.obs_dim}); only 'structured' shares weights per "
            "entity type"
        )
    for spec in (from_spec, to_spec):
        if spec.layout is None:
            raise ValueError(f"task {spec.name!r} has no entity layout to carry a model over")
    route = f"from {from_spec.name!r} to {to_spec.name!r}"
    if from_spec.act_dim != to_spec.act_dim:
        raise ValueError(
            f"cannot carry the structured model {route}: action sizes differ "
            f"({from_spec.act_dim} vs {to_spec.act_dim})"
        )
    old = compile_graph(from_spec.layout, from_spec.act_dim, **_graph_options(cfg, from_spec))
    new = compile_graph(to_spec.layout, to_spec.act_dim, **_graph_options(cfg, to_spec))
    old_groups = {g.type: g for g in old.groups}
    old_frame, new_frame = _converted_types(from_spec), _converted_types(to_spec)
    for g in new.groups:
        if g.type not in old_groups:
            raise ValueError(
                f"cannot carry the structured model {route}: entity type {g.type!r} is not in "
                f"{from_spec.name!r}'s layout (types {', '.join(old_groups)})"
            )
        o = old_groups[g.type]
        sizes = [
            {k: len(indices(v)) for k, v in spec.layout.entities_of_type(g.type)[0].kinds.items()}
            for spec in (from_spec, to_spec)
        ]
        if sizes[0] != sizes[1] or (o.role, o.in_dim, o.out_dim) != (g.role, g.in_dim, g.out_dim):
            raise ValueError(
                f"cannot carry the structured model {route}: entity type {g.type!r} has feature "
                f"kinds and sizes {sizes[0]} there but {sizes[1]} here"
            )
        if old_frame[g.type] != new_frame[g.type]:
            raise ValueError(
                f"cannot carry the structured model {route}: entity type {g.type!r} has its "
                "velocity relative to another entity's in one task only (RELATIVE_VELOCITIES)"
            )
    if new.num_edges and old.num_edges and old.edge_dim != new.edge_dim:
        raise ValueError(
            f"cannot carry the structured model {route}: positions have "
            f"{old.edge_dim - 1} entries there but {new.edge_dim - 1} here"
        )
    if new.num_edges and not old.num_edges:
        raise ValueError(f"cannot carry the structured model {route}: it was fitted without edges")

    # output columns: each new column reads the first old column of its (type, feature)
    (old_in, (old_out, _)), (new_in, (new_out, _)) = _column_groups(old), _column_groups(new)
    out_src = np.asarray([old_out.index(k) for k in new_out], np.int32)
    out_norm = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[out_src]), state.out_norm)

    # input columns: by key, edge groups matched through their (sender, receiver) type pair
    old_pairs, new_pairs = _edge_pairs(old), _edge_pairs(new)
    counts = {p: int(np.sum(old.edge_group == t)) for t, p in old_pairs.items()}

    def by_pair(key, pairs: dict[int, tuple[str, str]]):
        """An edge key's group id replaced by its type pair (other keys as they are)."""
        if key is not None and key[0] in ("edge", "look"):
            return (key[0], pairs[key[1]], key[2])
        return key

    stats = _stats_by_key(state.in_norm, old_in)
    old_stats = {by_pair(k, old_pairs): v for k, v in stats.items()}
    mean, std, const = [], [], []
    for key in new_in:
        key = by_pair(key, new_pairs)
        if key is None:  # a cut-off weight: kept as it is
            m, sd, c = 0.0, 1.0, False
        elif key in old_stats:
            m, sd, c = old_stats[key]
        else:  # an edge type pair the old graph never had
            kind, _, f = key
            m, sd, c = _pool([(*old_stats[(kind, p, f)], n) for p, n in counts.items()])
        mean.append(m)
        std.append(sd)
        const.append(c)
    in_norm = Normalizer(
        mean=jnp.asarray(mean, jnp.float32),
        std=jnp.asarray(std, jnp.float32),
        constant=jnp.asarray(const, bool),
    )

    keep = {"edge"} if new.num_edges else set()
    keep |= {f"{part}_{g.type}" for g in new.groups for part in ("encoder", "embed", "decoder")}

    def relayout(params):
        inner = params["params"]
        out = {k: v for k, v in inner.items() if k in keep}
        for bound in ("max_logvar", "min_logvar"):
            out[bound] = jnp.asarray(np.asarray(inner[bound])[..., out_src])  # host: no compile
        return {**params, "params": out}

    tree = jax.tree.structure(state.params)
    is_params = lambda node: jax.tree.structure(node) == tree  # noqa: E731
    opt_state = jax.tree.map(
        lambda node: relayout(node) if is_params(node) else node,
        state.opt_state,
        is_leaf=is_params,
    )
    return state.replace(
        params=relayout(state.params), opt_state=opt_state, in_norm=in_norm, out_norm=out_norm
    )
