"""Task variants: named, seeded changes to a task's physics and reset distribution, for transfer.

>>> env = make("pusher", seed=0, variant="mass=B,damping=1.5")  # registry.make
>>> obs, info = env.reset(seed=3); info["variant"]   # {"damping": 1.5, "mass": 3.1...}

A variant sets some *factors* of a task. Each factor has a training range A and a disjoint test
range B (CausalWorld's protocol: train on A, evaluate on held-out values of A and on B), and an
allowed (physical) range that fixed values must lie in. Two kinds:

- scale factors (mass, damping, friction, size, gear) multiply nominal model parameters. Their
  value is the multiplier: A = [0.5, 2] and B = [2.5, 4] for mass, damping and friction (a factor
  of 2 either way for training, then 1.25x to 2x beyond its top for testing); A = [0.75, 1.5] and
  B = [1.75, 2.5] for size and gear, narrower because a much larger object overlaps the goal or the
  arm at the start and a much stronger motor drives joints into their limits. Allowed: > 0 for
  mass, size and gear; >= 0 for damping and friction.
- region factors (goal, start) place the goal or the object's start. Their value is a point in
  metres, in the task's own frame (`describe_variants` names it), and A and B are disjoint boxes;
  A is the task's own sampling region wherever that is a box (otherwise a small box around it).

The command-line form, one string (`parse_variant`; `str(variant)` gives it back canonical, for
config.json)::

    none | "" | factor=VALUE[,factor=VALUE...]
    VALUE: a number (a fixed multiplier, or a count of distractors), x:y or x:y:z (a fixed
           point, region factors), A (a fresh value per episode from training range A), B (from
           test range B), Atrain / Aheld (from A's training / held-out half, below), or lo~hi
           (a multiplier's own range, lo < hi, e.g. mass=0.25~0.4)
    e.g.   mass=B,damping=1.5     goal=A     start=0.1:-0.2     mass=Aheld,distractors=B

Held-out values inside A (for transfer, experiments/transfer.py): a multiplier's A is cut into
`SCALE_BINS` = 8 equal bins, "Atrain" draws from the even ones (a uniform bin, then uniformly
inside it) and "Aheld" from the odd ones; a region's A box is cut into `REGION_BINS` = 4 bins per
axis, and "Atrain" draws from the cells whose bin indices sum to an even number, "Aheld" from the
others (a checkerboard). So a model trained on Atrain never saw a held-out value, though each
lies inside A's span. "A" still draws from the whole of A, as before.

Distractors (pusher, fetch_push): static boxes on the table that the task never needs. The
model is rebuilt once with `MAX_DISTRACTORS` = 3 world bodies without joints (an `MjSpec` edit,
written to an XML file under the system temp directory that `env.unwrapped.fullpath` then names,
so the oracle, which compiles its model from that file, has them too); each reset draws their
count (A: 0, B: 1-3) and places them uniformly in a table region, at least a gap from the
object, the goal, the arm's start, the straight object-goal path and each other; unused ones are
parked far off. They are in no observation (qpos, qvel and obs keep their sizes, so the flat
ensemble and every model see exactly what they saw in training); they only matter through
contact, if the arm or the object runs into one. `info["variant"]["distractors"]` lists their
world (x, y).

`VariantWrapper` applies it to the live env: on every `reset(seed=...)` it draws the episode's
values from a generator seeded by the reset seed (a stream separate from the env's own, so the
same seed gives the same values and, for factors it does not touch, the same episode as the
unchanged task; resets without a seed continue the stream), writes the scale factors into
`env.unwrapped.model` from nominal values stored once (so scaling never compounds), calls
`mj_setConst` so derived constants (subtree masses, inverse weights, mean inertia) follow, resets
the env, then moves the goal and object where the region factors say. The values in use come back
as `info["variant"]` ({factor: float or [x, y(, z)]}). Planning on the changed physics: the oracle
(models/oracle.py) copies the live model's parameters at every encode.

What each factor changes (read from gymnasium 1.4 and gymnasium-robotics 1.4.2 sources):
- Pusher's object weighs 8e-6 kg but its slide joints carry armature 0.04, which is the inertia
  the arm actually pushes against (there is no gravity), so its `mass` scales the body's mass and
  inertia *and* the slide joints' armature; `damping` scales the slide joints' damping (0.5, the
  drag of the table: its contacts are frictionless, condim 1); `size` the cylinder's radius
  (0.05; the height stays, so it still rests on the table); `gear` all seven motors' gear.
  Gymnasium always puts the goal at the home point and draws the object start uniformly from
  x in [-0.2, 0.2], y in [-0.3, 0] (slide coordinates) at least 0.17 from the goal; region
  factors keep that 0.17 rule by redrawing whichever of the two is sampled.
- Reacher's links weigh 0.036 kg and its joints carry armature 1, so `mass` scales the arm's body
  masses and inertias and the joint armature; its target is drawn uniformly in the disk of
  radius 0.2 (the arm reaches 0.21), so A and B split that disk in two.
- FetchPush: `mass` scales the block's mass (2 kg) and inertia; `friction` the sliding friction of
  block and table together (MuJoCo takes the larger of the two geoms' coefficients, and both
  are 1); `size` the block's horizontal half-sizes (0.025; height unchanged, so it rests on the
  table); goal and start are offsets from the gripper's start position, drawn by gymnasium from
  [-0.15, 0.15]^2 (the start at least 0.1 from the gripper).
- FetchReach: the goal offset from the gripper's start, drawn by gymnasium from [-0.15, 0.15]^3.
Size changes geometry only (mass and inertia stay; use mass for those); the object's bounding
radius and boxes are updated with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from prototypes.config import ConfigError

__all__ = [
    "ScaleFactor",
    "RegionFactor",
    "FACTORS",
    "Variant",
    "VariantWrapper",
    "parse_variant",
    "describe_variants",
    "DistractorFactor",
    "Span",
    "RANGES",
    "region_cell_parity",
    "add_distractor_bodies",
    "place_distractors",
]

_SALT = 0x76617269  # "vari": keeps the variant stream apart from any other stream of the seed
RANGES = ("A", "B", "Atrain", "Aheld")  # the range names a setting may take
SCALE_BINS = 8  # a scale factor's A in equal bins: even ones are Atrain, odd ones Aheld
REGION_BINS = 4  # bins per axis of a region's A box: cells of even index sum are Atrain
MAX_DISTRACTORS = 3  # distractor bodies added to the model (unused ones parked far away)
_MAX_TRIES = 10_000  # rejection-sampling draws before a region is declared impossible
PUSHER_MIN_GAP = 0.17  # gymnasium's minimum object-goal distance at a Pusher reset
FETCH_MIN_GAP = 0.1  # gymnasium-robotics' minimum object-gripper distance at a FetchPush reset
REACHER_RADIUS = 0.2  # Reacher-v5 draws its target inside this disk

Index = Any  # a NumPy index into one MjModel array
Targets = Callable[[mujoco.MjModel], list[tuple[str, Index]]]


@dataclass(frozen=True)
class ScaleFactor:
    """A multiplier of nominal MjModel parameters.

    Attributes:
        name: the factor's name on the command line ("mass").
        changes: what it changes, one line.
        a, b: the training and test ranges (lo, hi) of the multiplier, disjoint.
        strict: the allowed range is > 0 (True) or >= 0 (False).
        targets: the (MjModel array name, index) pairs it multiplies, by name lookups.
        geometry: it scales `geom_size`, so bounding radii and boxes must follow.
    """

    name: str
    changes: str
    a: tuple[float, float]
    b: tuple[float, float]
    strict: bool
    targets: Targets
    geometry: bool = False

    @property
    def allowed(self) -> str:
        return "> 0" if self.strict else ">= 0"

    def draw(self, rng: np.random.Generator, box: str) -> float:
        """A multiplier from range `box` ("A", "B", "Atrain" or "Aheld")."""
        lo, hi = self.b if box == "B" else self.a
        if box in ("A", "B"):
            return float(rng.uniform(lo, hi))
        # Atrain: a uniform even bin of A, uniform inside it; Aheld: the same over odd bins
        k = 2 * int(rng.integers(SCALE_BINS // 2)) + (box == "Aheld")
        return float(lo + (k + rng.uniform()) * (hi - lo) / SCALE_BINS)

    def check(self, value: float) -> None:
        ok = math.isfinite(value) and (value > 0 if self.strict else value >= 0)
        if not ok:
            raise ConfigError(
                f"variant {self.name}={value!r} is outside its physical range "
                f"({self.name} multiplier {self.allowed})"
            )


@dataclass(frozen=True)
class RegionFactor:
    """Where the goal or the object's start is put, a point of `len(axes)` coordinates.

    Attributes:
        name: "goal" or "start".
        changes: what it changes and in which frame, one line.
        a, b: training and test boxes (lo, hi), each a tuple of per-axis bounds, disjoint.
        allowed: the box that fixed points must lie in.
        accept: a further condition on points drawn from A or B (the task's own rule), or None.
        rule: that condition in words, for the help table.
    """

    name: str
    changes: str
    a: tuple[tuple[float, ...], tuple[float, ...]]
    b: tuple[tuple[float, ...], tuple[float, ...]]
    allowed: tuple[tuple[float, ...], tuple[float, ...]]
    accept: Callable[[np.ndarray], bool] | None = None
    rule: str = ""

    @property
    def axes(self) -> str:
        return "xyz"[: len(self.allowed[0])]

    def check(self, value: tuple[float, ...]) -> None:
        lo, hi = self.allowed
        if len(value) != len(lo):
            raise ConfigError(
                f"variant {self.name}={_fmt_point(value)} needs {len(lo)} numbers "
                f"{':'.join(self.axes)}, A or B"
            )
        if not all(math.isfinite(v) and l <= v <= h for v, l, h in zip(value, lo, hi, strict=True)):
            raise ConfigError(
                f"variant {self.name}={_fmt_point(value)} is outside its allowed region "
                f"{_fmt_box(self.allowed)}"
            )

    def draw(self, rng: np.random.Generator, box: str) -> np.ndarray:
        """A point from range `box` ("A", "B", "Atrain" or "Aheld") passing `accept`."""
        lo, hi = self.b if box == "B" else self.a
        for _ in range(_MAX_TRIES):
            point = rng.uniform(lo, hi)
            if box in ("Atrain", "Aheld") and region_cell_parity(point, self.a) != (box == "Aheld"):
                continue
            if self.accept is None or self.accept(point):
                return point
        raise RuntimeError(f"variant {self.name}={box}: no point of the box passes {self.rule}")


def region_cell_parity(point: np.ndarray, box: tuple[tuple[float, ...], ...]) -> int:
    """0 if `point` lies in an Atrain cell of `box` (its per-axis bin indices, REGION_BINS bins
    per axis, sum to an even number), 1 if in an Aheld cell."""
    lo, hi = np.asarray(box[0]), np.asarray(box[1])
    cell = np.clip(np.floor((np.asarray(point) - lo) / (hi - lo) * REGION_BINS), 0, REGION_BINS - 1)
    return int(cell.sum()) % 2


@dataclass(frozen=True)
class DistractorFactor:
    """Static bodies on the table that the task never needs (module docstring).

    The value is a count: A = (0, 0) (the unchanged task), B = (1, MAX_DISTRACTORS). Their
    places are drawn per episode in `region` (world x, y) at least `gap` from the object, the
    goal, the arm's start and each other, and from the object-goal segment.

    Attributes:
        name: "distractors".
        changes: what it adds, one line.
        a, b: training and test ranges of the count (inclusive).
        half: the distractor box's half sizes (x, y, z), m.
        height: its centre's world z (resting on the table).
        region: (lo, hi) world x, y box the distractors are placed in.
        gap: minimum distance to the object, goal, arm start, the object-goal segment and the
            other distractors, m.
    """

    name: str
    changes: str
    a: tuple[int, int]
    b: tuple[int, int]
    half: tuple[float, float, float]
    height: float
    region: tuple[tuple[float, float], tuple[float, float]]
    gap: float

    allowed = f"0..{MAX_DISTRACTORS}"

    def check(self, value: float) -> None:
        if not (math.isfinite(value) and value == int(value) and 0 <= value <= MAX_DISTRACTORS):
            raise ConfigError(
                f"variant {self.name}={value!r} is not a count of distractors "
                f"(an integer {self.allowed}, A or B)"
            )

    def draw(self, rng: np.random.Generator, box: str) -> int:
        """A count from range `box` (Aheld has none: A is the single value 0)."""
        lo, hi = self.b if box == "B" else self.a
        return int(rng.integers(lo, hi + 1))


@dataclass(frozen=True)
class Span:
    """A scale factor's own range [lo, hi] (lo < hi), drawn uniformly per episode ("lo~hi")."""

    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{_fmt_num(self.lo)}~{_fmt_num(self.hi)}"


Factor = ScaleFactor | RegionFactor | DistractorFactor
# a fixed multiplier or count, a fixed point, a named range ("A", ...) or a multiplier's own span
Setting = float | tuple[float, ...] | str | Span


# --- where each factor writes -----------------------------------------------------------------


def _dofs(m: mujoco.MjModel, *joints: str) -> np.ndarray:
    return np.array([m.jnt_dofadr[m.joint(j).id] for j in joints])


def _mass(*bodies: str, armature: tuple[str, ...] = ()) -> Targets:
    def targets(m: mujoco.MjModel) -> list[tuple[str, Index]]:
        ids = np.array([m.body(b).id for b in bodies])
        out = [("body_mass", ids), ("body_inertia", ids)]
        if armature:
            out.append(("dof_armature", _dofs(m, *armature)))
        return out

    return targets


def _damping(*joints: str) -> Targets:
    return lambda m: [("dof_damping", _dofs(m, *joints))]


def _block_and_table_friction(m: mujoco.MjModel) -> list[tuple[str, Index]]:
    table = m.body_geomadr[m.body("table0").id]  # the table's geom has no name
    return [("geom_friction", (np.array([m.geom("object0").id, table]), 0))]


def _geom_size(body: str, columns: Sequence[int]) -> Targets:
    def targets(m: mujoco.MjModel) -> list[tuple[str, Index]]:
        geom = m.body_geomadr[m.body(body).id]
        return [("geom_size", (geom, np.asarray(columns)))]

    return targets


def _gear(m: mujoco.MjModel) -> list[tuple[str, Index]]:
    return [("actuator_gear", (slice(None), 0))]


def _bounds(m: mujoco.MjModel, geom: int) -> tuple[float, np.ndarray]:
    """The bounding radius and local box half extents of a box or cylinder geom, from its size,
    as MuJoCo's compiler computes them."""
    size = m.geom_size[geom]
    if m.geom_type[geom] == mujoco.mjtGeom.mjGEOM_BOX:
        return float(np.linalg.norm(size)), size.copy()
    if m.geom_type[geom] == mujoco.mjtGeom.mjGEOM_CYLINDER:
        return float(np.hypot(size[0], size[1])), np.array([size[0], size[0], size[1]])
    raise NotImplementedError(f"size variants handle box and cylinder geoms, not {geom}")


def _update_bounds(m: mujoco.MjModel, geom: int) -> None:
    """Refresh the bounding sphere and boxes the collision phases read for a resized geom."""
    rbound, half = _bounds(m, geom)
    m.geom_rbound[geom] = rbound
    m.geom_aabb[geom, 3:] = half
    body = m.geom_bodyid[geom]
    if m.body_geomnum[body] == 1 and m.body_bvhnum[body] == 1 and not m.geom_pos[geom].any():
        m.bvh_aabb[m.body_bvhadr[body], 3:] = half  # one geom at the body origin: same box


# --- the factors of each task -----------------------------------------------------------------

_SCALE_A, _SCALE_B = (0.5, 2.0), (2.5, 4.0)
_SHAPE_A, _SHAPE_B = (0.75, 1.5), (1.75, 2.5)
_PUSHER_OBJ_SLIDES = ("obj_slidey", "obj_slidex")


def _in_disk(point: np.ndarray) -> bool:
    return bool(np.hypot(point[0], point[1]) < REACHER_RADIUS)


def _off_gripper(point: np.ndarray) -> bool:
    return bool(np.hypot(point[0], point[1]) >= FETCH_MIN_GAP)


_FETCH_PUSH_ALLOWED = ((-0.28, -0.32), (0.16, 0.32))  # the table top, block inside its edges

FACTORS: dict[str, dict[str, Factor]] = {
    "pusher": {
        "mass": ScaleFactor(
            "mass",
            "object mass, inertia and slide armature (0.04, what the arm pushes)",
            _SCALE_A,
            _SCALE_B,
            True,
            _mass("object", armature=_PUSHER_OBJ_SLIDES),
        ),
        "damping": ScaleFactor(
            "damping",
            "object slide damping (0.5, its drag on the table)",
            _SCALE_A,
            _SCALE_B,
            False,
            _damping(*_PUSHER_OBJ_SLIDES),
        ),
        "size": ScaleFactor(
            "size",
            "object radius (0.05; height unchanged)",
            _SHAPE_A,
            _SHAPE_B,
            True,
            _geom_size("object", (0,)),
            geometry=True,
        ),
        "gear": ScaleFactor(
            "gear", "all 7 motors' gear (1)", _SHAPE_A, _SHAPE_B, True, lambda m: _gear(m)
        ),
        "goal": RegionFactor(
            "goal",
            "goal x:y, m from its home (0.45, -0.05); gymnasium: 0:0",
            ((-0.1, -0.05), (0.1, 0.05)),
            ((-0.25, -0.05), (-0.15, 0.05)),
            ((-0.5, -0.5), (0.5, 0.5)),
            rule=f"> {PUSHER_MIN_GAP} from the object",
        ),
        "start": RegionFactor(
            "start",
            "object start x:y, m from the goal's home; gymnasium: A",
            ((-0.2, -0.3), (0.2, 0.0)),
            ((-0.2, -0.4), (0.2, -0.33)),
            ((-0.5, -0.5), (0.5, 0.5)),
            rule=f"> {PUSHER_MIN_GAP} from the goal",
        ),
        "distractors": DistractorFactor(
            "distractors",
            "static 8x8x10 cm boxes on the table, placed per episode, never observed",
            (0, 0),
            (1, MAX_DISTRACTORS),
            half=(0.04, 0.04, 0.05),
            height=-0.275,  # the table plane is at z = -0.325
            region=((0.15, -0.5), (0.8, 0.25)),
            gap=0.15,
        ),
    },
    "reacher": {
        "mass": ScaleFactor(
            "mass",
            "arm links' mass, inertia and joint armature (1)",
            _SCALE_A,
            _SCALE_B,
            True,
            _mass("body0", "body1", "fingertip", armature=("joint0", "joint1")),
        ),
        "goal": RegionFactor(
            "goal",
            "target x:y, m from the arm's base; gymnasium: A and B",
            ((-0.2, -0.2), (0.2, 0.0)),
            ((-0.2, 0.05), (0.2, 0.2)),
            ((-0.27, -0.27), (0.27, 0.27)),  # the target joints' range
            accept=_in_disk,
            rule=f"radius < {REACHER_RADIUS}",
        ),
    },
    "fetch_push": {
        "mass": ScaleFactor(
            "mass", "block's mass (2 kg) and inertia", _SCALE_A, _SCALE_B, True, _mass("object0")
        ),
        "friction": ScaleFactor(
            "friction",
            "sliding friction (1) of block and table",
            _SCALE_A,
            _SCALE_B,
            False,
            _block_and_table_friction,
        ),
        "size": ScaleFactor(
            "size",
            "block's x, y half-sizes (0.025; height unchanged)",
            _SHAPE_A,
            _SHAPE_B,
            True,
            _geom_size("object0", (0, 1)),
            geometry=True,
        ),
        "goal": RegionFactor(
            "goal",
            "goal x:y, m from the gripper's start; gymnasium: A",
            ((-0.15, -0.15), (0.15, 0.15)),
            ((-0.15, 0.2), (0.15, 0.3)),
            _FETCH_PUSH_ALLOWED,
        ),
        "start": RegionFactor(
            "start",
            "block start x:y, m from the gripper's start; gymnasium: A",
            ((-0.15, -0.15), (0.15, 0.15)),
            ((-0.15, -0.3), (0.15, -0.2)),
            _FETCH_PUSH_ALLOWED,
            accept=_off_gripper,
            rule=f">= {FETCH_MIN_GAP} from the gripper",
        ),
        "distractors": DistractorFactor(
            "distractors",
            "static 5 cm cubes (the block's size) on the table, placed per episode, never observed",
            (0, 0),
            (1, MAX_DISTRACTORS),
            half=(0.025, 0.025, 0.025),
            height=0.425,  # the block's centre height on the table (height_offset)
            region=((1.1, 0.45), (1.5, 1.05)),  # inside the table top (1.05-1.55, 0.4-1.1)
            gap=0.1,
        ),
    },
    "fetch_reach": {
        "goal": RegionFactor(
            "goal",
            "goal x:y:z, m from the gripper's start; gymnasium: A",
            ((-0.15, -0.15, -0.15), (0.15, 0.15, 0.15)),
            ((-0.15, -0.15, 0.2), (0.15, 0.15, 0.3)),
            ((-0.4, -0.4, -0.4), (0.4, 0.4, 0.4)),
        ),
    },
}


# --- the variant and its string form ----------------------------------------------------------


def _fmt_num(x: float) -> str:
    return repr(float(x))


def _fmt_point(p: Sequence[float]) -> str:
    return ":".join(_fmt_num(x) for x in p)


def _fmt_range(r: tuple[float, float]) -> str:
    return f"[{r[0]:g}, {r[1]:g}]"


def _fmt_box(box: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    lo, hi = box
    return " ".join(f"{ax}[{l:g},{h:g}]" for ax, l, h in zip("xyz", lo, hi, strict=False))


@dataclass(frozen=True)
class Variant:
    """A task plus the settings of some of its factors, sorted by factor name.

    Each setting is a fixed multiplier (float), a fixed point (tuple of floats) or "A" / "B" (a
    fresh value per episode from that range). No settings means the unchanged task.
    """

    task: str
    settings: tuple[tuple[str, Setting], ...] = ()

    def __str__(self) -> str:
        if not self.settings:
            return "none"
        parts = []
        for name, setting in self.settings:
            if isinstance(setting, str | Span):
                parts.append(f"{name}={setting}")
            elif isinstance(setting, tuple):
                parts.append(f"{name}={_fmt_point(setting)}")
            else:
                parts.append(f"{name}={_fmt_num(setting)}")
        return ",".join(parts)

    def __post_init__(self) -> None:
        factors = _task_factors(self.task)
        for name, setting in self.settings:
            if name not in factors:
                raise ConfigError(
                    f"unknown variant factor {name!r} for {self.task}: choose from "
                    f"{', '.join(factors)}"
                )
            if isinstance(setting, str):
                if setting not in RANGES:
                    raise ConfigError(
                        f"variant {name}={setting!r}: a range is A or B (or Atrain, Aheld)"
                    )
                if setting == "Aheld" and isinstance(factors[name], DistractorFactor):
                    raise ConfigError(
                        f"variant {name}=Aheld: {name} has no held-out values (its range A is "
                        "the single count 0)"
                    )
            elif isinstance(setting, Span):
                _check_span(factors[name], setting)
            else:
                factors[name].check(setting)


def _task_factors(task: str) -> dict[str, Factor]:
    if task not in FACTORS:
        raise ConfigError(
            f"unknown env {task!r} for a variant: choose from {', '.join(sorted(FACTORS))}"
        )
    return FACTORS[task]


def _check_span(factor: Factor, span: Span) -> None:
    if not isinstance(factor, ScaleFactor):
        raise ConfigError(
            f"variant {factor.name}={span}: only a multiplier (mass, damping, friction, size, "
            "gear) takes a range lo~hi"
        )
    if not span.lo < span.hi:
        what = "empty" if span.lo == span.hi else "inverted"
        raise ConfigError(
            f"variant {factor.name}={span} is an {what} range: write lo~hi with lo < hi"
        )
    factor.check(span.lo)
    factor.check(span.hi)


def _parse_setting(task: str, factor: Factor, text: str) -> Setting:
    by_upper = {r.upper(): r for r in RANGES}
    if text.upper() in by_upper:
        return by_upper[text.upper()]
    if "~" in text:
        try:
            lo, hi = (float(t) for t in text.split("~"))
        except ValueError:
            raise ConfigError(
                f"variant {factor.name}={text!r} for {task}: a range is lo~hi, two numbers"
            ) from None
        span = Span(lo, hi)
        _check_span(factor, span)
        return span
    try:
        numbers = tuple(float(t) for t in text.split(":"))
    except ValueError:
        what = ":".join(factor.axes) if isinstance(factor, RegionFactor) else "a number"
        raise ConfigError(
            f"variant {factor.name}={text!r} for {task}: the value must be {what}, A or B "
            "(or Atrain, Aheld)"
        ) from None
    if isinstance(factor, DistractorFactor):
        if len(numbers) != 1:
            raise ConfigError(
                f"variant {factor.name}={text!r} for {task}: the value must be one count, A or B"
            )
        factor.check(numbers[0])
        return float(int(numbers[0]))
    if isinstance(factor, ScaleFactor):
        if len(numbers) != 1:
            raise ConfigError(
                f"variant {factor.name}={text!r} for {task}: the value must be one number "
                "(a multiplier), A or B"
            )
        factor.check(numbers[0])
        return numbers[0]
    factor.check(numbers)
    return numbers


def parse_variant(task: str, text: str | None) -> Variant:
    """The variant that one command-line string names (syntax in the module docstring).

    "none", "" and None give the unchanged task (`Variant(task)`, no settings).

    Raises:
        ConfigError (a ValueError), one line naming the bad value and what is allowed: an
        unknown task or factor, a repeated factor, a malformed value, or a value outside the
        factor's physical range (a negative mass, a goal off the table).
    """
    factors = _task_factors(task)
    text = (text or "").strip()
    if text.lower() in ("", "none"):
        return Variant(task)
    settings: dict[str, Setting] = {}
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        name = name.strip()
        if not eq or not value.strip():
            raise ConfigError(
                f"variant {part.strip()!r} for {task}: write factor=VALUE (VALUE a number, "
                f"x:y, A or B), factors {', '.join(factors)}"
            )
        if name not in factors:
            raise ConfigError(
                f"unknown variant factor {name!r} for {task}: choose from {', '.join(factors)}"
            )
        if name in settings:
            raise ConfigError(f"variant factor {name!r} is given twice in {text!r}")
        settings[name] = _parse_setting(task, factors[name], value.strip())
    return Variant(task, tuple(sorted(settings.items())))


def describe_variants(task: str) -> str:
    """The `--variant help` text of a task: each factor, what it changes and its ranges."""
    factors = _task_factors(task)
    rows = [("factor", "changes", "range A (train)", "range B (test)", "allowed")]
    for f in factors.values():
        if isinstance(f, ScaleFactor):
            rows.append((f.name, f"x {f.changes}", _fmt_range(f.a), _fmt_range(f.b), f.allowed))
        elif isinstance(f, DistractorFactor):
            rows.append((f.name, f"count of {f.changes}", "0", f"{f.b[0]}..{f.b[1]}", f.allowed))
        else:
            rule = f"; draws {f.rule}" if f.rule else ""
            rows.append(
                (f.name, f.changes + rule, _fmt_box(f.a), _fmt_box(f.b), _fmt_box(f.allowed))
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        f"variants of {task}: --variant factor=VALUE[,factor=VALUE...] (none: the unchanged task)",
        "VALUE: a number (a fixed multiplier, 'x' below, or a count), x:y[:z] (a fixed point), "
        "or A / B (a fresh value per episode from that range, seeded by the reset seed)",
        f"Atrain / Aheld: A's training / held-out half (even / odd of {SCALE_BINS} equal bins of a "
        f"multiplier; a {REGION_BINS}-per-axis checkerboard of a region)",
    ]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return "\n".join(line.rstrip() for line in lines)


# --- applying a variant to a live env ---------------------------------------------------------


def _episode_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SALT]))


