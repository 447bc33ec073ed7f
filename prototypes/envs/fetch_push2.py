"""FetchPush with two blocks (`fetch_push2`): more objects than a one-block model was trained on.

>>> env = make("fetch_push2", seed=0)          # registry.make; flat obs of 43 entries
>>> env = make("fetch_push2", parked=True)      # block 2 parked far away (test and reference)

gymnasium-robotics' FetchPush-v4 (same constructor, same arm, table, first block, goal rule and
reward) with a second free-jointed block, "object1", of the same size, mass, material, friction
and joint damping as "object0". It is added by an `MjSpec` edit of FetchPush's XML, compiled and
written once per content (SHA-256 name) under the system temp directory, the same approach as
envs/variants.py's distractor bodies; `env.unwrapped.fullpath` names that file, so anything that
rebuilds the model from the env's file (the oracle) gets both blocks. Unlike a distractor, the
block has a free joint, so qpos grows by 7 and qvel by 6.

Observation (the dict's `observation`, 40 entries, then `desired_goal`: flat 43)::

    [0:25]   FetchPush's own 25 entries (grip_pos, object_pos, object_rel_pos, gripper_state,
             object_rot, object_velp, object_velr, grip_velp, gripper_vel: envs/fetch.py)
    [25:28]  block 2 position            [28:31] block 2 - gripper position
    [31:34]  block 2 Euler rotation      [34:37] block 2 velp - grip_velp (per env step)
    [37:40]  block 2 velr (per env step)
    [40:43]  desired goal

Block 2's entries are computed exactly as gymnasium-robotics computes the first block's (site
position, `rotations.mat2euler` of the site frame, site Jacobian velocities times dt, the linear
one minus the gripper's). The goal is on the first block: `achieved_goal` is block 1's position,
the reward and `info["is_success"]` are the env's own (d < 0.05), so block 2 only matters through
contact (it can be in the way, or be pushed into block 1).

Reset: FetchPush's own reset (block 1 and the goal drawn from `np_random`, as in FetchPush), then
block 2 is put on the table at block 1's start height, upright and at rest, at a point drawn
uniformly from block 1's start region (the gripper's start +- `obj_range` = 0.15 m per axis) until
it is at least `MIN_GAP` = 8 cm (horizontally) from block 1, the goal and the gripper's start.
Its draws come from a generator of its own, seeded by the reset seed (resets without a seed
continue it), so the env's own stream, block 1 and the goal are exactly FetchPush's for the same
seeds, and the same seed gives the same episode. With `parked=True` block 2 instead rests on the
floor plane at `PARKED` (about 3 m from the arm), where nothing reaches it.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from prototypes.envs.variants import editable_spec, write_model_xml

__all__ = [
    "GYM_ID",
    "SECOND",
    "MIN_GAP",
    "PARKED",
    "N_OBS",
    "second_block_xml",
    "make_env",
]

GYM_ID = "pmbrl/FetchPush2-v0"  # the gymnasium id registered by `register`
SECOND = "object1"  # MuJoCo name of block 2's body, geom and site; its joint is "object1:joint"
FIRST = "object0"  # FetchPush's block
MIN_GAP = 0.08  # metres (horizontal) from block 2 to block 1, the goal and the gripper's start
PARKED = np.array([3.0, 3.0, 0.025])  # on the floor plane, far from the arm and the table
N_OBS = 40  # FetchPush's 25 + block 2's 15
_MAX_TRIES = 10_000
_SALT = 0x2B10C  # separates block 2's stream from the env's own
# the block's fields that are copied from block 1 (the rest are MuJoCo defaults in both)
_GEOM_FIELDS = (
    "type",
    "size",
    "condim",
    "material",
    "mass",
    "friction",
    "rgba",
    "contype",
    "conaffinity",
    "solref",
    "solimp",
    "solmix",
    "margin",
    "gap",
    "priority",
    "group",
)
_JOINT_FIELDS = ("damping", "armature", "frictionloss")
_SITE_FIELDS = ("type", "size", "rgba", "pos")


def second_block_xml(base_path: str) -> str:
    """The path of FetchPush's model (`base_path`) with block 2 added (module docstring).

    The file is written once per content under the system temp directory and reused
    (variants.write_model_xml, as for the distractor boxes).
    """
    spec = editable_spec(base_path)
    body = spec.worldbody.add_body(name=SECOND, pos=PARKED.tolist())
    joint = body.add_joint(name=f"{SECOND}:joint", type=mujoco.mjtJoint.mjJNT_FREE)
    geom = body.add_geom(name=SECOND)
    site = body.add_site(name=SECOND)
    for new, old, fields in (
        (joint, spec.joint(f"{FIRST}:joint"), _JOINT_FIELDS),
        (geom, spec.geom(FIRST), _GEOM_FIELDS),
        (site, spec.site(FIRST), _SITE_FIELDS),
    ):
        for field in fields:
            setattr(new, field, getattr(old, field))
    return write_model_xml(spec, base_path, "_two_blocks")


def _second_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _SALT]))


@functools.cache
def _env_class() -> type:
    """The env class, defined on first use (importing gymnasium-robotics is slow)."""
    from gymnasium_robotics.envs.fetch.push import MujocoFetchPushEnv
    from gymnasium_robotics.utils import rotations

    class FetchPush2Env(MujocoFetchPushEnv):
        """FetchPush-v4 with a second block (module docstring). `parked`: block 2 rests far
        away on the floor at every reset instead of on the table."""

        def __init__(self, parked: bool = False, **kwargs: Any):
            self.parked = bool(parked)
            self._second_rng: np.random.Generator | None = None
            super().__init__(**kwargs)

        def _initialize_simulation(self) -> None:
            # FetchPush's constructor set fullpath and initial_qpos; add block 2 to both
            self.fullpath = second_block_xml(self.fullpath)
            self.initial_qpos = {
                **self.initial_qpos,
                f"{SECOND}:joint": np.r_[PARKED, 1.0, 0.0, 0.0, 0.0],
            }
            super()._initialize_simulation()

        def second_block_obs(self) -> np.ndarray:
            """Block 2's 15 entries, computed as gymnasium-robotics computes block 1's."""
            u, m, d = self._utils, self.model, self.data
            dt = self.n_substeps * m.opt.timestep
            grip_pos = u.get_site_xpos(m, d, "robot0:grip")
            grip_velp = u.get_site_xvelp(m, d, "robot0:grip") * dt
            pos = u.get_site_xpos(m, d, SECOND)
            rot = rotations.mat2euler(u.get_site_xmat(m, d, SECOND))
            velp = u.get_site_xvelp(m, d, SECOND) * dt - grip_velp
            velr = u.get_site_xvelr(m, d, SECOND) * dt
            return np.concatenate([pos, pos - grip_pos, rot, velp, velr])

        def _get_obs(self) -> dict[str, np.ndarray]:
            out = super()._get_obs()
            out["observation"] = np.concatenate([out["observation"], self.second_block_obs()])
            return out

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed, options=options)
            if seed is not None:
                self._second_rng = _second_rng(seed)
            elif self._second_rng is None:  # never seeded: follow the env's own seed
                self._second_rng = _second_rng(max(int(self.np_random_seed), 0))
            if self.parked:
                pos = PARKED
            else:
                first = self._utils.get_joint_qpos(self.model, self.data, f"{FIRST}:joint")
                pos = np.r_[self._draw_second(first[:2]), first[2]]
            self._utils.set_joint_qpos(
                self.model, self.data, f"{SECOND}:joint", np.r_[pos, 1.0, 0.0, 0.0, 0.0]
            )
            self._utils.set_joint_qvel(self.model, self.data, f"{SECOND}:joint", np.zeros(6))
            self._mujoco.mj_forward(self.model, self.data)
            return self._get_obs(), {}

        def _draw_second(self, first_xy: np.ndarray) -> np.ndarray:
            """Block 2's (x, y): uniform in block 1's start region, `MIN_GAP` from the rest."""
            grip = self.initial_gripper_xpos[:2]
            avoid = (first_xy, self.goal[:2], grip)
            for _ in range(_MAX_TRIES):
                xy = grip + self._second_rng.uniform(-self.obj_range, self.obj_range, size=2)
                if min(np.linalg.norm(xy - p) for p in avoid) >= MIN_GAP:
                    return xy
            raise RuntimeError("fetch_push2: no place for block 2 in block 1's start region")

    return FetchPush2Env


def make_env(**kwargs: Any) -> gym.Env:
    """The gymnasium entry point of `GYM_ID` (kwargs: `parked`, and FetchPush's own)."""
    return _env_class()(**kwargs)


def register() -> None:
    """Register `GYM_ID` with gymnasium (once)."""
    if GYM_ID not in gym.registry:
        gym.register(id=GYM_ID, entry_point=make_env, max_episode_steps=50)


register()  # cheap: the entry point imports gymnasium-robotics only when an env is made
