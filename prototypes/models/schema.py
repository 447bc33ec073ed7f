"""Schema networks: lifted AND/OR rules over entity attributes, learned from transitions.

Representation (prototypes/envs/schema_world.py holds the data types). Every grid cell is an
entity with K binary attributes; what an entity sees at time t is a bool feature vector of
literals, "attribute k of the cell at relative offset o equals v" for each offset, attribute and
v in {0, 1}, plus the action one-hot. A schema is a conjunction of such literals (a sorted tuple
of feature indices) and is lifted: the same conjunction is tested at every cell, so a rule
learned where a block sat in one place applies to any block anywhere, and to any number of
blocks. Each attribute has two events with their own schemas: "turns on" (0 at t, 1 at t + 1)
and "turns off" (1 at t, 0 at t + 1); the prediction of an event is the OR of its schemas, and
an attribute no schema changes keeps its value. The reward of a transition is the OR of its
schemas over schemas and cells. In factor-graph terms a grounded schema is an AND factor over
its literals and each event an OR factor over its schemas (prototypes/graphs/factors.py); that
unrolled graph is for planning and is not built here.

Why events and not "the attribute is 1 at t + 1". Persistence is the common case: a block stays
put unless pushed. Written as a rule for "block at t + 1" it is "block now AND NOT pushed", and
the negation of a push condition (an OR over directions of ANDs) multiplies out into many
overlapping conjunctions. Learning the changes only (each event on the entities where it can
happen, the target attribute's own literal removed from the candidates because it is constant
there) leaves one short conjunction per cause. Kansky et al. (2017) handle persistence with a
separate self-transition term beside the schemas for the same reason.

Learning (`learn_schemas`), one event at a time. Examples are bags of entity feature vectors
with a label per bag: for an attribute event a bag is one (entity, t) restricted to the entities
where the event can happen, labelled by whether it happened; for the reward a bag is all the
cells of one transition, labelled by the reward, and covering any cell covers the bag. A schema
is consistent if it covers no instance of a negative bag. The search is a greedy set cover of
the positive bags by consistent conjunctions:

1. Take the not yet explained positive bags in order of multiplicity (identical bags counted
   once) and collect their instances, whole bags at a time, up to `max_seeds` instances.
2. From each seed instance, build a consistent conjunction of literals true in the seed, so the
   seed stays covered. Specialise from the empty conjunction: add the seed literal with the best
   FOIL-style gain, p1 (log2 p1/(p1 + n1) - log2 p0/(p0 + n0)), where p and n are the open
   positive bags (weighted) and the negative instances still covered before (0) and after (1)
   adding it, until no negative is covered. Then prune: drop, last added first, any literal
   whose removal still covers no negative. The result is an irreducible consistent conjunction.
   A seed whose literals some negative holds as a subset cannot be made consistent; it is
   marked and skipped. Adding literals only loses coverage, so a seed is abandoned as soon as
   it covers less than the best seed so far (the result is the same, only faster).
3. Keep the seed's conjunction that explains the most unexplained positive bags (ties: fewer
   literals, then smaller indices), add it, mark its bags explained, repeat.
4. Stop when every positive bag is explained or no usable seed is left: a positive instance
   identical to a negative one can never be explained by any conjunction over these features
   (a hidden cause, noise, or a missing offset), and such bags are reported as `leftover`,
   never forced into a schema with false positives.
5. Drop any schema whose bags the others explain too (smallest coverage first).

Why specialise rather than generalise. Starting at the seed's most specific conjunction (~50
literals here) and dropping literals while no negative gets covered also ends at an irreducible
consistent conjunction, but the early drops are unconstrained (no negative is anywhere near a
50-literal conjunction) and an arbitrary drop order discards the literals that matter: on 100
push-world transitions it returned 52 schemas for the 8 true gripper-leaves schemas. Growing
from the empty conjunction adds first the literals that exclude the most negatives for the
positives they keep (the action, then the cells ahead), and recovered the 8 exactly.

On noiseless data drawn so that every configuration of the relevant cells has positive
probability, an irreducible consistent conjunction is a prime implicant of the true event once
enough transitions have refuted the over-general ones and the spurious literals (each one
needs a negative example that it alone excludes). When the true rules are exactly their prime
implicants, each essential (as in `schema_world.push_world`), the learned set then equals the
true set. Before that point the errors are over-general or spurious schemas, and for one data
stream they need not fall monotonically with more data (experiments/schema_recovery.py gives
the curve over seeds). Cost: one specialisation step is a column sum over the negatives still
covered, so a fit of the push world from 1600 transitions of a 6 x 6 grid (~58k entity-steps)
takes a few seconds of NumPy; identical negative feature vectors are counted once.

Comparing schema sets (`canonical`, `recovery`): a conjunction is canonical as a sorted tuple of
distinct indices. A reward schema is only defined up to which cell it is grounded at (the same
push seen from the goal, the block or the gripper), so reward schemas are also translated to
the lexicographically smallest equivalent placement whose offsets all stay in the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, Int

from prototypes.config import arg, check
from prototypes.envs.schema_world import (
    Schema,
    SchemaRules,
    SchemaSpec,
    ground,
)

__all__ = [
    "SchemaFit",
    "SchemaLearnResult",
    "learn_schemas",
    "learn_rules",
    "canonical",
    "canonical_rules",
    "recovery",
    "describe",
    "format_rules",
    "event_names",
    "schema_factor_graph",
    "SchemaModelConfig",
    "SchemaModelState",
    "rules_to_state",
    "make_schema_model",
]


@dataclass(frozen=True)
class SchemaLearnResult:
    """The learned schemas of one event and what they leave unexplained.

    Attributes:
        schemas: the learned conjunctions (sorted feature index tuples), in the order added.
        leftover: int [L], indices of the positive bags no consistent schema explains.
        num_positive: number of positive bags.
    """

    schemas: tuple[Schema, ...]
    leftover: np.ndarray
    num_positive: int


@dataclass(frozen=True)
class SchemaFit:
    """Learned rules of a whole world and each event's unexplained positives.

    Attributes:
        rules: the learned `SchemaRules`.
        leftover: event name ("on:gripper", "off:block", "reward") -> unexplained positives:
            int [L, 3] (t, row, col) for attribute events, int [L] transition indices for the
            reward. Empty arrays when everything is explained.
        num_positive: event name -> number of positive examples.
    """

    rules: SchemaRules
    leftover: dict[str, np.ndarray]
    num_positive: dict[str, int]


def _unique_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index of each distinct row, inverse [N]) for a bool [N, F] array, via packed bytes."""
    packed = np.packbits(x, axis=1)
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def learn_schemas(
    features: Bool[np.ndarray, "N F"],
    labels: Bool[np.ndarray, " M"],
    bags: Int[np.ndarray, " N"] | None = None,
    *,
    allowed: Bool[np.ndarray, " F"] | None = None,
    max_seeds: int = 16,
) -> SchemaLearnResult:
    """Greedy consistent set cover of the positive bags by conjunctions (module docstring).

    Args:
        features: bool [N, F], one row per instance.
        labels: bool [M], one per bag (M = N when `bags` is None).
        bags: int [N] in 0..M-1, the bag of each instance; None: each instance is its own bag.
        allowed: bool [F], the features a schema may use (default all).
        max_seeds: instances tried as seeds per added schema (whole bags, at least one bag).

    Returns:
        The schemas as feature indices into the full F, and the unexplained positive bags.

    Raises:
        ValueError: mismatched shapes or bag ids out of range.
    """
    x = np.asarray(features, bool)
    labels = np.asarray(labels, bool)
    if x.ndim != 2:
        raise ValueError(f"features must be [N, F], got shape {x.shape}")
    N, F = x.shape
    if bags is None:
        if labels.shape != (N,):
            raise ValueError(f"labels must be [{N}] (one per instance), got {labels.shape}")
        bags = np.arange(N)
    bags = np.asarray(bags)
    if bags.shape != (N,) or (N and (bags.min() < 0 or bags.max() >= labels.shape[0])):
        raise ValueError(f"bags must be [{N}] ids in 0..{labels.shape[0] - 1}")
    if max_seeds < 1:
        raise ValueError(f"max_seeds must be >= 1, got {max_seeds}")
    cols = np.arange(F) if allowed is None else np.flatnonzero(np.asarray(allowed, bool))
    x = x[:, cols]
    pos_bag = labels[bags]
    # negatives: distinct instance rows of negative bags
    xn = x[~pos_bag]
    if len(xn):
        xn = xn[_unique_rows(xn)[0]]
    # positives: identical single-instance bags merge into one weighted bag
    pi = np.flatnonzero(pos_bag)
    xp, pb = x[pi], bags[pi]
    singles = np.bincount(bags, minlength=labels.shape[0])[pb] == 1
    if singles.all() and len(xp):
        first, inv = _unique_rows(xp)
        members = [[] for _ in first]
        for i, j in enumerate(inv):
            members[j].append(pb[i])
        xp, pb = xp[first], np.arange(len(first))
    else:
        ids, pb = np.unique(pb, return_inverse=True)
        members = [[b] for b in ids]
    weight = np.array([len(m) for m in members], np.int64)
    num_positive = int(labels.sum())
    # a positive instance equal to a negative row cannot seed a consistent conjunction (nor can
    # one whose literals a negative holds as a subset: `_grow` finds those and reports -1)
    seedable = np.ones(len(xp), bool)
    if len(xn) and len(xp):
        both = np.concatenate([xn, xp])
        _, inv = _unique_rows(both)
        seedable = ~np.isin(inv[len(xn) :], inv[: len(xn)])
    xn_f, xp_f = xn.astype(np.float32), xp.astype(np.float32)
    xn_sum = xn_f.sum(0)
    explained = np.zeros(len(members), bool)
    schemas: list[np.ndarray] = []
    covers: list[np.ndarray] = []
    while True:
        open_bags = np.flatnonzero(~explained)
        open_bags = open_bags[np.argsort(-weight[open_bags], kind="stable")]
        seeds: list[int] = []
        for b in open_bags:
            inst = np.flatnonzero((pb == b) & seedable)
            if len(inst) == 0:
                continue
            if seeds and len(seeds) + len(inst) > max_seeds:
                break
            seeds.extend(inst.tolist())
        if not seeds:
            break
        live = np.flatnonzero(~explained[pb])
        live = live[np.argsort(pb[live], kind="stable")]
        starts = np.flatnonzero(np.r_[True, pb[live][1:] != pb[live][:-1]])
        xp_hit = np.maximum.reduceat(xp_f[live], starts, axis=0)
        best = None
        for s in seeds:
            bound = -best[0][0] if best is not None else 0.0
            lits, gain = _grow(xn_f, xn_sum, xp_f[live], pb[live], weight, xp_hit, xp[s], bound)
            if gain < 0:  # a negative holds every literal of the seed
                seedable[s] = False
                continue
            key = (-gain, len(lits), tuple(lits))
            if best is None or key < best[0]:
                best = (key, lits)
        if best is None:
            continue
        lits = best[1]
        cov = _covered(xp_f, lits)
        newly = np.unique(pb[cov])
        explained[newly] = True
        schemas.append(lits)
        covers.append(newly)
    # drop schemas whose bags the others explain too, smallest coverage first
    keep = list(range(len(schemas)))
    for i in sorted(keep, key=lambda i: (weight[covers[i]].sum(), i)):
        others = [covers[j] for j in keep if j != i]
        if others and np.isin(covers[i], np.concatenate(others)).all():
            keep.remove(i)
    leftover = sorted(b for j in np.flatnonzero(~explained) for b in members[j])
    return SchemaLearnResult(
        schemas=tuple(tuple(int(cols[i]) for i in schemas[j]) for j in keep),
        leftover=np.asarray(leftover, np.int64),
        num_positive=num_positive,
    )