class VariantWrapper(gym.Wrapper):
    """Applies a `Variant` at every reset (see the module docstring); steps are untouched.

    Wrap the env gymnasium makes, before any observation wrapper: the region factors rebuild
    the observation with `env.unwrapped._get_obs()`.
    """

    def __init__(self, env: gym.Env, variant: Variant):
        super().__init__(env)
        self.variant = variant
        self._scales: list[tuple[ScaleFactor, Setting, list[tuple[str, Index, np.ndarray]]]] = []
        self._regions: dict[str, tuple[RegionFactor, Setting]] = {}
        self._distractors: tuple[DistractorFactor, Setting, np.ndarray] | None = None
        for name, setting in variant.settings:
            factor = FACTORS[variant.task][name]
            if isinstance(factor, DistractorFactor):
                ids = add_distractor_bodies(env.unwrapped, factor)
                self._distractors = (factor, setting, ids)
        model = env.unwrapped.model  # after any distractor bodies were added
        for name, setting in variant.settings:
            factor = FACTORS[variant.task][name]
            if isinstance(factor, DistractorFactor):
                continue
            if isinstance(factor, ScaleFactor):
                nominal = [(f, i, getattr(model, f)[i].copy()) for f, i in factor.targets(model)]
                self._scales.append((factor, setting, nominal))
            else:
                self._regions[name] = (factor, setting)
        self._scratch = mujoco.MjData(model) if self._scales else None
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = _episode_rng(seed)
        elif self._rng is None:  # never seeded: follow the env's own (possibly random) seed
            self._rng = _episode_rng(max(int(self.env.unwrapped.np_random_seed), 0))
        values: dict[str, Any] = {}
        for factor, setting, _ in self._scales:
            values[factor.name] = self._draw_scale(factor, setting)
        _apply_scales(self.env.unwrapped.model, self._scales, values, self._scratch)
        obs, info = self.env.reset(seed=seed, options=options)
        if self._regions:
            values.update(_PLACE[self.variant.task](self.env.unwrapped, self._points()))
            obs = self.env.unwrapped._get_obs()
        if self._distractors is not None:
            factor, setting, ids = self._distractors
            count = factor.draw(self._rng, setting) if isinstance(setting, str) else int(setting)
            values[factor.name] = place_distractors(
                self.env.unwrapped, self.variant.task, factor, ids, count, self._rng
            )
        return obs, {**info, "variant": values}

    def _draw_scale(self, factor: ScaleFactor, setting: Setting) -> float:
        if isinstance(setting, str):
            return factor.draw(self._rng, setting)
        if isinstance(setting, Span):
            return float(self._rng.uniform(setting.lo, setting.hi))
        return float(setting)

    def _points(self) -> dict[str, tuple[Callable[[], np.ndarray], bool]]:
        """factor -> (a function giving its next point, whether that point is sampled)."""
        out = {}
        for name, (factor, setting) in self._regions.items():
            if isinstance(setting, str):
                out[name] = (lambda f=factor, s=setting: f.draw(self._rng, s), True)
            else:
                out[name] = (lambda p=setting: np.asarray(p, np.float64), False)
        return out


