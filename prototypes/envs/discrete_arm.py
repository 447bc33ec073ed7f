"""A discrete pushing task whose macro-actions run in a real MuJoCo simulation.

The simulator (an MJCF string, `arm_xml`): a Cartesian gripper (a box of half-size 0.4 cell on
x/y slide joints, each driven by a position servo) and a block (half-size 0.4 cell, x/y slide
joints with viscous damping, no rotation) on a table fenced by four walls. Gravity is off (all
motion is horizontal) and contacts are frictionless (condim 1), so the gripper slides past the
block's faces without dragging it and pushes it only face-on.

The abstraction (documented in full so a test can check it against the simulation) is
object-centric: the block's cell, and the gripper's cell *relative to the block*:

    state  = (obj_x, obj_y, rel_x, rel_y, goal_x, goal_y); obj and goal cells in 0..W-1, and
             rel = grip - obj + (W - 1) in 0..2W-2 (so rel = W - 1 means "same column / row"),
             cell(p) = clip(round(p / cell_size), 0, W - 1) of the body's x / y position.
    Why relative: contact (rel = (W-2, W-1) is "gripper just left of the block") then means the
    same state wherever the block is, so every next-state variable depends on at most four
    inputs (its own block coordinate, rel_x, rel_y, action) and a DBN learns pushing from a few
    hundred random episodes; with absolute gripper cells each family needs five inputs (2500
    configurations) and random data almost never covers them.
    action = 0: +x, 1: -x, 2: +y, 3: -y (move the gripper one cell).
    macro-step: a guarded move of the gripper to the target cell t = grip + d, run for
             `substeps` physics steps (0.3 s by default): the servo aims OVERSHOOT = 0.2 cell
             past the centre of t for the first half, then at the centre of t (so a pushed block
             ends centred in its new cell, 0.2 cell clear of the gripper), or, if the gripper is
             still over half a cell short of t, back at the centre of its start cell. A target
             outside the grid is not attempted.

Resulting discrete dynamics (`exact_next`; measured to agree with the simulation on every step of
random episodes, see tests/envs/test_discrete_arm.py):
    - t outside the grid (checked along the axis of the move): nothing moves.
    - t == obj: the gripper pushes the block one cell, to obj + d, unless obj + d is outside
      the grid, in which case the wall stops the block, the block stops the gripper, the
      gripper retreats, and nothing moves.
    - otherwise the gripper moves to t.
    - the goal never moves.
A block on the border cannot be pulled back (the gripper only pushes), so blocks and goals start
in the interior cells 1..W-2. Episodes end when obj == goal (terminated) or after `max_steps`
macro-steps (truncated). The reward of a step is R(s') = -|obj - goal|_1 - 0.2 |grip - obj|_1,
additive over two pairwise and two unary tables (`arm_spec`), so a factor graph can hold it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import gymnasium as gym
import jax.numpy as jnp
import mujoco
import numpy as np
from numpy.typing import ArrayLike

from prototypes.config import arg, check
from prototypes.envs.factored_mdp import FactoredMDP, FactoredSpec, RewardTerm, check_states
from prototypes.envs.registry import EnvSpec
from prototypes.envs.schema_world import SchemaRules, SchemaSpec, manhattan_offsets

__all__ = [
    "DiscreteArmConfig",
    "DiscreteArmEnv",
    "MOVES",
    "NAMES",
    "arm_spec",
    "arm_xml",
    "exact_next",
    "exact_dbn",
    "from_cells",
    "reward_jax",
    "to_cells",
    "ARM_ACTIONS",
    "ARM_ATTRIBUTES",
    "ARM_DIRECTIONS",
    "LAYOUTS",
    "PushArmEnv",
    "PushLayout",
    "arm_rules",
    "arm_schema_spec",
    "covered_goals",
    "grid_state",
    "push_arm_xml",
    "push_next",
    "solve_steps",
    "push_arm_spec",
    "cell_dbn_spec",
    "cell_dbn_state",
]

NAMES = ("obj_x", "obj_y", "rel_x", "rel_y", "goal_x", "goal_y")
JOINTS = ("grip_x", "grip_y", "obj_x", "obj_y")  # slide joints; positions() reads them
MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.int32)  # action -> (dx, dy)
GRIP_HALF, BLOCK_HALF = 0.4, 0.4  # half-sizes in cells; a push leaves the block 0.8 cell ahead
OVERSHOOT = 1.0 - GRIP_HALF - BLOCK_HALF  # cells the servo target passes the target cell
SHAPING = 0.2  # weight of the gripper-to-block distance in the reward


@dataclass(frozen=True)
class DiscreteArmConfig:
    width: int = arg(5, "grid width W (cells per side; interior cells 1..W-2 hold blocks/goals)")
    cell_size: float = arg(0.05, "cell size in metres")
    substeps: int = arg(150, "physics steps (2 ms each) per macro-action")
    max_steps: int = arg(30, "macro-steps per episode before truncation")

    def __post_init__(self) -> None:
        check(self.width >= 4, f"width must be >= 4 (a 2x2 interior at least), got {self.width}")
        check(self.cell_size > 0, f"cell_size must be > 0, got {self.cell_size}")
        check(self.substeps >= 1, f"substeps must be >= 1, got {self.substeps}")
        check(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")


def arm_xml(cfg: DiscreteArmConfig) -> str:
    """The MJCF model: gripper, block and walls on a W x W grid of `cell_size` cells."""
    c, w = cfg.cell_size, cfg.width
    g, b = GRIP_HALF * c, BLOCK_HALF * c
    lo, hi = -(b + 0.05 * c), (w - 1) * c + b + 0.05 * c  # inner wall faces
    mid, span, t = (lo + hi) / 2, (hi - lo) / 2, 0.01
    walls = "\n".join(
        f'<geom name="wall{i}" type="box" pos="{x} {y} {b}" size="{sx} {sy} {b}" '
        'rgba=".5 .5 .5 1"/>'
        for i, (x, y, sx, sy) in enumerate([
            (lo - t, mid, t, span + 2 * t), (hi + t, mid, t, span + 2 * t),
            (mid, lo - t, span + 2 * t, t), (mid, hi + t, span + 2 * t, t)]))
    return f"""
