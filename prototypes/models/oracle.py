"""The oracle: the true MuJoCo simulator behind the `WorldModel` interface.

Any planner can run on it, which gives the upper bound that separates model error from planner
error. Its planning state is an `OracleObs`: the observation plus the full physics state. `predict`
hands the whole batch to `mujoco.rollout` (C, multi-threaded) through `jax.pure_callback`, so it
runs inside the planner's jitted call like any learned model.

Exactness: gymnasium builds observations from `data.xpos` right after `mj_step`, and what
`xpos` holds then depends on the integrator. With Euler (Pusher) it is the kinematics computed at
the start of the last substep; with RK4 (Reacher) it is the last Runge-Kutta stage, which sits
within ~1e-6 of the reached state. `mujoco.rollout` returns states and sensor values, and MuJoCo
evaluates position sensors at the start of a substep, so the oracle reads body positions from
`framepos` sensors at the last substep (Euler) or at one extra substep, i.e. from the reached
state (RK4). Observations and rewards then match the env's to ~1e-6. JAX holds float32 (x64
is off), but the physics state between steps is float64 split into two float32 arrays (hi and
the residual lo, ~2^-48 relative): plain float32 storage (6e-8 on a 1.3 m position) grew to
~1e-6 in one FetchPush step once the block tumbled, and to 4e-3 at a contact that came and went.

Same physics as the env: a task variant (envs/variants.py) changes the env's live `MjModel`
(masses, damping, sizes, gears) at every reset, so a model rebuilt from the XML file would plan
on the nominal task. A copy of the live model cannot carry the framepos sensors above (sensors
can only be added to an `MjSpec` before compiling), so the oracle compiles its sensor model once
and, at every `encode`, copies into it every numeric array of the live model that has the same
shape (`physics_fields`: everything but the sensor_* arrays and the name tables, which differ
only by the added sensors), plus the `opt` and `stat` structs. That is ~440 small array copies,
~0.1-0.3 ms per encode, against milliseconds per planning step; `predict` does not change.

Fetch (fetch_reach, fetch_push; gymnasium-robotics 1.4.2): the arm follows a mocap body welded
to the gripper link, and has no actuators (`nu` = 0; both tasks block the fingers). One env step
is, in order: `_set_action` puts the mocap at the gripper link's current pose plus the action,
``mocap_pos = xpos + 0.05 clip(a)[:3]``, ``mocap_quat = xquat + (1, 0, 1, 0)`` (unnormalised, as
the env writes it); `n_substeps` = 20 `mj_step`s; `_step_callback` zeroes the two finger joints'
qpos and calls `mj_forward`; `_get_obs` reads site positions, site velocities (`jac @ qvel`) times
dt, the object's Euler angles from its site frame and the finger qpos and qvel. The oracle does
the same with `mujoco.rollout`, whose control spec is MOCAP_POS | MOCAP_QUAT (the target held for
all substeps); sensors on the sites (framepos, framelinvel, frameangvel, frame x/y/z axes = the
columns of site_xmat) and on the welded body (framepos, framequat = xpos, xquat) give everything
the observation needs, and the observation is assembled for the whole batch in NumPy from
`sensordata` (`_fetch_obs`). Two things are not in MuJoCo's physics state, so the oracle's
physics vector for Fetch is [full physics state, gripper link xpos (3), xquat (4),
qacc_warmstart (nv)]: the gripper link's pose as MuJoCo last computed it (where the next mocap
target starts), and the constraint solver's warm start. The warm start matters: the Newton solver
stops at a 1e-8 relative improvement, and started from zero instead of the env's warm start it
lands up to 1.7e-4 away in the state at 2 of 40 FetchPush steps with contact; from the env's warm
start (even rounded to float32) it agrees to 1e-12. `rollout` takes a warm start in but does not
return one, so each sample is one `rollout` call on thread-local `MjData` (nroll = 1, 20
substeps; the GIL is released inside, `threads` workers share the batch), after which the data
holds the reached state and its `qacc_warmstart`; the fingers are zeroed and `mj_forward` run, as
the env does, and the sensors read. The per-sample Python work is ~3% of the 20 substeps. The
goal is not physics either: the goal part of every predicted observation is copied from the root
observation. One predict of a FetchPush batch of 200 takes ~110-125 ms on one core (~0.6 ms per
sample and env step).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import mujoco
import mujoco.rollout
import numpy as np
from flax import struct
from gymnasium_robotics.utils import rotations

from prototypes.envs import fetch
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import WorldModel
from prototypes.types import Array, Float, Metrics, PRNGKey, Step, Transition

__all__ = [
    "OracleObs",
    "make_oracle",
    "physics_fields",
    "sensor_model",
    "physics_copier",
    "FETCH_ROTATION",
]

_STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


@struct.dataclass
class OracleObs:
    """obs [..., O]: the env observation (float32); physics [..., 2S]: MuJoCo's full physics
    state (for Fetch followed by the gripper link's pose and the solver's warm start, see the
    module docstring), float64 carried as a float32 pair [hi, lo] with hi + lo = the state."""

    obs: Float[Array, "... O"]
    physics: Float[Array, "... S"]


Sensor = tuple[mujoco.mjtSensor, mujoco.mjtObj, str]  # (type, object type, object name)


def sensor_model(
    env: gym.Env, bodies: tuple[str, ...] = (), sensors: tuple[Sensor, ...] = ()
) -> mujoco.MjModel:
    """The env's model compiled from its XML file with a framepos sensor on each of `bodies`,
    then the `sensors`, in that order in `sensordata`.

    Its parameters are the live model's at build time (`physics_copier`).
    """
    spec = mujoco.MjSpec.from_file(env.unwrapped.fullpath)
    wanted = [(mujoco.mjtSensor.mjSENS_FRAMEPOS, mujoco.mjtObj.mjOBJ_XBODY, b) for b in bodies]
    for i, (kind, objtype, objname) in enumerate(wanted + list(sensors)):
        # an XBODY frame is the body's (xpos, xquat); a SITE frame is (site_xpos, site_xmat)
        spec.add_sensor(name=f"oracle_{i}", type=kind, objtype=objtype, objname=objname)
    model = spec.compile()
    ref = env.unwrapped.model
    if (model.nq, model.nv, model.nu) != (ref.nq, ref.nv, ref.nu):
        raise RuntimeError("oracle model does not match the env's model")
    physics_copier(model, ref)()
    return model


_STRUCTS = ("opt", "stat")  # MjOption (timestep, integrator, solver...) and mean inertia etc.


def physics_fields(model: mujoco.MjModel, live: mujoco.MjModel) -> tuple[str, ...]:
    """The MjModel arrays the oracle copies from `live`: all of equal shape in both models but
    the sensor_* arrays and the name tables (name_*, names_map), where the sensors differ."""
    fields = []
    for name in dir(live):
        if name.startswith(("_", "sensor_", "name_", "names_map")):
            continue
        value = getattr(live, name)
        if isinstance(value, np.ndarray) and getattr(model, name).shape == value.shape:
            fields.append(name)
    return tuple(fields)


def _struct_fields(obj: Any) -> list[str]:
    return [f for f in dir(obj) if not f.startswith("_") and not callable(getattr(obj, f))]


def physics_copier(model: mujoco.MjModel, live: mujoco.MjModel) -> Callable[[], None]:
    """A function that copies `live`'s parameters into `model`: the `physics_fields` arrays and
    the opt and stat structs. It holds views into both models, taken once."""
    pairs = [(getattr(model, name), getattr(live, name)) for name in physics_fields(model, live)]
    structs = [
        (getattr(model, s), getattr(live, s), _struct_fields(getattr(live, s))) for s in _STRUCTS
    ]

    def copy() -> None:
        for dst, src in pairs:
            dst[...] = src  # 2.5x faster than np.copyto on these small arrays
        for dst, src, names in structs:
            for f in names:
                value = getattr(src, f)
                if isinstance(value, np.ndarray):
                    getattr(dst, f)[...] = value
                else:
                    setattr(dst, f, value)

    return copy


def _to_pair(x: np.ndarray) -> np.ndarray:
    """float64 [..., S] -> float32 [..., 2S]: hi = f32(x), then lo = f32(x - hi)."""
    hi = x.astype(np.float32)
    return np.concatenate([hi, (x - hi).astype(np.float32)], axis=-1)


def _from_pair(pair: np.ndarray) -> np.ndarray:
    """float32 [..., 2S] -> float64 [..., S]: hi + lo (relative error ~2^-48)."""
    S = pair.shape[-1] // 2
    return pair[..., :S].astype(np.float64) + pair[..., S:].astype(np.float64)


@dataclass(frozen=True)
class _Sim:
    """How one task is simulated: the host-side step and the live env's physics vector.

    step: (physics [B, S], action [B, A], root obs [B, O]) -> (physics [B, S], obs [B, O]),
    float64 NumPy; read: the live env's physics vector [S]; S = nstate.
    """

    step: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    read: Callable[[], np.ndarray]
    nstate: int


def _joint_sim(spec: EnvSpec, env: gym.Env, threads: int) -> tuple[mujoco.MjModel, _Sim]:
    """Torque-driven gymnasium MuJoCo envs (Reacher, Pusher): obs from qpos, qvel and body
    positions (`spec.obs_from_physics`)."""
    model = sensor_model(env, spec.sensor_bodies)
    datas = [mujoco.MjData(model) for _ in range(threads)]
    frame_skip = env.unwrapped.frame_skip
    # which substep's sensors hold the positions gymnasium reports (see the module docstring)
    extra = int(model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4)
    read = frame_skip - 1 + extra
    nstate = mujoco.mj_stateSize(model, _STATE_SPEC)
    nq, nv = model.nq, model.nv

    def step(physics: np.ndarray, action: np.ndarray, root_obs: np.ndarray):
        del root_obs
        control = np.repeat(action[:, None], frame_skip + extra, axis=1)
        state, sensors = mujoco.rollout.rollout(model, datas, physics, control)
        new = state[:, frame_skip - 1]
        qpos, qvel = new[:, 1 : 1 + nq], new[:, 1 + nq : 1 + nq + nv]
        return new, spec.obs_from_physics(qpos, qvel, sensors[:, read])

    def read_live() -> np.ndarray:
        u = env.unwrapped
        physics = np.empty(nstate)
        mujoco.mj_getState(u.model, u.data, physics, _STATE_SPEC)
        return physics

    return model, _Sim(step=step, read=read_live, nstate=nstate)


FETCH_ROTATION = np.array([1.0, 0.0, 1.0, 0.0])  # added to the gripper's xquat by `_set_action`
_FETCH_POS_SCALE = 0.05  # metres of mocap displacement per unit of action
_FETCH_FINGERS = ("robot0:r_gripper_finger_joint", "robot0:l_gripper_finger_joint")
_FETCH_SITES = ("robot0:grip", "object0")
_S, _B = mujoco.mjtSensor, mujoco.mjtObj


def _fetch_sensors(welded: str, has_object: bool) -> tuple[Sensor, ...]:
    """sensordata: grip pos, linvel [0:6]; welded body xpos, xquat [6:13]; then, with an object,
    its pos [13:16], linvel [16:19], angvel [19:22], frame x, y, z axes [22:31]."""
    grip, obj = _FETCH_SITES
    sensors = [
        (_S.mjSENS_FRAMEPOS, _B.mjOBJ_SITE, grip),
        (_S.mjSENS_FRAMELINVEL, _B.mjOBJ_SITE, grip),
        (_S.mjSENS_FRAMEPOS, _B.mjOBJ_XBODY, welded),
        (_S.mjSENS_FRAMEQUAT, _B.mjOBJ_XBODY, welded),
    ]
    if has_object:
        sensors += [
            (_S.mjSENS_FRAMEPOS, _B.mjOBJ_SITE, obj),
            (_S.mjSENS_FRAMELINVEL, _B.mjOBJ_SITE, obj),
            (_S.mjSENS_FRAMEANGVEL, _B.mjOBJ_SITE, obj),
            (_S.mjSENS_FRAMEXAXIS, _B.mjOBJ_SITE, obj),
            (_S.mjSENS_FRAMEYAXIS, _B.mjOBJ_SITE, obj),
            (_S.mjSENS_FRAMEZAXIS, _B.mjOBJ_SITE, obj),
        ]
    return tuple(sensors)


def _fetch_obs(
    sensors: np.ndarray,
    finger_qpos: np.ndarray,
    finger_qvel: np.ndarray,
    dt: float,
    has_object: bool,
) -> np.ndarray:
    """The env's `observation` entry [B, n_obs] from `_fetch_sensors` readings [B, D] and the two
    finger joints' qpos, qvel [B, 2], as `MujocoFetchEnv.generate_mujoco_observations` builds it."""
    grip_pos, grip_velp = sensors[:, 0:3], sensors[:, 3:6] * dt
    gripper_vel = finger_qvel * dt
    if not has_object:
        return np.concatenate([grip_pos, finger_qpos, grip_velp, gripper_vel], axis=-1)
    object_pos = sensors[:, 13:16]
    object_velp = sensors[:, 16:19] * dt - grip_velp  # relative to the gripper, as the env has it
    object_velr = sensors[:, 19:22] * dt
    xmat = np.stack([sensors[:, 22:25], sensors[:, 25:28], sensors[:, 28:31]], axis=-1)  # columns
    object_rot = rotations.mat2euler(xmat)
    return np.concatenate(
        [
            grip_pos,
            object_pos,
            object_pos - grip_pos,
            finger_qpos,
            object_rot,
            object_velp,
            object_velr,
            grip_velp,
            gripper_vel,
        ],
        axis=-1,
    )