def _apply_scales(
    model: mujoco.MjModel,
    scales: list[tuple[ScaleFactor, Setting, list[tuple[str, Index, np.ndarray]]]],
    values: dict[str, float],
    scratch: mujoco.MjData | None,
) -> None:
    """Write nominal x value into the model for each scale factor, then recompute constants.

    `scales` holds each factor with its targets' nominal values, taken once; `scratch` is an
    MjData of the model that `mj_setConst` may overwrite (never the env's).
    """
    for factor, _, nominal in scales:
        for field, index, value in nominal:
            getattr(model, field)[index] = value * values[factor.name]
        if factor.geometry:
            for field, index, _ in nominal:
                if field == "geom_size":
                    _update_bounds(model, int(index[0]))
    if scales:
        mujoco.mj_setConst(model, scratch)


Points = dict[str, tuple[Callable[[], np.ndarray], bool]]


def _place_until(
    points: Points,
    current: dict[str, np.ndarray],
    ok: Callable[[dict[str, np.ndarray]], bool],
) -> dict[str, np.ndarray]:
    """Draw the region points (fixed ones as given) until `ok`, redrawing only sampled ones."""
    sampled = any(is_sampled for _, is_sampled in points.values())
    for _ in range(_MAX_TRIES):
        placed = {**current, **{name: draw() for name, (draw, _) in points.items()}}
        if not sampled or ok(placed):
            return placed
    raise RuntimeError(f"variant regions {', '.join(points)}: no placement passes the task's rule")


