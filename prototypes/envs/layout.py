"""The flat observation of a task described as named entities, each with typed index sets.

>>> layout = get_spec("pusher").layout
>>> layout["object"].position          # slice(17, 20)
>>> take(next_obs, layout["object"].position) - take(next_obs, layout["goal"].position)

An `Entity` is one thing in the scene: the controlled arm (or gripper), an object, a goal. Its
`type` ("arm", "object", "goal") says which entities share a feature layout, so a structured model
can share weights, or normalisation statistics, per type. Each entity owns up to five kinds of
observation entries, each a plain Python `slice` or a tuple of int indices (static under jit):

- position: Cartesian position (xyz, or xy in planar tasks).
- velocity: linear or joint velocities.
- rotation: joint angles (raw, or their cos and sin) or an orientation (Euler angles).
- relative: a vector from another entity to this one, `this - other`, where `relative_to` names the
  other entity (Reacher's fingertip - target, FetchPush's object - gripper). It belongs to the
  entity it points to; a graph model can use it as an edge feature or drop it and recompute it
  from positions where both are observed.
- other: anything else (e.g. Fetch's finger joint positions and velocities).

Every observation index belongs to exactly one kind of exactly one entity; `EntityLayout`
checks this when it is built (`validate`) and raises a ValueError naming the index otherwise.

A `Surface` is a static fact of the scene rather than of the observation: the horizontal table top
the objects rest on (Fetch's table; `EnvSpec.surface`). No entry of the observation says where it
ends, so a model that sees only relative positions cannot know that a block pushed past its edge
falls; `Surface.features` says it from an object's position.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from prototypes.types import Array, Float

__all__ = [
    "ARM",
    "OBJECT",
    "GOAL",
    "KINDS",
    "Index",
    "Entity",
    "Surface",
    "SURFACE_FEATURES",
    "EntityLayout",
    "indices",
    "take",
]

ARM = "arm"  # the controlled body: a planar arm, a 7-DOF arm, the Fetch gripper
OBJECT = "object"  # a body the agent moves by contact
GOAL = "goal"  # where something should end up (Reacher's target, the Fetch desired goal)
KINDS = ("position", "velocity", "rotation", "relative", "other")

Index = slice | tuple[int, ...]  # a contiguous slice or an explicit tuple of indices


def indices(index: Index, obs_dim: int | None = None) -> tuple[int, ...]:
    """The int indices an `Index` selects, in order.

    A slice must have explicit non-negative `start` < `stop` (and a positive step, if any), so it
    means the same thing whatever the vector's length; `obs_dim`, if given, bounds `stop`.
    """
    if isinstance(index, slice):
        start, stop, step = index.start, index.stop, 1 if index.step is None else index.step
        if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop):
            raise ValueError(f"a layout slice needs 0 <= start < stop, got {index}")
        if not (isinstance(step, int) and step > 0):
            raise ValueError(f"a layout slice needs a positive step, got {index}")
        out = tuple(range(start, stop, step))
    else:
        out = tuple(index)
        if not out or not all(isinstance(i, int) and i >= 0 for i in out):
            raise ValueError(f"layout indices must be non-empty non-negative ints, got {index}")
    if obs_dim is not None and max(out) >= obs_dim:
        raise ValueError(f"layout index {max(out)} is out of range for obs_dim {obs_dim}")
    return out


def take(x: Float[Array, "... O"], index: Index) -> Float[Array, "... K"]:
    """x[..., index] for a slice or a tuple of indices (K of them); NumPy or JAX, any leading dims.

    A tuple is gathered as an index array, because `x[(0, 1)]` would mean `x[0, 1]`. A slice
    gives exactly `x[..., start:stop]`, so rewards written with it are bit-identical to the
    hand-sliced ones.
    """
    if isinstance(index, slice):
        return x[..., index]
    return x[..., np.asarray(index, np.int32)]


SURFACE_FEATURES = 4  # the length of `Surface.features`


@dataclass(frozen=True)
class Surface:
    """A horizontal rectangular table top: x in [low[0], high[0]], y in [low[1], high[1]], at
    height `top` (world frame, the observation's units).

    Attributes:
        low, high: the top's corners in x and y.
        top: the top's height.
        near: how far inside an edge the edge starts to count in `features` (0.1 m).

    Raises:
        ValueError (on construction): an empty or inverted extent, or near <= 0.
    """

    low: tuple[float, float]
    high: tuple[float, float]
    top: float
    near: float = 0.1

    def __post_init__(self) -> None:
        if not all(lo < hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError(f"a surface needs low < high in x and y, got {self.low}, {self.high}")
        if self.near <= 0:
            raise ValueError(f"a surface's near must be > 0, got {self.near}")

    def features(self, pos: Float[Array, "... 3"]) -> Float[Array, "... 4"]:
        """Where `pos` (xyz, NumPy or JAX) is relative to the top, 4 entries:

        - the near-edge vector (2): sum over the four edges of n_e * max(0, near - d_e), with n_e
          the edge's outward normal and d_e how far inside edge e the point is: zero in the
          middle, pointing to the nearest edge(s) and growing as the point comes within `near`;
        - min_e d_e: the signed distance inside the top's outline (negative off it);
        - pos_z - top: the height above the top.
        """
        xp = np if isinstance(pos, np.ndarray) else jnp
        x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
        d = xp.stack([x - self.low[0], self.high[0] - x, y - self.low[1], self.high[1] - y], -1)
        w = xp.maximum(0.0, self.near - d)
        vec = xp.stack([w[..., 1] - w[..., 0], w[..., 3] - w[..., 2]], -1)
        return xp.concatenate([vec, d.min(-1, keepdims=True), (z - self.top)[..., None]], -1)


def _hashable(index: Index | None) -> tuple | None:
    # slices are unhashable before Python 3.12; the spec holding the layout must stay hashable
    if isinstance(index, slice):
        return ("slice", index.start, index.stop, index.step)
    return index


@dataclass(frozen=True)
class Entity:
    """One named entity of a flat observation and the indices it owns, by kind.

    Attributes:
        name: unique within its layout ("arm", "object", "goal", "target", "gripper").
        type: the shared type (`ARM`, `OBJECT`, `GOAL`); entities of one type have the same
            kinds with the same sizes.
        position, velocity, rotation, relative, other: the indices of each kind, or None (see the
            module docstring for what each kind holds).
        relative_to: the entity that `relative` is measured from (`this - relative_to`); set
            exactly when `relative` is.
    """

    name: str
    type: str
    position: Index | None = None
    velocity: Index | None = None
    rotation: Index | None = None
    relative: Index | None = None
    other: Index | None = None
    relative_to: str | None = None

    def __post_init__(self) -> None:
        if (self.relative is None) != (self.relative_to is None):
            raise ValueError(f"entity {self.name!r}: set relative and relative_to together")

    def __hash__(self) -> int:
        return hash(
            (self.name, self.type, self.relative_to)
            + tuple(_hashable(getattr(self, kind)) for kind in KINDS)
        )

    @property
    def kinds(self) -> dict[str, Index]:
        """{kind: index} for the kinds this entity has, in `KINDS` order."""
        return {k: getattr(self, k) for k in KINDS if getattr(self, k) is not None}


@dataclass(frozen=True)
class EntityLayout:
    """The entities of a flat observation of length `obs_dim`; they cover it exactly once.

    Attributes:
        entities: the entities, in a fixed order (the node order of a graph model).
        obs_dim: O, the observation length.

    Raises:
        ValueError (on construction): duplicate entity names, a `relative_to` naming no entity,
            entities of one type with different kinds or sizes, or an index in no slice, in two
            slices, or >= obs_dim (the message names the index).
    """

    entities: tuple[Entity, ...]
    obs_dim: int

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check that every index 0..obs_dim-1 is in exactly one slice of exactly one entity, and
        that entities of one type have the same kinds with the same sizes (ValueError if not)."""
        names = [e.name for e in self.entities]
        if len(set(names)) != len(names):
            raise ValueError(f"entity names must be unique, got {names}")
        for e in self.entities:
            if e.relative_to is not None and e.relative_to not in names:
                raise ValueError(f"entity {e.name!r} is relative to unknown {e.relative_to!r}")
        owner: dict[int, str] = {}
        for e in self.entities:
            for kind, index in e.kinds.items():
                for i in indices(index, self.obs_dim):
                    here = f"{e.name}.{kind}"
                    if i in owner:
                        raise ValueError(f"obs index {i} is in both {owner[i]} and {here}")
                    owner[i] = here
        sizes: dict[str, tuple[str, dict[str, int]]] = {}
        for e in self.entities:
            here = {kind: len(indices(index)) for kind, index in e.kinds.items()}
            first, seen = sizes.setdefault(e.type, (e.name, here))
            if seen != here:
                raise ValueError(
                    f"entities {first!r} and {e.name!r} share type {e.type!r} but have different "
                    f"kinds or sizes: {seen} vs {here}"
                )
        missing = [i for i in range(self.obs_dim) if i not in owner]
        if missing:
            raise ValueError(
                f"obs index {missing[0]} is in no entity slice (obs_dim {self.obs_dim})"
            )

    def __getitem__(self, name: str) -> Entity:
        """The entity called `name`; KeyError naming the known names otherwise."""
        for e in self.entities:
            if e.name == name:
                return e
        raise KeyError(f"no entity {name!r}: choose from {', '.join(self.names)}")

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def names(self) -> tuple[str, ...]:
        """Entity names in order."""
        return tuple(e.name for e in self.entities)

    @property
    def types(self) -> tuple[str, ...]:
        """The distinct entity types, in order of first appearance."""
        return tuple(dict.fromkeys(e.type for e in self.entities))

    def entities_of_type(self, type: str) -> tuple[Entity, ...]:
        """The entities of one type, in layout order (empty if there are none)."""
        return tuple(e for e in self.entities if e.type == type)

    def index_of(self, name: str, kind: str) -> tuple[int, ...]:
        """The int indices of one kind of one entity; KeyError if the entity lacks that kind."""
        if kind not in KINDS:
            raise KeyError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")
        index = getattr(self[name], kind)
        if index is None:
            raise KeyError(f"entity {name!r} has no {kind}")
        return indices(index, self.obs_dim)

    def owner(self, i: int) -> tuple[str, str]:
        """(entity name, kind) of observation index i."""
        for e in self.entities:
            for kind, index in e.kinds.items():
                if i in indices(index):
                    return e.name, kind
        raise IndexError(f"obs index {i} is out of range for obs_dim {self.obs_dim}")