def _fetch_sim(spec: EnvSpec, env: gym.Env, threads: int) -> tuple[mujoco.MjModel, _Sim]:
    """Mocap-driven Fetch envs (module docstring)."""
    u = env.unwrapped
    if u.model.nu != 0 or not u.block_gripper:
        raise RuntimeError("the Fetch oracle expects blocked fingers and no actuators")
    live = u.model
    welds = [i for i in range(live.neq) if live.eq_type[i] == mujoco.mjtEq.mjEQ_WELD]
    if len(welds) != 1 or live.body_mocapid[live.eq_obj1id[welds[0]]] < 0:
        raise RuntimeError("the Fetch oracle expects one weld, from the mocap to the gripper")
    welded = live.body(live.eq_obj2id[welds[0]]).name
    has_object = bool(u.has_object)
    model = sensor_model(env, sensors=_fetch_sensors(welded, has_object))
    datas = [mujoco.MjData(model) for _ in range(threads)]
    pools = [mujoco.rollout.Rollout(nthread=0) for _ in range(threads)]  # each on its caller
    workers = ThreadPoolExecutor(threads) if threads > 1 else None
    substeps = u.n_substeps
    dt = substeps * model.opt.timestep
    nfull, nv, nsensor = mujoco.mj_stateSize(model, _STATE_SPEC), model.nv, model.nsensordata
    finger_q = np.array([model.joint(j).qposadr[0] for j in _FETCH_FINGERS])
    finger_v = np.array([model.joint(j).dofadr[0] for j in _FETCH_FINGERS])
    n_obs = spec.obs_dim - fetch.GOAL_DIM
    control_spec = int(mujoco.mjtState.mjSTATE_MOCAP_POS | mujoco.mjtState.mjSTATE_MOCAP_QUAT)
    welded_id = model.body(welded).id
    # the physics vector: [full state, welded body xpos, xquat, qacc_warmstart]
    pose, warm = slice(nfull, nfull + 7), slice(nfull + 7, nfull + 7 + nv)

    def simulate(k: int, rows: range, full, warmstart, control, out, sensordata) -> None:
        """Samples `rows` on thread-local data k: one env step each, read as the env reads it."""
        d = datas[k]
        for i in rows:
            pools[k].rollout(
                [model], [d], full[i], control[i], control_spec=control_spec, skip_checks=True,
                nstep=substeps, initial_warmstart=warmstart[i],
            )  # fmt: skip
            d.qpos[finger_q] = 0.0  # `_step_callback`: the fingers are blocked ...
            mujoco.mj_forward(model, d)  # ... and the env reads the reached state
            mujoco.mj_getState(model, d, out[i, :nfull], _STATE_SPEC)
            out[i, pose] = np.concatenate([d.xpos[welded_id], d.xquat[welded_id]])
            out[i, warm] = d.qacc_warmstart  # the next step's solver warm start
            sensordata[i] = d.sensordata

    def step(physics: np.ndarray, action: np.ndarray, root_obs: np.ndarray):
        B = physics.shape[0]
        action = np.clip(action, -1.0, 1.0)  # env.step clips
        target = np.concatenate(
            [physics[:, pose][:, :3] + _FETCH_POS_SCALE * action[:, :3],
             physics[:, pose][:, 3:] + FETCH_ROTATION],
            axis=-1,
        )  # fmt: skip
        # the same mocap target at every substep; C-contiguous rows for the C rollout
        control = np.ascontiguousarray(np.broadcast_to(target[:, None], (B, substeps, 7)))
        full = np.ascontiguousarray(physics[:, :nfull]).reshape(B, 1, nfull)
        warmstart = np.ascontiguousarray(physics[:, warm]).reshape(B, 1, nv)
        out, sensordata = np.empty((B, nfull + 7 + nv)), np.empty((B, nsensor))
        args = (full, warmstart, control, out, sensordata)
        if workers is None:
            simulate(0, range(B), *args)
        else:
            bounds = np.linspace(0, B, threads + 1).astype(int)
            jobs = [
                workers.submit(simulate, k, range(bounds[k], bounds[k + 1]), *args)
                for k in range(threads)
            ]
            for job in jobs:
                job.result()
        qpos, qvel = out[:, 1 : 1 + model.nq], out[:, 1 + model.nq : nfull]
        obs = _fetch_obs(sensordata, qpos[:, finger_q], qvel[:, finger_v], dt, has_object)
        goal = root_obs[:, n_obs:]  # not physics: carried from the root
        return out, np.concatenate([obs, goal], axis=-1)

    def read_live() -> np.ndarray:
        full = np.empty(nfull)
        mujoco.mj_getState(u.model, u.data, full, _STATE_SPEC)
        d = u.data
        return np.concatenate([full, d.xpos[welded_id], d.xquat[welded_id], d.qacc_warmstart])

    return model, _Sim(step=step, read=read_live, nstate=nfull + 7 + nv)