def _covered(x_f: np.ndarray, lits: np.ndarray) -> np.ndarray:
    """bool [N]: rows with every literal in `lits` true."""
    if len(x_f) == 0:
        return np.zeros(0, bool)
    return x_f[:, lits].sum(1) == len(lits)


def _grow(
    xn_f: np.ndarray,
    xn_sum: np.ndarray,
    xp_f: np.ndarray,
    pb: np.ndarray,
    weight: np.ndarray,
    xp_hit: np.ndarray,
    seed: np.ndarray,
    bound: float = 0.0,
) -> tuple[np.ndarray, int]:
    """The seed's consistent conjunction: specialise, then prune (module docstring, step 2).

    Args:
        xn_f: float32 [Nn, F'] negative instances; xn_sum: [F'] its column sums;
        xp_f: float32 [Np, F'] instances of the open positive bags, sorted by bag;
        pb: int [Np] their bag ids; weight: int [bags]; xp_hit: float32 [open bags, F'], 1
            where a bag has an instance with the literal;
        seed: bool [F'], one open positive instance whose row no negative equals;
        bound: give up (returning coverage 0) once the covered weight falls below this: adding
            literals only loses coverage, so such a seed cannot beat the best one so far.

    Returns the literals (indices into the allowed columns) and the weight of the open positive
    bags they cover; weight -1 if the seed is inconsistent (a negative has all its literals).
    """
    allowed = seed.astype(bool)
    ni = np.arange(len(xn_f))  # negatives the conjunction still covers
    pi = np.arange(len(xp_f))  # open positive instances it still covers
    n1 = xn_sum.astype(np.float64)
    lits: list[int] = []
    while len(ni):
        if lits:
            n1 = xn_f[ni].sum(0).astype(np.float64)  # [F'] negatives still covered, l added
        first = np.r_[True, pb[pi][1:] != pb[pi][:-1]]
        if lits:
            hit = np.maximum.reduceat(xp_f[pi], np.flatnonzero(first), axis=0)  # [bags, F']
        else:
            hit = xp_hit
        wb = weight[pb[pi][first]].astype(np.float64)
        p1 = wb @ hit  # [F'] weight of the open bags still covered with l added
        p0 = float(wb.sum())
        if p0 < bound:
            return np.zeros(0, np.int64), 0
        n0 = float(len(ni))
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = p1 * (np.log2(p1 / (p1 + n1)) - np.log2(p0 / (p0 + n0)))
        gain = np.where(allowed & (n1 < n0), np.nan_to_num(gain, nan=-np.inf), -np.inf)
        best = int(np.argmax(gain))  # ties: the lowest index
        if not np.isfinite(gain[best]):
            return np.zeros(0, np.int64), -1  # no literal of the seed excludes a negative left
        lits.append(best)
        allowed[best] = False
        ni = ni[xn_f[ni, best] > 0]
        pi = pi[xp_f[pi, best] > 0]
    # prune: a literal whose removal keeps every negative out is not needed
    sub = xn_f[:, lits] > 0  # [Nn, L]
    count = sub.sum(1)
    for j in reversed(range(len(lits))):
        if not (~sub[:, j] & (count == len(lits) - 1)).any():
            count = count - sub[:, j]
            sub = np.delete(sub, j, axis=1)
            del lits[j]
    lits_arr = np.asarray(sorted(lits), np.int64)
    cov = _covered(xp_f, lits_arr)
    return lits_arr, int(weight[np.unique(pb[cov])].sum())