def _place_pusher(u: Any, points: Points) -> dict[str, list[float]]:
    # qpos[-4:] = obj_slidey, obj_slidex, goal_slidey, goal_slidex: (x, y) is reversed
    qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
    current = {"start": qpos[-4:-2][::-1].copy(), "goal": qpos[-2:][::-1].copy()}
    gap = lambda p: np.linalg.norm(p["start"] - p["goal"]) > PUSHER_MIN_GAP  # noqa: E731
    placed = _place_until(points, current, gap)
    qpos[-4:-2], qpos[-2:] = placed["start"][::-1], placed["goal"][::-1]
    u.set_state(qpos, qvel)
    return {name: placed[name].tolist() for name in points}


def _place_reacher(u: Any, points: Points) -> dict[str, list[float]]:
    qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
    qpos[-2:] = points["goal"][0]()  # target joints: qpos = world x, y
    u.set_state(qpos, qvel)
    return {"goal": qpos[-2:].tolist()}


def _place_fetch(u: Any, points: Points) -> dict[str, list[float]]:
    grip = u.initial_gripper_xpos
    out = {}
    if "start" in points:
        xy = points["start"][0]()
        adr = u.model.jnt_qposadr[u.model.joint("object0:joint").id]
        u.data.qpos[adr : adr + 2] = grip[:2] + xy
        mujoco.mj_forward(u.model, u.data)
        out["start"] = xy.tolist()
    if "goal" in points:
        offset = points["goal"][0]()
        if offset.size == 2:  # FetchPush: on the table, at the height gymnasium puts it
            goal = np.array([grip[0] + offset[0], grip[1] + offset[1], u.height_offset])
        else:
            goal = grip + offset
        u.goal = goal
        out["goal"] = offset.tolist()
    return out