def make_oracle(spec: EnvSpec, env: gym.Env, threads: int = 2) -> WorldModel:
    """An exact model of `env` (built with `prototypes.envs.make(spec.name)`).

    Args:
        spec: the task.
        env: the live env of that task: its model file and frame skip build the oracle, and
            `encode` reads the physics state of this env (so plan for this env's episodes).
        threads: MuJoCo rollout threads.

    Raises:
        ValueError: the task has no oracle (not a Fetch task, and `spec.obs_from_physics` is None).
    """
    if spec.name in fetch.LAYOUTS:
        model, sim = _fetch_sim(spec, env, threads)
    elif spec.obs_from_physics is not None:
        model, sim = _joint_sim(spec, env, threads)
    else:
        raise ValueError(
            f"task {spec.name!r} has no oracle model (its EnvSpec has no obs_from_physics): "
            "use a learned model"
        )
    sync = physics_copier(model, env.unwrapped.model)  # at each encode (module docstring)
    nstate, O = sim.nstate, spec.obs_dim
    reward_fn, done_fn = jax.vmap(spec.reward_fn), jax.vmap(spec.done_fn)

    def _host_step(physics, action, root_obs) -> tuple[np.ndarray, np.ndarray]:
        lead = physics.shape[:-1]
        physics = _from_pair(np.asarray(physics).reshape(-1, 2 * nstate))
        action = np.asarray(action, np.float64).reshape(physics.shape[0], -1)
        root_obs = np.asarray(root_obs, np.float64).reshape(physics.shape[0], O)
        new, obs = sim.step(physics, action, root_obs)
        return (
            _to_pair(new).reshape(lead + (2 * nstate,)),
            obs.reshape(lead + (O,)).astype(np.float32),
        )

    def predict(state: Any, key: PRNGKey, root: OracleObs, action) -> Step:
        del state, key
        B = root.physics.shape[0]
        shapes = (
            jax.ShapeDtypeStruct((B, 2 * nstate), jnp.float32),
            jax.ShapeDtypeStruct((B, O), jnp.float32),
        )
        physics, obs = jax.pure_callback(
            _host_step, shapes, root.physics, action, root.obs, vmap_method="expand_dims"
        )
        return Step(
            obs=OracleObs(obs=obs, physics=physics),
            reward=reward_fn(root.obs, action, obs),
            done=done_fn(obs),
        )

    def init(key: PRNGKey, example: Transition) -> Any:
        del key, example
        return ()

    def fit(state: Any, key: PRNGKey, data: Transition) -> tuple[Any, Metrics]:
        del key, data
        return state, {}

    def encode(state: Any, obs) -> OracleObs:
        del state
        sync()  # plan on the physics the env steps now (a variant may have changed it)
        return OracleObs(
            obs=jnp.asarray(obs, jnp.float32), physics=jnp.asarray(_to_pair(sim.read()))
        )

    return WorldModel(init=init, predict=predict, fit=fit, encode=encode, name="oracle")