def event_names(spec: SchemaSpec) -> list[str]:
    """The event names: "on:<attribute>" and "off:<attribute>" per attribute, then "reward"."""
    return [f"{e}:{a}" for a in spec.attributes for e in ("on", "off")] + ["reward"]


def learn_rules(
    spec: SchemaSpec,
    states: Bool[np.ndarray, "T H W K"],
    actions: Int[np.ndarray, " T"],
    next_states: Bool[np.ndarray, "T H W K"],
    rewards: Bool[np.ndarray, " T"] | None = None,
    *,
    max_seeds: int = 16,
) -> SchemaFit:
    """Learn every attribute's on- and off-schemas (and the reward's) from transitions.

    Args:
        spec: the world's attributes, actions and offsets.
        states, actions, next_states: T transitions.
        rewards: bool [T] (0/1), or None to learn no reward schemas.
        max_seeds: see `learn_schemas`.

    Raises:
        ValueError: shapes that disagree, attribute values not 0/1, actions out of range.
    """
    states, next_states = np.asarray(states), np.asarray(next_states)
    feats = ground(spec, states, actions)
    if next_states.shape != states.shape:
        raise ValueError(
            f"next_states must have the states' shape {states.shape}, got {next_states.shape}"
        )
    T, H, W, K = states.shape
    flat = feats.reshape(-1, spec.num_features)
    cur, nxt = states.reshape(-1, K).astype(bool), next_states.reshape(-1, K).astype(bool)
    where = np.stack(np.unravel_index(np.arange(T * H * W), (T, H, W)), 1)
    on, off, leftover, npos = [], [], {}, {}
    for k, name in enumerate(spec.attributes):
        allowed = np.ones(spec.num_features, bool)
        allowed[[spec.literal((0, 0), name, 0), spec.literal((0, 0), name, 1)]] = False
        for event, mask, label, out in (
            ("on", ~cur[:, k], nxt[:, k], on),
            ("off", cur[:, k], ~nxt[:, k], off),
        ):
            idx = np.flatnonzero(mask)
            res = learn_schemas(flat[idx], label[idx], allowed=allowed, max_seeds=max_seeds)
            out.append(res.schemas)
            leftover[f"{event}:{name}"] = where[idx[res.leftover]].reshape(-1, 3)
            npos[f"{event}:{name}"] = res.num_positive
    reward: tuple[Schema, ...] = ()
    if rewards is not None:
        rewards = np.asarray(rewards)
        if rewards.shape != (T,):
            raise ValueError(f"rewards must be [{T}] (one per transition), got {rewards.shape}")
        bags = np.repeat(np.arange(T), H * W)
        res = learn_schemas(flat, rewards.astype(bool), bags, max_seeds=max(max_seeds, H * W))
        reward = res.schemas
        leftover["reward"], npos["reward"] = res.leftover, res.num_positive
    rules = SchemaRules(on=tuple(on), off=tuple(off), reward=reward)
    return SchemaFit(rules=rules, leftover=leftover, num_positive=npos)


