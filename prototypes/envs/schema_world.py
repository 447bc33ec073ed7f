"""Grid worlds whose dynamics are schemas: the description schema models share, and a generator.

A schema world is an H x W grid of cells; every cell is an entity with K binary attributes
(`gripper`, `block`, `wall`, ...; a multi-valued attribute such as an entity type is one-hot
encoded into binary ones). A state is a bool array [H, W, K]; one discrete action per step acts
on the whole grid. Cells outside the grid read as the spec's `pad` values (a wall, say), so a
schema that needs a free cell never fires across the border.

Grounded input. The entity at cell (r, c) sees the attributes of the cells at the spec's fixed
relative `offsets` (its own cell first) and the action. Its feature vector is bool [F],
F = 2 O K + A, made of literals:

    index 2 (j K + k) + v   "attribute k of cell (r, c) + offsets[j] equals v"  (v = 0 or 1)
    index 2 O K + a         "the action is a"

Both polarities of an attribute are literals, so "the cell to the right is free" is the
conjunction of `wall@(0,+1)=0` and `block@(0,+1)=0`; the action has positive literals only.

Schemas. A schema is a conjunction of literals: a sorted tuple of feature indices that must all
be true. It is lifted: the same tuple is evaluated at every cell. `SchemaRules` holds, for each
attribute k, the schemas under which it turns on (an entity with k = 0 has k = 1 next step if
any of them holds) and those under which it turns off (k = 1 becomes 0 if any holds); an
attribute no schema changes persists. The reward of a transition is 1 if any reward schema holds
at any cell (an OR over schemas and over cells). Splitting each attribute into an on-event and an
off-event is what keeps the schemas short: persistence needs no schemas of its own.

`push_world` is the known-answer world: a gripper that moves one cell per action and pushes a
block ahead of it if the cell beyond is free, static walls and goals, reward 1 when a block is
pushed onto a goal. Its schemas are written as the prime implicants of each event (every prime
implicant of the OR is listed and every one is needed), which is the form a consistent learner
converges to, so "recovered exactly" has a unique meaning. `sample_transitions` draws i.i.d.
states with every attribute of every cell independent, so every configuration of a schema's
window has positive probability.

Everything is NumPy on the host; randomness comes from an explicit `np.random.Generator`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Bool, Int

__all__ = [
    "Schema",
    "SchemaSpec",
    "SchemaRules",
    "manhattan_offsets",
    "ground",
    "schema_matrix",
    "holds_any",
    "step",
    "push_world",
    "sample_states",
    "sample_transitions",
    "PUSH_DIRECTIONS",
]

Schema = tuple[int, ...]  # a conjunction: sorted feature indices that must all be true

# push-world actions and the grid step each one moves the gripper by
PUSH_DIRECTIONS: dict[str, tuple[int, int]] = {
    "up": (-1, 0),
    "down": (1, 0),
    "left": (0, -1),
    "right": (0, 1),
}


def manhattan_offsets(radius: int) -> tuple[tuple[int, int], ...]:
    """Every (dr, dc) with |dr| + |dc| <= radius, (0, 0) first, then in row-major order."""
    rest = [
        (dr, dc)
        for dr in range(-radius, radius + 1)
        for dc in range(-radius, radius + 1)
        if 0 < abs(dr) + abs(dc) <= radius
    ]
    return ((0, 0), *rest)


@dataclass(frozen=True)
class SchemaSpec:
    """The entity attributes, actions and neighbourhood of a schema world.

    Attributes:
        attributes: K binary attribute names, unique.
        actions: A action names, unique.
        offsets: O relative cell offsets (dr, dc) an entity sees, (0, 0) first, unique.
        pad: K values (0 or 1) of each attribute outside the grid (default all 0).

    Raises:
        ValueError: empty or duplicate names, offsets not starting at (0, 0), or a bad pad.
    """

    attributes: tuple[str, ...]
    actions: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...] = field(default_factory=lambda: manhattan_offsets(1))
    pad: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "actions", tuple(self.actions))
        offsets = tuple((int(dr), int(dc)) for dr, dc in self.offsets)
        object.__setattr__(self, "offsets", offsets)
        pad = tuple(int(v) for v in self.pad) or (0,) * len(self.attributes)
        object.__setattr__(self, "pad", pad)
        for what, names in (("attribute", self.attributes), ("action", self.actions)):
            if not names:
                raise ValueError(f"a schema world needs at least one {what}")
            dup = [n for n in names if names.count(n) > 1]
            if dup:
                raise ValueError(f"{what} name {dup[0]!r} is used twice; names must be unique")
        if not offsets or offsets[0] != (0, 0):
            raise ValueError(f"offsets must start with the entity's own cell (0, 0), got {offsets}")
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"offsets must be unique, got {offsets}")
        if len(pad) != len(self.attributes) or any(v not in (0, 1) for v in pad):
            raise ValueError(
                f"pad must give 0 or 1 for each of the {len(self.attributes)} attributes, got {pad}"
            )

    @property
    def num_attributes(self) -> int:
        """K."""
        return len(self.attributes)

    @property
    def num_offsets(self) -> int:
        """O."""
        return len(self.offsets)

    @property
    def num_features(self) -> int:
        """F = 2 O K + A, the length of a grounded feature vector."""
        return 2 * self.num_offsets * self.num_attributes + len(self.actions)

    @property
    def radius(self) -> int:
        """The largest |dr| or |dc| of any offset: how much padding grounding needs."""
        return max(max(abs(dr), abs(dc)) for dr, dc in self.offsets)

    def attribute_index(self, attribute: str) -> int:
        """k of an attribute name.

        Raises:
            ValueError: an unknown attribute (the message lists the known ones).
        """
        if attribute not in self.attributes:
            raise ValueError(
                f"unknown attribute {attribute!r}; known: {', '.join(self.attributes)}"
            )
        return self.attributes.index(attribute)

    def literal(self, offset: tuple[int, int], attribute: str, value: int) -> int:
        """Feature index of "attribute of the cell at offset equals value".

        Raises:
            ValueError: an unknown attribute, an offset the entity does not see, or a value
                other than 0 or 1.
        """
        k = self.attribute_index(attribute)
        offset = (int(offset[0]), int(offset[1]))
        if offset not in self.offsets:
            raise ValueError(f"offset {offset} is not among the spec's offsets {self.offsets}")
        if value not in (0, 1):
            raise ValueError(f"attribute {attribute!r} is binary: value {value!r} is out of range")
        return 2 * (self.offsets.index(offset) * self.num_attributes + k) + int(value)

    def action_literal(self, action: str) -> int:
        """Feature index of "the action is `action`".

        Raises:
            ValueError: an unknown action (the message lists the known ones).
        """
        if action not in self.actions:
            raise ValueError(f"unknown action {action!r}; known: {', '.join(self.actions)}")
        return 2 * self.num_offsets * self.num_attributes + self.actions.index(action)

    def decode(self, feature: int) -> tuple[str, tuple[int, int] | None, int | str]:
        """("attribute name", offset, value) or ("action", None, "action name") of a feature."""
        n = 2 * self.num_offsets * self.num_attributes
        if not 0 <= feature < self.num_features:
            raise ValueError(f"feature {feature} is out of range 0..{self.num_features - 1}")
        if feature >= n:
            return "action", None, self.actions[feature - n]
        j, rest = divmod(feature, 2 * self.num_attributes)
        k, v = divmod(rest, 2)
        return self.attributes[k], self.offsets[j], v

    def conjunction(self, *literals: tuple) -> Schema:
        """A schema from readable literals: ("block", (0, 1), 0) or ("action", "right").

        Raises:
            ValueError: an unknown attribute or action, an unseen offset, a value out of range.
        """
        out = []
        for lit in literals:
            if lit[0] == "action":
                out.append(self.action_literal(lit[1]))
            else:
                attribute, offset, value = lit
                out.append(self.literal(offset, attribute, value))
        return tuple(sorted(set(out)))


@dataclass(frozen=True)
class SchemaRules:
    """The dynamics and reward of a schema world, as lifted schemas.

    Attributes:
        on: per attribute (K entries), the schemas that turn it from 0 to 1.
        off: per attribute, the schemas that turn it from 1 to 0.
        reward: schemas any one of which, holding at any cell, gives reward 1.
    """

    on: tuple[tuple[Schema, ...], ...]
    off: tuple[tuple[Schema, ...], ...]
    reward: tuple[Schema, ...] = ()

    def __post_init__(self):
        norm = lambda group: tuple(tuple(sorted(set(int(i) for i in s))) for s in group)  # noqa: E731
        object.__setattr__(self, "on", tuple(norm(g) for g in self.on))
        object.__setattr__(self, "off", tuple(norm(g) for g in self.off))
        object.__setattr__(self, "reward", norm(self.reward))
        if len(self.on) != len(self.off):
            raise ValueError(f"{len(self.on)} on-groups but {len(self.off)} off-groups")

    def check(self, spec: SchemaSpec) -> None:
        """Raise ValueError unless there is one on- and off-group per attribute and every
        feature index is in range."""
        if len(self.on) != spec.num_attributes:
            raise ValueError(
                f"rules have {len(self.on)} attribute groups; the spec has {spec.num_attributes}"
            )
        for group in (*self.on, *self.off, self.reward):
            for s in group:
                for i in s:
                    if not 0 <= i < spec.num_features:
                        raise ValueError(
                            f"schema {s} has feature {i}, out of range 0..{spec.num_features - 1}"
                        )


def _check_states(spec: SchemaSpec, states: np.ndarray) -> np.ndarray:
    states = np.asarray(states)
    if states.ndim < 3 or states.shape[-1] != spec.num_attributes:
        raise ValueError(
            f"states must be [..., H, W, {spec.num_attributes}] (one entry per attribute), "
            f"got shape {states.shape}"
        )
    if states.dtype != bool:
        if not np.isin(states, (0, 1)).all():
            bad = states[~np.isin(states, (0, 1))].ravel()[0]
            raise ValueError(f"attribute values must be 0 or 1, got {bad}")
        states = states.astype(bool)
    return states


def ground(
    spec: SchemaSpec, states: Bool[np.ndarray, "*T H W K"], actions: Int[np.ndarray, " *T"]
) -> Bool[np.ndarray, "*T H W F"]:
    """The grounded feature vector of every cell (module docstring for the layout).

    Raises:
        ValueError: states of the wrong shape or with values other than 0/1, or actions out of
            range 0..A-1.
    """
    states = _check_states(spec, states)
    actions = np.asarray(actions)
    batch, (H, W, K) = states.shape[:-3], states.shape[-3:]
    if actions.shape != batch:
        raise ValueError(f"actions must have shape {batch} (one per state), got {actions.shape}")
    if actions.size and (actions.min() < 0 or actions.max() >= len(spec.actions)):
        bad = actions[(actions < 0) | (actions >= len(spec.actions))].ravel()[0]
        raise ValueError(f"action {bad} is out of range 0..{len(spec.actions) - 1}")
    R = spec.radius
    padded = np.broadcast_to(np.asarray(spec.pad, bool), (*batch, H + 2 * R, W + 2 * R, K)).copy()
    padded[..., R : R + H, R : R + W, :] = states
    out = np.zeros((*batch, H, W, spec.num_features), bool)
    for j, (dr, dc) in enumerate(spec.offsets):
        window = padded[..., R + dr : R + dr + H, R + dc : R + dc + W, :]
        out[..., 2 * j * K : 2 * (j + 1) * K : 2] = ~window
        out[..., 2 * j * K + 1 : 2 * (j + 1) * K : 2] = window
    n = 2 * spec.num_offsets * K
    out[..., n:] = actions[..., None, None, None] == np.arange(len(spec.actions))
    return out


def schema_matrix(schemas: Sequence[Schema], num_features: int) -> np.ndarray:
    """float32 [S, F] incidence matrix of the schemas (1 where a schema needs the feature)."""
    m = np.zeros((len(schemas), num_features), np.float32)
    for i, s in enumerate(schemas):
        m[i, list(s)] = 1.0
    return m


def holds_any(
    schemas: Sequence[Schema], features: Bool[np.ndarray, "*N F"]
) -> Bool[np.ndarray, " *N"]:
    """True where at least one schema holds (all its features true); False for no schemas."""
    features = np.asarray(features)
    if not schemas:
        return np.zeros(features.shape[:-1], bool)
    m = schema_matrix(schemas, features.shape[-1])
    hits = features.astype(np.float32) @ m.T  # [..., S] number of required features present
    return (hits == m.sum(1)).any(-1)


def step(
    spec: SchemaSpec,
    rules: SchemaRules,
    states: Bool[np.ndarray, "*T H W K"],
    actions: Int[np.ndarray, " *T"],
) -> tuple[Bool[np.ndarray, "*T H W K"], Bool[np.ndarray, " *T"]]:
    """Next states and rewards under the rules (an attribute no schema changes persists)."""
    rules.check(spec)
    states = _check_states(spec, states)
    feats = ground(spec, states, actions)
    nxt = states.copy()
    for k in range(spec.num_attributes):
        cur = states[..., k]
        on, off = holds_any(rules.on[k], feats), holds_any(rules.off[k], feats)
        nxt[..., k] = np.where(cur, ~off, on)
    reward = holds_any(rules.reward, feats).any(axis=(-2, -1))
    return nxt, reward


def push_world(radius: int = 2) -> tuple[SchemaSpec, SchemaRules]:
    """The known-answer world: a gripper pushing blocks among walls onto goals.

    Attributes gripper, block, wall, goal; actions stay, up, down, left, right; offsets within
    Manhattan distance `radius` (>= 2: a push involves the gripper, the block and the cell
    beyond); outside the grid is wall. For each direction d (all cells relative to the entity):
    - a gripper leaves (gripper off) if the action is d, the cell ahead is not a wall, and either
      that cell holds no block or the cell beyond it is free (no wall, no block): the two prime
      implicants of "it moves into a free cell or pushes what is ahead into a free cell";
    - a gripper arrives (gripper on) from the cell behind under the same two conditions, seen
      from the arrival cell;
    - a block leaves (block off) if the gripper is behind it, the action is d, its own cell is
      not a wall and the cell ahead is free;
    - a block arrives (block on) if a block is behind, the gripper behind that, the action is d,
      and neither the block's cell nor this one is a wall;
    - reward 1 if a block arrives on a goal cell that held no block.
    Walls and goals never change. 24 attribute schemas and 4 reward schemas.
    """
    if radius < 2:
        raise ValueError(f"the push world needs offsets of radius >= 2, got {radius}")
    spec = SchemaSpec(
        attributes=("gripper", "block", "wall", "goal"),
        actions=("stay", *PUSH_DIRECTIONS),
        offsets=manhattan_offsets(radius),
        pad=(0, 0, 1, 0),
    )
    c = spec.conjunction
    g_on, g_off, b_on, b_off, reward = [], [], [], [], []
    for name, (dr, dc) in PUSH_DIRECTIONS.items():
        ahead, beyond, behind, behind2 = (dr, dc), (2 * dr, 2 * dc), (-dr, -dc), (-2 * dr, -2 * dc)
        act = ("action", name)
        g_off.append(c(act, ("wall", ahead, 0), ("block", ahead, 0)))
        g_off.append(c(act, ("wall", ahead, 0), ("wall", beyond, 0), ("block", beyond, 0)))
        g_on.append(c(act, ("gripper", behind, 1), ("wall", (0, 0), 0), ("block", (0, 0), 0)))
        g_on.append(
            c(
                act,
                ("gripper", behind, 1),
                ("wall", (0, 0), 0),
                ("wall", ahead, 0),
                ("block", ahead, 0),
            )
        )
        free_ahead = (("wall", ahead, 0), ("block", ahead, 0))
        b_off.append(c(act, ("gripper", behind, 1), ("wall", (0, 0), 0), *free_ahead))
        b_on.append(
            c(
                act,
                ("block", behind, 1),
                ("gripper", behind2, 1),
                ("wall", behind, 0),
                ("wall", (0, 0), 0),
            )
        )
        reward.append(
            c(
                act,
                ("goal", (0, 0), 1),
                ("block", (0, 0), 0),
                ("wall", (0, 0), 0),
                ("block", behind, 1),
                ("wall", behind, 0),
                ("gripper", behind2, 1),
            )
        )
    none: tuple[Schema, ...] = ()
    rules = SchemaRules(
        on=(tuple(g_on), tuple(b_on), none, none),
        off=(tuple(g_off), tuple(b_off), none, none),
        reward=tuple(reward),
    )
    return spec, rules


def sample_states(
    spec: SchemaSpec,
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    probs: Sequence[float],
) -> Bool[np.ndarray, "n H W K"]:
    """n i.i.d. states: attribute k of every cell is 1 with probability probs[k], independently."""
    probs = np.asarray(probs, np.float64)
    if probs.shape != (spec.num_attributes,) or np.any((probs < 0) | (probs > 1)):
        raise ValueError(
            f"probs must be {spec.num_attributes} probabilities in [0, 1], got {probs.tolist()}"
        )
    return rng.random((n, *shape, spec.num_attributes)) < probs


def sample_transitions(
    spec: SchemaSpec,
    rules: SchemaRules,
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    probs: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n i.i.d. transitions: random states (`sample_states`), uniform actions, the rules' step.

    Returns:
        states [n, H, W, K] bool, actions [n] int32, next_states [n, H, W, K] bool, rewards [n]
        bool.
    """
    states = sample_states(spec, rng, n, shape, probs)
    actions = rng.integers(0, len(spec.actions), n).astype(np.int32)
    nxt, reward = step(spec, rules, states, actions)
    return states, actions, nxt, reward