_PLACE: dict[str, Callable[[Any, Points], dict[str, list[float]]]] = {
    "pusher": _place_pusher,
    "reacher": _place_reacher,
    "fetch_push": _place_fetch,
    "fetch_reach": _place_fetch,
}


# --- distractor bodies ------------------------------------------------------------------------

_PARKED = np.array([10.0, 10.0, -1.0])  # where unused distractors wait, far from everything
_MODEL_CACHE = "pmbrl_variant_models"  # directory (under the system temp dir) of derived XMLs


def editable_spec(path: str) -> mujoco.MjSpec:
    """The `MjSpec` of the model file at `path`, with its mesh and texture directories made
    absolute, so an edited copy written elsewhere (`write_model_xml`) still finds its assets."""
    import os

    spec = mujoco.MjSpec.from_file(path)
    folder = os.path.dirname(path)
    for attr in ("meshdir", "texturedir"):
        rel = getattr(spec, attr)
        if rel and not os.path.isabs(rel):
            setattr(spec, attr, os.path.normpath(os.path.join(folder, rel)))
    return spec


def write_model_xml(spec: mujoco.MjSpec, base_path: str, tag: str = "") -> str:
    """Compile an edited `spec` and write its XML once per content under the system temp
    directory (`_MODEL_CACHE`), named after `base_path`'s file, `tag` and a SHA-256 digest of the
    XML; return that path (reused when it exists). The write is atomic (a temp file renamed),
    so concurrent builders are safe: they write the same bytes."""
    import hashlib
    import os
    import tempfile

    spec.compile()
    xml = spec.to_xml()
    cache = os.path.join(tempfile.gettempdir(), _MODEL_CACHE)
    os.makedirs(cache, exist_ok=True)
    digest = hashlib.sha256(xml.encode()).hexdigest()[:16]
    path = os.path.join(cache, f"{os.path.basename(base_path)[:-4]}{tag}_{digest}.xml")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(xml)
        os.replace(tmp, path)
    return path