def canonical(spec: SchemaSpec, schema: Sequence[int], translate: bool = False) -> Schema:
    """A schema's canonical form: sorted distinct indices; with `translate`, the smallest such
    tuple over every shift of its cells that keeps all of them among the spec's offsets."""
    base = tuple(sorted(set(int(i) for i in schema)))
    if not translate:
        return base
    decoded = [spec.decode(i) for i in base]
    used = [off for _, off, _ in decoded if off is not None]
    if not used:
        return base
    offsets = set(spec.offsets)
    best = base
    for target in spec.offsets:
        shift = (target[0] - used[0][0], target[1] - used[0][1])
        moved = [(o[0] + shift[0], o[1] + shift[1]) for o in used]
        if not all(o in offsets for o in moved):
            continue
        lits = []
        for name, off, value in decoded:
            if off is None:
                lits.append(spec.action_literal(value))
            else:
                lits.append(spec.literal((off[0] + shift[0], off[1] + shift[1]), name, value))
        best = min(best, tuple(sorted(lits)))
    return best


def canonical_rules(spec: SchemaSpec, rules: SchemaRules) -> dict[str, frozenset[Schema]]:
    """Event name -> the set of its canonical schemas (reward schemas up to translation)."""
    rules.check(spec)
    out = {}
    for k, name in enumerate(spec.attributes):
        out[f"on:{name}"] = frozenset(canonical(spec, s) for s in rules.on[k])
        out[f"off:{name}"] = frozenset(canonical(spec, s) for s in rules.off[k])
    out["reward"] = frozenset(canonical(spec, s, translate=True) for s in rules.reward)
    return out