<mujoco model="discrete_arm">
  <option timestep="0.002" gravity="0 0 0"/>
  <default><geom condim="1" friction="0 0 0"/></default>
  <worldbody>
    <geom name="table" type="plane" pos="{mid} {mid} 0" size="{span + 0.05} {span + 0.05} 0.01"
          contype="0" conaffinity="0" rgba=".9 .9 .9 1"/>
    {walls}
    <body name="gripper" pos="0 0 {b}">
      <joint name="grip_x" type="slide" axis="1 0 0" damping="90"/>
      <joint name="grip_y" type="slide" axis="0 1 0" damping="90"/>
      <geom name="gripper" type="box" size="{g} {g} {0.8 * b}" mass="1" rgba=".2 .4 .8 1"/>
    </body>
    <body name="block" pos="0 0 {b}">
      <joint name="obj_x" type="slide" axis="1 0 0" damping="20"/>
      <joint name="obj_y" type="slide" axis="0 1 0" damping="20"/>
      <geom name="block" type="box" size="{b} {b} {b}" mass="0.1" rgba=".8 .3 .2 1"/>
    </body>
  </worldbody>
  <actuator>
    <position name="servo_x" joint="grip_x" kp="2000"/>
    <position name="servo_y" joint="grip_y" kp="2000"/>
  </actuator>
</mujoco>
"""


def arm_spec(width: int = 5) -> FactoredSpec:
    """The factored task description: six cell variables, four moves, the shaped reward."""
    cells = np.arange(width)
    dist = np.abs(cells[:, None] - cells[None, :]).astype(np.float64)
    rel = np.abs(np.arange(2 * width - 1) - (width - 1)).astype(np.float64)

    def done_fn(state):
        return (state[0] == state[4]) & (state[1] == state[5])

    terms = (
        RewardTerm(("obj_x", "goal_x"), -dist), RewardTerm(("obj_y", "goal_y"), -dist),
        RewardTerm(("rel_x",), -SHAPING * rel), RewardTerm(("rel_y",), -SHAPING * rel),
    )
    cards = (width, width, 2 * width - 1, 2 * width - 1, width, width)
    return FactoredSpec(NAMES, cards, len(MOVES), terms, done_fn)


def to_cells(states: ArrayLike, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Abstract states [B, 6] -> (gripper cells [B, 2], block cells [B, 2], goal cells [B, 2])."""
    s = np.asarray(states, dtype=np.int64)
    obj = s[:, 0:2]
    return obj + s[:, 2:4] - (width - 1), obj, s[:, 4:6]


def from_cells(grip: ArrayLike, obj: ArrayLike, goal: ArrayLike, width: int) -> np.ndarray:
    """(gripper, block, goal cells [B, 2] each) -> abstract states [B, 6] int32."""
    grip, obj = np.asarray(grip), np.asarray(obj)
    return np.concatenate([obj, grip - obj + (width - 1), np.asarray(goal)], axis=1).astype(
        np.int32)


def exact_next(states: ArrayLike, actions: ArrayLike, width: int) -> np.ndarray:
    """The abstraction's exact dynamics (see the module docstring) for a batch (NumPy).

    Args:
        states: [B, 6] int cells; actions: [B] int in 0..3; width: W.

    Returns:
        [B, 6] int32 next states.
    """
    grip, obj, goal = to_cells(states, width)
    d = MOVES[np.asarray(actions, dtype=np.int64)]
    axis = (d != 0)  # [B, 2] the axis of each move
    target = grip + d
    inside = np.all(~axis | ((target >= 0) & (target < width)), axis=1)
    hits = np.all(target == obj, axis=1)
    pushed = obj + d
    can_push = np.all(~axis | ((pushed >= 0) & (pushed < width)), axis=1)
    move = inside & (~hits | can_push)
    push = move & hits
    grip = np.where(move[:, None], target, grip)
    obj = np.where(push[:, None], pushed, obj)
    return from_cells(grip, obj, goal, width)