def add_distractor_bodies(u: Any, factor: DistractorFactor) -> np.ndarray:
    """Rebuild the env's model with `MAX_DISTRACTORS` static boxes and swap it in; their body ids.

    The boxes are world bodies without joints (so qpos, qvel and the observation keep their
    sizes), parked at `_PARKED` until `place_distractors` moves them. The new model is compiled
    from an XML file written once per content (SHA-256 name) under the system temp directory,
    and `u.fullpath` points to it, so whatever rebuilds the model from the env's file (the
    oracle's sensor model) gets the same bodies. The env's MjData is replaced by one of the new
    model holding the same state; Fetch's name tables and the renderer follow.
    """
    spec = editable_spec(u.fullpath)
    for i in range(MAX_DISTRACTORS):
        body = spec.worldbody.add_body(name=f"distractor{i}", pos=_PARKED + [i, 0, 0])
        body.add_geom(
            name=f"distractor{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=list(factor.half),
            rgba=[0.45, 0.45, 0.5, 1.0],
            contype=1,  # collides with the arm and the object (Pusher's default geom does not)
            conaffinity=1,
        )
    path = write_model_xml(spec, u.fullpath)
    old_model, old_data = u.model, u.data
    model = mujoco.MjModel.from_xml_path(path)
    if (model.nq, model.nv, model.nu, model.nmocap) != (
        old_model.nq,
        old_model.nv,
        old_model.nu,
        old_model.nmocap,
    ):
        raise RuntimeError("adding distractor bodies changed the model's state size")
    model.vis.global_.offwidth = old_model.vis.global_.offwidth
    model.vis.global_.offheight = old_model.vis.global_.offheight
    # Parameters the env changed on its live model after loading the XML: gymnasium-robotics'
    # `reset_mocap_welds` zeroes the mocap weld's relative pose at setup, and the XML still holds
    # the original one (with it, the gripper is pulled 0.5 m off the mocap target).
    model.eq_data[:] = old_model.eq_data
    data = mujoco.MjData(model)
    for field in ("qpos", "qvel", "act", "ctrl", "mocap_pos", "mocap_quat"):
        getattr(data, field)[:] = getattr(old_data, field)
    data.time = old_data.time
    mujoco.mj_forward(model, data)
    u.model, u.data, u.fullpath = model, data, path
    if hasattr(u, "_model_names"):  # gymnasium-robotics' name tables
        u._model_names = u._utils.MujocoModelNames(model)
    renderer = getattr(u, "mujoco_renderer", None)
    if renderer is not None:
        renderer.model, renderer.data = model, data
    return np.array([model.body(f"distractor{i}").id for i in range(MAX_DISTRACTORS)])


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from point p to the segment a-b (2-d)."""
    ab = b - a
    t = np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * ab)))


def _anchors(u: Any, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World (x, y) of the object, the goal and the arm at the episode's start."""
    if task == "pusher":
        return tuple(u.data.body(b).xpos[:2].copy() for b in ("object", "goal", "tips_arm"))
    return (
        u.data.body("object0").xpos[:2].copy(),
        np.asarray(u.goal[:2], np.float64),
        np.asarray(u.initial_gripper_xpos[:2], np.float64),
    )