def recovery(spec: SchemaSpec, true: SchemaRules, learned: SchemaRules) -> dict[str, float]:
    """Precision and recall of the learned schemas against the true ones, over all events.

    A learned schema is a true positive if its event has the same canonical schema. Precision is
    1.0 when nothing was learned (no false claims); recall is 1.0 when nothing is true.

    Returns:
        precision, recall, true_positives, false_positives, false_negatives, exact (1.0 if the
        two sets are equal, else 0.0).
    """
    t, g = canonical_rules(spec, true), canonical_rules(spec, learned)
    tp = sum(len(t[e] & g[e]) for e in t)
    fp = sum(len(g[e] - t[e]) for e in t)
    fn = sum(len(t[e] - g[e]) for e in t)
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "true_positives": float(tp),
        "false_positives": float(fp),
        "false_negatives": float(fn),
        "exact": float(fp == 0 and fn == 0),
    }


def describe(spec: SchemaSpec, schema: Sequence[int]) -> str:
    """A readable conjunction: "block@(0,-1)=1 & wall@(0,0)=0 & action=right"."""
    parts = []
    for i in canonical(spec, schema):
        name, off, value = spec.decode(i)
        parts.append(f"action={value}" if off is None else f"{name}@({off[0]},{off[1]})={value}")
    return " & ".join(parts) or "true"