def exact_dbn(width: int = 5) -> FactoredMDP:
    """`exact_next` as a deterministic DBN: the true parent sets and one-hot tables.

    obj_x and rel_x each depend on (obj_x, rel_x, rel_y, action); obj_y and rel_y on
    (obj_y, rel_x, rel_y, action); each goal coordinate on itself. (Only a block at the wall
    needs the absolute block coordinate; contact needs both relative ones.)
    """
    spec = arm_spec(width)
    w, r, a = width, 2 * width - 1, len(MOVES)
    grid = np.indices((w, w, r, r, a)).reshape(5, -1).T  # ox, oy, rx, ry, action
    states = np.concatenate([grid[:, :4], np.zeros((len(grid), 2), np.int64)], axis=1)
    nxt = exact_next(states, grid[:, 4], width).reshape(w, w, r, r, a, 6)
    parents, cpts = [], []
    for i, own in ((0, 0), (1, 1), (2, 0), (3, 1)):  # next variable, its block coordinate
        table = np.moveaxis(nxt[..., i], 1 - own, 0)  # the other block coordinate first
        if not np.all(table == table[:1]):
            raise AssertionError(f"{NAMES[i]} depends on the other block coordinate")
        parents.append((own, 2, 3, 6))
        cpts.append(np.eye(spec.cards[i])[table[0]])
    for i in (4, 5):
        parents.append((i,))
        cpts.append(np.eye(w))
    return FactoredMDP(spec, tuple(parents), tuple(cpts))


class DiscreteArmEnv(gym.Env):
    """The pushing task as a gymnasium env over the abstraction (observations are cells).

    observation: int32 [6] (obj_x, obj_y, rel_x, rel_y, goal_x, goal_y); action: Discrete(4).
    `set_abstract_state` places the bodies at cell centres; `abstract_state` reads the cells.
    """

    metadata = {"render_modes": []}

    def __init__(self, cfg: DiscreteArmConfig | None = None):
        self.cfg = cfg or DiscreteArmConfig()
        self.spec_factored = arm_spec(self.cfg.width)
        self.model = mujoco.MjModel.from_xml_string(arm_xml(self.cfg))
        self.data = mujoco.MjData(self.model)
        w = self.cfg.width
        self.observation_space = gym.spaces.MultiDiscrete([w] * 6)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self._goal = np.zeros(2, np.int32)
        self._grip_cell = np.zeros(2, np.int32)
        self._t = 0
        jid = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in JOINTS]
        self._qadr = np.array([self.model.jnt_qposadr[j] for j in jid])

    # --- abstraction ---------------------------------------------------------------------
    def positions(self) -> np.ndarray:
        """[4] metres: gripper x, y, block x, y."""
        return self.data.qpos[self._qadr].copy()

    def abstract_state(self) -> np.ndarray:
        """The current abstract state, int32 [6] (see the module docstring)."""
        cells = np.clip(np.round(self.positions() / self.cfg.cell_size), 0, self.cfg.width - 1)
        cells = cells.astype(np.int64)
        return from_cells(cells[None, 0:2], cells[None, 2:4], self._goal[None],
                          self.cfg.width)[0]

    def set_abstract_state(self, state: ArrayLike) -> np.ndarray:
        """Place gripper and block at the centres of the given cells (at rest); set the goal.

        Raises:
            ValueError: a value outside its variable's range (named), a relative position that
                puts the gripper off the grid, or gripper and block in one cell.
        """
        w = self.cfg.width
        state = check_states(self.spec_factored, np.asarray(state)[None])[0]
        grip, obj, goal = (x[0] for x in to_cells(state[None], w))
        for axis in range(2):
            if not 0 <= grip[axis] < w:
                raise ValueError(
                    f"{NAMES[2 + axis]}={state[2 + axis]} puts the gripper in cell "
                    f"{grip[axis]} along {'xy'[axis]}; allowed cells 0..{w - 1}")
        if np.array_equal(grip, obj):
            raise ValueError(f"gripper and block are both in cell {tuple(obj.tolist())}; they "
                             "must be in different cells")
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._qadr] = np.concatenate([grip, obj]) * self.cfg.cell_size
        self.data.ctrl[:] = grip * self.cfg.cell_size
        self._goal = goal.astype(np.int32)
        self._grip_cell = grip.astype(np.int32)
        mujoco.mj_forward(self.model, self.data)
        return state

    # --- gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        w, rng = self.cfg.width, self.np_random
        obj = rng.integers(1, w - 1, size=2)
        goal = obj
        while np.array_equal(goal, obj):
            goal = rng.integers(1, w - 1, size=2)
        grip = obj
        while np.array_equal(grip, obj):
            grip = rng.integers(0, w, size=2)
        self._t = 0
        return self.set_abstract_state(from_cells(grip[None], obj[None], goal[None], w)[0]), {}

    def step(self, action):
        action = int(action)
        if not 0 <= action < len(MOVES):
            raise ValueError(f"action {action} is out of range; allowed: 0..{len(MOVES) - 1}")
        target = self._grip_cell + MOVES[action]
        if np.all((target >= 0) & (target < self.cfg.width)):
            # Overshoot, then come back: a pushed block ends centred in its new cell (pushed to
            # target + OVERSHOOT + 0.8 = target + 1) and the gripper 0.2 cell clear of it.
            # A guarded move: if the gripper is still more than half a cell short of the target
            # (a block against the wall stops it), it retreats to the centre of its start cell.
            first, c = self.cfg.substeps // 2, self.cfg.cell_size
            self.data.ctrl[:] = (target + OVERSHOOT * MOVES[action]) * c
            mujoco.mj_step(self.model, self.data, nstep=first)
            reached = np.abs(self.positions()[:2] / c - target).max() < 0.5
            self.data.ctrl[:] = (target if reached else self._grip_cell) * c
            mujoco.mj_step(self.model, self.data, nstep=self.cfg.substeps - first)
        state = self.abstract_state()
        self._grip_cell = to_cells(state[None], self.cfg.width)[0][0].astype(np.int32)
        self._t += 1
        reward = float(self.spec_factored.reward_np(state[None])[0])
        terminated = bool(np.array_equal(state[0:2], state[4:6]))
        truncated = self._t >= self.cfg.max_steps
        return state, reward, terminated, truncated, {}


