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

from dataclasses import dataclass

import gymnasium as gym
import jax.numpy as jnp
import mujoco
import numpy as np
from numpy.typing import ArrayLike

from prototypes.config import arg, check
from prototypes.envs.factored_mdp import FactoredMDP, FactoredSpec, RewardTerm, check_states

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