def format_rules(spec: SchemaSpec, rules: SchemaRules) -> str:
    """One line per schema: "<event> <- <conjunction>", events in spec order."""
    lines = []
    for k, name in enumerate(spec.attributes):
        for event, group in (("on", rules.on[k]), ("off", rules.off[k])):
            lines += [f"{event}:{name} <- {describe(spec, s)}" for s in group]
    lines += [f"reward <- {describe(spec, s)}" for s in rules.reward]
    return "\n".join(lines)


def schema_factor_graph(spec: SchemaSpec, rules: SchemaRules, event: str):
    """One event's schemas at one cell as a factor graph of AND/OR factors (None if the event
    has no schemas), for export to pgmpy (prototypes/graphs/pgmpy_io.to_pgmpy_factor_graph).

    Variables: "<attribute>@(dr,dc)" (binary) for each cell attribute a schema reads, "action"
    (A states, named), a binary "not <attribute>@(dr,dc)" tied to its attribute by a table
    factor where a schema needs the value 0, "action=<name>" tied to "action" likewise,
    "schema<i>" = AND of its literals, and the event ("on:block", ...) = OR of the schemas.

    Raises:
        ValueError: an event name that `event_names(spec)` does not list.
    """
    from prototypes.graphs.factors import AndFactor, OrFactor, TableFactor
    from prototypes.graphs.graph import FactorGraph
    from prototypes.graphs.variables import Variable

    names = event_names(spec)
    if event not in names:
        raise ValueError(f"unknown event {event!r}; known: {', '.join(names)}")
    rules.check(spec)
    if event == "reward":
        schemas = rules.reward
    else:
        kind, attribute = event.split(":", 1)
        k = spec.attribute_index(attribute)
        schemas = (rules.on if kind == "on" else rules.off)[k]
    if not schemas:
        return None
    variables: dict[str, Variable] = {}
    factors: list = []
    tie = np.where(np.eye(2)[::-1] > 0, 0.0, -np.inf)  # 0 where the two values differ

    def literal(feature: int) -> str:
        name, off, value = spec.decode(feature)
        if off is None:  # an action literal: "action=<name>" is 1 iff action == name
            lit = f"action={value}"
            if lit not in variables:
                variables.setdefault("action", Variable("action", len(spec.actions), spec.actions))
                variables[lit] = Variable(lit, 2)
                a = spec.actions.index(value)
                table = np.full((len(spec.actions), 2), -np.inf)
                table[:, 0] = 0.0
                table[a, 0], table[a, 1] = -np.inf, 0.0
                factors.append(TableFactor(("action", lit), table))
            return lit
        var = f"{name}@({off[0]},{off[1]})"
        variables.setdefault(var, Variable(var, 2))
        if value == 1:
            return var
        neg = f"not {var}"
        if neg not in variables:
            variables[neg] = Variable(neg, 2)
            factors.append(TableFactor((var, neg), tie))
        return neg

    heads = []
    for i, schema in enumerate(schemas):
        head = f"schema{i}"
        parents = tuple(literal(f) for f in schema)
        variables[head] = Variable(head, 2)
        factors.append(AndFactor(parents, head))
        heads.append(head)
    variables[event] = Variable(event, 2)
    factors.append(OrFactor(tuple(heads), event))
    return FactorGraph(tuple(variables.values()), tuple(factors))