def reward_jax(states, width: int = 5):
    """R(s') for states [..., 6] (pure JAX), the same as `arm_spec(width).reward_jax`."""
    d = lambda i, j: jnp.abs(states[..., i] - states[..., j]).astype(jnp.float32)
    rel = lambda i: jnp.abs(states[..., i] - (width - 1)).astype(jnp.float32)
    return -(d(0, 4) + d(1, 5)) - SHAPING * (rel(2) + rel(3))


# --- many blocks: the grid of entities ----------------------------------------------------------
#
# The multi-object task sits beside the single-block one above and shares nothing with it but
# the gripper's guarded, overshooting macro-move. Its abstraction is the schema world's
# (envs/schema_world.py): every cell of a W x W grid is an entity with the binary attributes
# ARM_ATTRIBUTES, and the observation is that grid, bool [W, W, 4]:
#
#     gripper  the gripper's centre is in this cell
#     block    a block's centre is in this cell (any block: goals name no particular block)
#     solid    a block or a wall is here (walls: the border ring and fixed obstacles)
#     goal     a goal cell (fixed for the episode)
#
# Cell (row r, col c) is the body position (x, y) = (c, r) * cell_size, rounded. `solid` is what
# makes a rule learned with one block hold for many: a push needs the cell beyond the block
# free of walls *and* blocks, and with one block seen in training the only solid things beyond
# were walls; a rule over `solid` says both at once.
#
# Macro-action d in ARM_ACTIONS ((dr, dc) = +x: (0, 1), -x: (0, -1), +y: (1, 0), -y: (-1, 0)):
# the controller reads the grid and moves the gripper one cell to t = grip + d if t is free,
# or pushes the block at t one cell on if t + d is free (no wall, no block: one block at a
# time); otherwise it does not move. The move is the single-block task's servo motion
# (overshoot by OVERSHOOT, then settle at the centre of t) run in MuJoCo for `substeps` steps;
# a test checks that the cells read back from the simulation equal `push_next` on every step.
# Reward: the change in the number of goal cells holding a block (+1 when a block arrives on
# an empty goal, -1 when one leaves); the episode terminates when every goal holds a block.

ARM_ATTRIBUTES = ("gripper", "block", "solid", "goal")
ARM_ACTIONS = ("+x", "-x", "+y", "-y")
ARM_DIRECTIONS = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]], np.int64)  # (dr, dc) per action
GRIPPER, BLOCK, SOLID, GOAL = range(4)


@dataclass(frozen=True)
class PushLayout:
    """A W x W map of walls and how many blocks and goals an episode places on it.

    Attributes:
        name: the layout's name.
        rows: W strings of W characters, '#' wall, '.' free; the border must be all wall.
        blocks: blocks per episode (>= goals; the ones beyond `goals` are distractors).
        goals: goal cells per episode (>= 1).
        max_steps: macro-steps before truncation.

    Raises:
        ValueError: a ragged or non-square map, a border cell that is not wall, an unknown
            character, counts out of range, or too few free cells to place them.
    """

    name: str
    rows: tuple[str, ...]
    blocks: int = 1
    goals: int = 1
    max_steps: int = 40

    def __post_init__(self) -> None:
        rows = tuple(self.rows)
        object.__setattr__(self, "rows", rows)
        w = len(rows)
        if w < 5 or any(len(r) != w for r in rows):
            raise ValueError(f"layout {self.name!r}: the map must be W x W with W >= 5")
        bad = sorted(set("".join(rows)) - {"#", "."})
        if bad:
            raise ValueError(f"layout {self.name!r}: unknown map character {bad[0]!r}; use # or .")
        walls = self.walls
        if not (walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()):
            raise ValueError(f"layout {self.name!r}: the border of the map must be all wall '#'")
        if not 1 <= self.goals <= self.blocks:
            raise ValueError(
                f"layout {self.name!r}: need 1 <= goals <= blocks, got {self.goals} goals and "
                f"{self.blocks} blocks"
            )
        if len(self.block_cells) < self.blocks or (~walls).sum() < self.blocks + self.goals + 1:
            raise ValueError(f"layout {self.name!r}: too few free cells for {self.blocks} blocks")
        if self.max_steps < 1:
            raise ValueError(f"layout {self.name!r}: max_steps must be >= 1, got {self.max_steps}")

    @property
    def width(self) -> int:
        return len(self.rows)

    @property
    def walls(self) -> np.ndarray:
        """bool [W, W], True on wall cells."""
        return np.array([[ch == "#" for ch in r] for r in self.rows])

    @property
    def block_cells(self) -> np.ndarray:
        """int [n, 2] cells a block may start in: free, with no wall among its 4 neighbours (a
        block against a wall can never be pulled off it)."""
        walls = self.walls
        near = walls[:-2, 1:-1] | walls[2:, 1:-1] | walls[1:-1, :-2] | walls[1:-1, 2:]
        ok = np.zeros_like(walls)
        ok[1:-1, 1:-1] = ~walls[1:-1, 1:-1] & ~near
        return np.argwhere(ok)