def place_distractors(
    u: Any,
    task: str,
    factor: DistractorFactor,
    ids: np.ndarray,
    count: int,
    rng: np.random.Generator,
) -> list[list[float]]:
    """Put `count` distractors on the table (the rest parked) and return their world (x, y).

    Each is drawn uniformly in `factor.region` until it is at least `factor.gap` from the
    object, the goal, the arm's start, the object-goal segment and the ones placed before it.
    """
    obj, goal, arm = _anchors(u, task)
    lo, hi = np.asarray(factor.region[0]), np.asarray(factor.region[1])
    placed: list[np.ndarray] = []
    for _ in range(count):
        for _ in range(_MAX_TRIES):
            p = rng.uniform(lo, hi)
            near = [obj, goal, arm, *placed]
            if min(float(np.linalg.norm(p - q)) for q in near) >= factor.gap and (
                _segment_distance(p, obj, goal) >= factor.gap
            ):
                placed.append(p)
                break
        else:
            raise RuntimeError(f"variant {factor.name}: no free place on the table")
    for i, body in enumerate(ids):
        if i < count:
            u.model.body_pos[body] = [placed[i][0], placed[i][1], factor.height]
        else:
            u.model.body_pos[body] = _PARKED + [i, 0, 0]
    mujoco.mj_forward(u.model, u.data)
    return [p.tolist() for p in placed]