# --- behind the WorldModel interface ------------------------------------------------------------


@dataclass(frozen=True)
class SchemaModelConfig:
    max_schemas: int = arg(256, "rows of the model state's fixed schema table (more is an error)")
    max_seeds: int = arg(16, "seed instances tried per added schema (learn_schemas)")

    def __post_init__(self) -> None:
        check(self.max_schemas >= 1, f"max_schemas must be >= 1, got {self.max_schemas}")
        check(self.max_seeds >= 1, f"max_seeds must be >= 1, got {self.max_seeds}")


@struct.dataclass
class SchemaModelState:
    """The learned attribute schemas as a fixed-size table (S = max_schemas rows; unused rows
    never hold), so refitting never retraces `predict`.

    Attributes:
        literals: float32 [S, 2OK], 1 where the schema needs a state literal (the feature
            layout of schema_world.ground without the action part).
        size: float32 [S], how many state literals it needs (2OK + 1 on unused rows).
        actions: bool [S, A], the actions under which it can hold.
        events: float32 [S, 2K], its event: column 2k turns attribute k on, 2k + 1 off.
        num_schemas: int32, rows in use.
    """

    literals: Float[Array, "S L"]
    size: Float[Array, " S"]
    actions: Bool[Array, "S A"]
    events: Float[Array, "S E"]
    num_schemas: Int[Array, ""]


def rules_to_state(spec: SchemaSpec, rules: SchemaRules, max_schemas: int) -> SchemaModelState:
    """The attribute schemas of `rules` (reward schemas are not part of the model) as a table.

    Raises:
        ValueError: rules that do not fit the spec, or more schemas than `max_schemas`.
    """
    rules.check(spec)
    K, A = spec.num_attributes, len(spec.actions)
    n_state = 2 * spec.num_offsets * K
    rows = [(sch, 2 * k) for k in range(K) for sch in rules.on[k]]
    rows += [(sch, 2 * k + 1) for k in range(K) for sch in rules.off[k]]
    if len(rows) > max_schemas:
        raise ValueError(
            f"{len(rows)} attribute schemas do not fit max_schemas={max_schemas}; raise it"
        )
    literals = np.zeros((max_schemas, n_state), np.float32)
    size = np.full(max_schemas, n_state + 1.0, np.float32)
    actions = np.zeros((max_schemas, A), bool)
    events = np.zeros((max_schemas, 2 * K), np.float32)
    for i, (sch, event) in enumerate(rows):
        state_lits = [f for f in sch if f < n_state]
        acts = {f - n_state for f in sch if f >= n_state}
        literals[i, state_lits] = 1.0
        size[i] = len(state_lits)
        if len(acts) <= 1:  # no action literal: any action; two different ones: never
            actions[i] = True if not acts else np.arange(A) == acts.pop()
        events[i, event] = 1.0
    return SchemaModelState(
        literals=jnp.asarray(literals),
        size=jnp.asarray(size),
        actions=jnp.asarray(actions),
        events=jnp.asarray(events),
        num_schemas=jnp.int32(len(rows)),
    )