def _rows(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_TRAIN_MAP = _rows("""
########
#......#
#......#
#..##..#
#..#...#
#......#
#......#
########""")  # an L: a wall one cell thick along both axes, so every push into a wall is seen
_MOVED_MAP = _rows("""
########
#......#
#.#....#
#.#....#
#....#.#
#....#.#
#......#
########""")
_BIG_MAP = _rows("""
##########
#........#
#........#
#..#.....#
#..#...#.#
#......#.#
#........#
#.##.....#
#........#
##########""")

LAYOUTS: dict[str, PushLayout] = {
    p.name: p
    for p in (
        PushLayout("train", _TRAIN_MAP, 1, 1, 40),
        PushLayout("two_blocks", _TRAIN_MAP, 2, 2, 80),
        PushLayout("three_blocks", _TRAIN_MAP, 3, 3, 120),
        PushLayout("moved_walls", _MOVED_MAP, 1, 1, 40),
        PushLayout("distractors", _TRAIN_MAP, 3, 1, 40),
        PushLayout("big_three_blocks", _BIG_MAP, 3, 3, 120),
    )
}


def arm_schema_spec() -> SchemaSpec:
    """The schema-world description of the task: ARM_ATTRIBUTES, ARM_ACTIONS, Manhattan
    radius-2 offsets, outside the grid solid."""
    return SchemaSpec(ARM_ATTRIBUTES, ARM_ACTIONS, manhattan_offsets(2), pad=(0, 0, 1, 0))


def arm_rules() -> tuple[SchemaSpec, SchemaRules]:
    """The task's true schemas (`push_next` written as lifted AND/OR rules), per direction d,
    cells relative to the entity (ahead = +d, beyond = +2d, behind = -d, behind2 = -2d):

    - gripper off: d & solid@ahead=0; d & block@ahead=1 & solid@beyond=0
    - gripper on: d & gripper@behind=1 & solid@0=0; d & gripper@behind=1 & block@0=1 &
      solid@ahead=0
    - block off: d & gripper@behind=1 & solid@ahead=0
    - block on: d & block@behind=1 & gripper@behind2=1 & solid@0=0
    - solid off: d & block@0=1 & gripper@behind=1 & solid@ahead=0
    - solid on: d & block@behind=1 & gripper@behind2=1
    - reward (a block arrives on an empty goal): d & goal@0=1 & solid@0=0 & block@behind=1 &
      gripper@behind2=1
    Goals never change. 32 attribute schemas (8 per direction) and 4 reward schemas.
    """
    spec = arm_schema_spec()
    c = spec.conjunction
    g_on, g_off, b_on, b_off, s_on, s_off, reward = ([] for _ in range(7))
    for name, (dr, dc) in zip(ARM_ACTIONS, ARM_DIRECTIONS.tolist(), strict=True):
        a, b2 = (dr, dc), (2 * dr, 2 * dc)
        z, bh, bh2 = (0, 0), (-dr, -dc), (-2 * dr, -2 * dc)
        act = ("action", name)
        g_off += [c(act, ("solid", a, 0)), c(act, ("block", a, 1), ("solid", b2, 0))]
        g_on += [
            c(act, ("gripper", bh, 1), ("solid", z, 0)),
            c(act, ("gripper", bh, 1), ("block", z, 1), ("solid", a, 0)),
        ]
        b_off.append(c(act, ("gripper", bh, 1), ("solid", a, 0)))
        b_on.append(c(act, ("block", bh, 1), ("gripper", bh2, 1), ("solid", z, 0)))
        s_off.append(c(act, ("block", z, 1), ("gripper", bh, 1), ("solid", a, 0)))
        s_on.append(c(act, ("block", bh, 1), ("gripper", bh2, 1)))
        reward.append(
            c(act, ("goal", z, 1), ("solid", z, 0), ("block", bh, 1), ("gripper", bh2, 1))
        )
    rules = SchemaRules(
        on=(tuple(g_on), tuple(b_on), tuple(s_on), ()),
        off=(tuple(g_off), tuple(b_off), tuple(s_off), ()),
        reward=tuple(reward),
    )
    return spec, rules


def grid_state(
    walls: ArrayLike, grip: ArrayLike, blocks: ArrayLike, goals: ArrayLike
) -> np.ndarray:
    """The entity grid bool [W, W, 4] of a layout's walls (bool [W, W]) and the gripper
    (int [2]), block (int [n, 2]) and goal (int [m, 2]) cells (row, col).

    Raises:
        ValueError: a cell off the grid, two blocks in one cell, a block or the gripper on a
            wall, or the gripper on a block (each named with its cell).
    """
    walls = np.asarray(walls, bool)
    w = walls.shape[0]
    grip = np.asarray(grip, np.int64).reshape(2)
    blocks = np.asarray(blocks, np.int64).reshape(-1, 2)
    goals = np.asarray(goals, np.int64).reshape(-1, 2)
    for what, cells in (("gripper", grip[None]), ("block", blocks), ("goal", goals)):
        for cell in cells:
            if not ((0 <= cell) & (cell < w)).all():
                raise ValueError(f"{what} cell {tuple(cell.tolist())} is off the {w} x {w} grid")
            if walls[tuple(cell)]:
                raise ValueError(f"{what} cell {tuple(cell.tolist())} is a wall")
    for i in range(len(blocks)):
        for j in range(i):
            if (blocks[i] == blocks[j]).all():
                raise ValueError(
                    f"blocks {j} and {i} overlap: both in cell {tuple(blocks[i].tolist())}"
                )
        if (blocks[i] == grip).all():
            raise ValueError(f"the gripper and block {i} overlap in cell {tuple(grip.tolist())}")
    state = np.zeros((w, w, 4), bool)
    state[tuple(grip) + (GRIPPER,)] = True
    state[blocks[:, 0], blocks[:, 1], BLOCK] = True
    state[goals[:, 0], goals[:, 1], GOAL] = True
    state[..., SOLID] = walls | state[..., BLOCK]
    return state


def push_next(state: ArrayLike, action: int) -> np.ndarray:
    """The abstraction's exact dynamics on one entity grid bool [W, W, 4] (module comment above
    `ARM_ATTRIBUTES`): move into a free cell, or push one block into a free cell, or stay."""
    s = np.array(state, bool)
    w = s.shape[0]
    d = ARM_DIRECTIONS[int(action)]
    grip = np.argwhere(s[..., GRIPPER])[0]
    t, beyond = grip + d, grip + 2 * d

    def solid(cell):
        return not ((0 <= cell) & (cell < w)).all() or bool(s[tuple(cell) + (SOLID,)])

    if not solid(t):
        pass
    elif s[tuple(t) + (BLOCK,)] and not solid(beyond):
        s[tuple(t) + (BLOCK,)] = s[tuple(t) + (SOLID,)] = False
        s[tuple(beyond) + (BLOCK,)] = s[tuple(beyond) + (SOLID,)] = True
    else:
        return s
    s[tuple(grip) + (GRIPPER,)] = False
    s[tuple(t) + (GRIPPER,)] = True
    return s


def solve_steps(
    walls: ArrayLike, grip: ArrayLike, blocks: ArrayLike, goals: ArrayLike,
    max_steps: int | None = None,
) -> int | None:
    """The fewest macro-steps that cover every goal (`push_next` dynamics), by breadth-first
    search over (gripper cell, set of block cells); None if no sequence of at most `max_steps`
    (None: any length) does. Exhaustive: an unsolvable three-block reset on the 8 x 8 map
    takes up to a few seconds.

    Args:
        walls: bool [W, W]; grip: int [2]; blocks: int [n, 2]; goals: int [m, 2] (row, col).
    """
    walls = np.asarray(walls, bool)
    goal_set = frozenset(map(tuple, np.asarray(goals, np.int64).reshape(-1, 2).tolist()))
    start = (tuple(np.asarray(grip).tolist()),
             tuple(sorted(map(tuple, np.asarray(blocks, np.int64).reshape(-1, 2).tolist()))))
    if goal_set <= set(start[1]):
        return 0
    moves = [tuple(d) for d in ARM_DIRECTIONS.tolist()]
    depth = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        d = depth[node]
        if max_steps is not None and d >= max_steps:
            continue
        (r, c), cells = node
        occupied = set(cells)
        for dr, dc in moves:
            t = (r + dr, c + dc)
            if walls[t]:  # the border is wall, so every index stays on the grid
                continue
            if t in occupied:
                beyond = (t[0] + dr, t[1] + dc)
                if walls[beyond] or beyond in occupied:
                    continue
                cells2 = tuple(sorted((occupied - {t}) | {beyond}))
            else:
                cells2 = cells
            child = (t, cells2)
            if child in depth:
                continue
            depth[child] = d + 1
            if goal_set <= set(cells2):
                return d + 1
            queue.append(child)
    return None


def covered_goals(state: ArrayLike) -> int:
    """Goal cells holding a block."""
    s = np.asarray(state, bool)
    return int((s[..., GOAL] & s[..., BLOCK]).sum())


def push_arm_xml(layout: PushLayout, cell_size: float = 0.05) -> str:
    """The MJCF model: gripper, `layout.blocks` blocks and a box per wall cell."""
    c = cell_size
    g, b = GRIP_HALF * c, BLOCK_HALF * c
    w = layout.width
    walls = "\n    ".join(
        f'<geom name="wall_{r}_{col}" type="box" pos="{col * c} {r * c} {b}" '
        f'size="{c / 2} {c / 2} {b}" rgba=".5 .5 .5 1"/>'
        for r, col in np.argwhere(layout.walls).tolist()
    )
    blocks = "\n    ".join(
        f'<body name="block{i}" pos="0 0 {b}">'
        f'<joint name="block{i}_x" type="slide" axis="1 0 0" damping="20"/>'
        f'<joint name="block{i}_y" type="slide" axis="0 1 0" damping="20"/>'
        f'<geom type="box" size="{b} {b} {b}" mass="0.1" rgba=".8 .3 .2 1"/></body>'
        for i in range(layout.blocks)
    )
    mid, span = (w - 1) * c / 2, w * c / 2
    return f"""
<mujoco model="push_arm_{layout.name}">
  <option timestep="0.002" gravity="0 0 0"/>
  <default><geom condim="1" friction="0 0 0"/></default>
  <worldbody>
    <geom name="table" type="plane" pos="{mid} {mid} 0" size="{span} {span} 0.01"
          contype="0" conaffinity="0" rgba=".9 .9 .9 1"/>
    {walls}
    <body name="gripper" pos="0 0 {b}">
      <joint name="grip_x" type="slide" axis="1 0 0" damping="90"/>
      <joint name="grip_y" type="slide" axis="0 1 0" damping="90"/>
      <geom name="gripper" type="box" size="{g} {g} {0.8 * b}" mass="1" rgba=".2 .4 .8 1"/>
    </body>
    {blocks}
  </worldbody>
  <actuator>
    <position name="servo_x" joint="grip_x" kp="2000"/>
    <position name="servo_y" joint="grip_y" kp="2000"/>
  </actuator>
</mujoco>
"""


class PushArmEnv(gym.Env):
    """N blocks, walls and goals on a grid; macro-actions run in MuJoCo (module comment above
    `ARM_ATTRIBUTES`). Observation: the entity grid bool [W, W, 4]; action: Discrete(4).

    `reset` places the gripper, the blocks (in `layout.block_cells`, none on a goal) and the
    goals (any free cells) uniformly at random from the seeded generator, redrawing until
    `solve_steps` finds the placement solvable within `layout.max_steps` (10 of the 150
    three-block draws of the evaluation seeds of experiments/schema_arm.py were not; every
    one-block draw was); `set_cells` places them by hand.
    """

    metadata = {"render_modes": []}

    def __init__(self, layout: PushLayout, cell_size: float = 0.05, substeps: int = 150):
        if substeps < 2:
            raise ValueError(f"substeps must be >= 2, got {substeps}")
        self.layout, self.cell_size, self.substeps = layout, cell_size, substeps
        self.model = mujoco.MjModel.from_xml_string(push_arm_xml(layout, cell_size))
        self.data = mujoco.MjData(self.model)
        w = layout.width
        self.observation_space = gym.spaces.MultiBinary((w, w, 4))
        self.action_space = gym.spaces.Discrete(len(ARM_ACTIONS))
        names = ["grip_x", "grip_y"] + [f"block{i}_{a}" for i in range(layout.blocks) for a in "xy"]
        jid = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
        self._qadr = np.array([self.model.jnt_qposadr[j] for j in jid])
        self._walls = layout.walls
        self._goals = np.zeros((0, 2), np.int64)
        self._state = np.zeros((w, w, 4), bool)
        self._t = 0

    def positions(self) -> np.ndarray:
        """float [1 + blocks, 2]: (x, y) in metres of the gripper, then of each block."""
        return self.data.qpos[self._qadr].reshape(-1, 2).copy()

    def abstract_state(self) -> np.ndarray:
        """The entity grid read from the simulation (cell = round(position / cell_size))."""
        xy = np.round(self.positions() / self.cell_size).astype(np.int64)
        rc = xy[:, ::-1]  # (x, y) -> (row, col) = (y, x)
        return grid_state(self._walls, rc[0], rc[1:], self._goals)

    def set_cells(self, grip: ArrayLike, blocks: ArrayLike, goals: ArrayLike) -> np.ndarray:
        """Place gripper and blocks at rest at cell centres, set the goals; the entity grid.

        Raises:
            ValueError: the wrong number of blocks or goals for the layout, or a bad placement
                (`grid_state`: off the grid, on a wall, overlapping).
        """
        blocks = np.asarray(blocks, np.int64).reshape(-1, 2)
        goals = np.asarray(goals, np.int64).reshape(-1, 2)
        if len(blocks) != self.layout.blocks or len(goals) != self.layout.goals:
            raise ValueError(
                f"layout {self.layout.name!r} has {self.layout.blocks} blocks and "
                f"{self.layout.goals} goals, got {len(blocks)} and {len(goals)}"
            )
        state = grid_state(self._walls, grip, blocks, goals)
        mujoco.mj_resetData(self.model, self.data)
        rc = np.concatenate([np.asarray(grip, np.int64).reshape(1, 2), blocks])
        self.data.qpos[self._qadr] = (rc[:, ::-1] * self.cell_size).ravel()
        self.data.ctrl[:] = np.asarray(grip)[::-1] * self.cell_size
        mujoco.mj_forward(self.model, self.data)
        self._goals, self._state, self._t = goals, state, 0
        return state.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng, lay = self.np_random, self.layout
        cand = lay.block_cells
        free = np.argwhere(~lay.walls)
        while True:  # only solvable placements: some three-block draws can never be finished
            blocks = cand[rng.choice(len(cand), lay.blocks, replace=False)]
            taken = {tuple(b) for b in blocks.tolist()}
            rest = np.array([f for f in free.tolist() if tuple(f) not in taken])
            pick = rng.choice(len(rest), lay.goals + 1, replace=False)
            goals, grip = rest[pick[:-1]], rest[pick[-1]]
            if solve_steps(lay.walls, grip, blocks, goals, lay.max_steps) is not None:
                break
        return self.set_cells(grip, blocks, goals), {}

    def step(self, action):
        action = int(action)
        if not 0 <= action < len(ARM_ACTIONS):
            raise ValueError(f"action {action} is out of range; allowed: 0..{len(ARM_ACTIONS) - 1}")
        before = self._state
        planned = push_next(before, action)
        if not np.array_equal(planned, before):  # the controller attempts only feasible moves
            grip = np.argwhere(before[..., GRIPPER])[0]
            target = grip + ARM_DIRECTIONS[action]
            c, first = self.cell_size, self.substeps // 2
            over = target + OVERSHOOT * ARM_DIRECTIONS[action]
            self.data.ctrl[:] = over[::-1] * c
            mujoco.mj_step(self.model, self.data, nstep=first)
            self.data.ctrl[:] = target[::-1] * c
            mujoco.mj_step(self.model, self.data, nstep=self.substeps - first)
        self._state = self.abstract_state()
        self._t += 1
        reward = float(covered_goals(self._state) - covered_goals(before))
        terminated = covered_goals(self._state) == self.layout.goals
        truncated = self._t >= self.layout.max_steps
        return self._state.copy(), reward, terminated, truncated, {}


# --- the multi-block task for the WorldModel interface (registry models, MCTS) ------------------


def push_arm_spec(layout: PushLayout) -> EnvSpec:
    """The task as an `EnvSpec` for world models and MCTS: the observation is the entity grid
    flattened, float32 [W W 4] (index (r W + c) 4 + k, 1.0 where attribute k holds); the action
    is a one-hot row [4] of ARM_ACTIONS (the MCTS codebook is eye(4); a model reads the argmax).
    reward_fn(obs, action, next) = goals covered in next - in obs; done_fn(next) = every goal
    covered (the env's reward and termination), both rounding the grid at 0.5 so they also
    read a learned model's continuous prediction. Not a gymnasium id: episodes run in
    `PushArmEnv`.
    """
    w = layout.width

    def covered(obs):
        grid = jnp.reshape(obs, (w, w, 4)) > 0.5
        return jnp.sum(grid[..., BLOCK] & grid[..., GOAL]).astype(jnp.float32)

    def reward_fn(obs, action, next_obs):
        del action
        return covered(next_obs) - covered(obs)

    def done_fn(next_obs):
        grid = jnp.reshape(next_obs, (w, w, 4)) > 0.5
        return jnp.all(grid[..., BLOCK] | ~grid[..., GOAL])

    n = len(ARM_ACTIONS)
    return EnvSpec(
        name="push_arm",
        gym_id="",
        obs_dim=w * w * 4,
        act_dim=n,
        action_low=(0.0,) * n,
        action_high=(1.0,) * n,
        episode_steps=layout.max_steps,
        reward_fn=reward_fn,
        done_fn=done_fn,
    )


CELL_NAMES = ("grip_r", "grip_c", "block_r", "block_c", "goal_r", "goal_c")


def cell_dbn_spec(width: int) -> FactoredSpec:
    """A one-block abstraction for the factored DBN (models/factored.py, full tables): the
    absolute cells (row, col) of the gripper, the block and the goal, W values each, actions
    ARM_ACTIONS; reward 1 on the state where the block is on the goal, which ends the episode.
    Walls have no variable: a DBN learns them into its tables, for the map it was fit on."""
    eye = np.eye(width)
    on_goal = eye[:, None, :, None] * eye[None, :, None, :]  # [block_r, block_c, goal_r, goal_c]

    def done_fn(state):
        return (state[2] == state[4]) & (state[3] == state[5])

    terms = (RewardTerm(("block_r", "block_c", "goal_r", "goal_c"), on_goal),)
    return FactoredSpec(CELL_NAMES, (width,) * 6, len(ARM_ACTIONS), terms, done_fn)


def cell_dbn_state(state: ArrayLike) -> np.ndarray | None:
    """The entity grid bool [W, W, 4] as `cell_dbn_spec` variables int32 [6], or None when it
    has other than one block and one goal (the DBN has no variables for them)."""
    s = np.asarray(state, bool)
    blocks, goals = np.argwhere(s[..., BLOCK]), np.argwhere(s[..., GOAL])
    if len(blocks) != 1 or len(goals) != 1:
        return None
    grip = np.argwhere(s[..., GRIPPER])[0]
    return np.concatenate([grip, blocks[0], goals[0]]).astype(np.int32)