def _grid_step(
    spec: SchemaSpec, state: SchemaModelState, grid: Bool[Array, "H W K"], action: Int[Array, ""]
) -> Bool[Array, "H W K"]:
    """One deterministic step of the schemas on one grid (pure JAX): a schema holds at a cell
    when all its literals do and the action is one of its actions; an attribute turns on (off)
    where one of its on- (off-) schemas holds, and persists otherwise."""
    H, W, K = grid.shape
    R = spec.radius
    pad = jnp.asarray(spec.pad, bool)
    padded = jnp.broadcast_to(pad, (H + 2 * R, W + 2 * R, K)).at[R : R + H, R : R + W].set(grid)
    windows = jnp.stack(
        [padded[R + dr : R + dr + H, R + dc : R + dc + W] for dr, dc in spec.offsets], axis=2
    )  # [H, W, O, K]
    truth = jnp.stack([~windows, windows], -1).reshape(H * W, -1).astype(jnp.float32)
    holds = (truth @ state.literals.T >= state.size[None]) & state.actions[:, action][None]
    fired = (holds.astype(jnp.float32) @ state.events > 0).reshape(H, W, 2 * K)
    return jnp.where(grid, ~fired[..., 1::2], fired[..., 0::2])


def make_schema_model(cfg: SchemaModelConfig, spec, world: SchemaSpec):
    """The learned schemas behind the `WorldModel` interface (models/base.py).

    Planning states are the entity grid flattened, float [B, H W K] (attribute k of cell (r, c)
    at index (r W + c) K + k, > 0.5 meaning 1); actions are [B, A] rows whose argmax is the
    action (one-hot rows: the MCTS codebook eye(A)). `predict` is the most likely next state,
    which for these deterministic schemas is the only one (the key is unused), with the task's
    reward r(obs, action, next) and termination from `spec` (an `EnvSpec`). The schemas are
    lifted, so one fitted state predicts any grid size: H = W = sqrt(O / K) is read from the
    observation at trace time. `fit` runs `learn_rules` on all of `data` (host-side) and
    replaces the schemas.

    Args:
        cfg: table size and learner setting.
        spec: the task (`reward_fn`, `done_fn`, `act_dim` = number of actions).
        world: the grid's attributes, actions and offsets (e.g. discrete_arm.arm_schema_spec()).

    Raises:
        ValueError: an action size that is not the world's number of actions.
    """
    from prototypes.models.base import WorldModel
    from prototypes.types import Step

    K = world.num_attributes
    if spec.act_dim != len(world.actions):
        raise ValueError(
            f"the task has {spec.act_dim} action dims but the schema world {len(world.actions)} "
            "actions; actions must be one-hot rows over the world's actions"
        )
    reward_fn, done_fn = jax.vmap(spec.reward_fn), jax.vmap(spec.done_fn)
    max_schemas, max_seeds = cfg.max_schemas, cfg.max_seeds

    def side(obs_dim: int) -> int:
        w = int(round(np.sqrt(obs_dim / K)))
        if w * w * K != obs_dim:
            raise ValueError(f"observation size {obs_dim} is not W * W * {K} for any W")
        return w

    def init(key, example):
        del key, example
        return rules_to_state(world, SchemaRules(on=((),) * K, off=((),) * K), max_schemas)

    def predict(state, key, obs, action):
        del key
        w = side(obs.shape[-1])
        grids = jnp.reshape(obs, (-1, w, w, K)) > 0.5
        acts = jnp.argmax(action, axis=-1)
        nxt = jax.vmap(_grid_step, in_axes=(None, None, 0, 0))(world, state, grids, acts)
        nxt = nxt.reshape(obs.shape).astype(jnp.float32)
        return Step(obs=nxt, reward=reward_fn(obs, action, nxt), done=done_fn(nxt))

    def fit(state, key, data):
        del state, key
        obs = np.asarray(data.obs)
        w = side(obs.shape[-1])
        grids = obs.reshape(-1, w, w, K) > 0.5
        nxt = np.asarray(data.next_obs).reshape(-1, w, w, K) > 0.5
        acts = np.argmax(np.asarray(data.action), axis=-1)
        fit_ = learn_rules(world, grids, acts, nxt, max_seeds=max_seeds)
        new = rules_to_state(world, fit_.rules, max_schemas)
        leftover = sum(len(v) for v in fit_.leftover.values())
        return new, {"model/schemas": new.num_schemas, "model/leftover": jnp.int32(leftover)}

    def summary(state):
        return {"model/schemas": int(state.num_schemas)}

    return WorldModel(init=init, predict=predict, fit=fit, name="schema", summary=summary)
