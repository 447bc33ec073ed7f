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
state (RK4). Observations and rewards then match the env's to ~1e-6, plus float32 storage of
the state between steps.

Same physics as the env: a task variant (envs/variants.py) changes the env's live `MjModel`
(masses, damping, sizes, gears) at every reset, so a model rebuilt from the XML file would plan
on the nominal task. A copy of the live model cannot carry the framepos sensors above (sensors
can only be added to an `MjSpec` before compiling), so the oracle compiles its sensor model once
and, at every `encode`, copies into it every numeric array of the live model that has the same
shape (`physics_fields`: everything but the sensor_* arrays and the name tables, which differ
only by the added sensors), plus the `opt` and `stat` structs. That is ~440 small array copies,
~0.1-0.3 ms per encode, against milliseconds per planning step; `predict` does not change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import mujoco
import mujoco.rollout
import numpy as np
from flax import struct

from prototypes.envs.registry import EnvSpec
from prototypes.models.base import WorldModel
from prototypes.types import Array, Float, Metrics, PRNGKey, Step, Transition

__all__ = ["OracleObs", "make_oracle", "physics_fields", "sensor_model", "physics_copier"]

_STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


@struct.dataclass
class OracleObs:
    """obs [..., O]: the env observation; physics [..., S]: MuJoCo's full physics state."""

    obs: Float[Array, "... O"]
    physics: Float[Array, "... S"]


def sensor_model(env: gym.Env, bodies: tuple[str, ...]) -> mujoco.MjModel:
    """The env's model compiled from its XML file with a framepos sensor on each of `bodies`.

    Its parameters are the live model's at build time (`physics_copier`).
    """
    spec = mujoco.MjSpec.from_file(env.unwrapped.fullpath)
    for body in bodies:
        spec.add_sensor(
            name=f"oracle_{body}",
            type=mujoco.mjtSensor.mjSENS_FRAMEPOS,
            objtype=mujoco.mjtObj.mjOBJ_XBODY,
            objname=body,  # body frame = xpos
        )
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


def make_oracle(spec: EnvSpec, env: gym.Env, threads: int = 2) -> WorldModel:
    """An exact model of `env` (built with `prototypes.envs.make(spec.name)`).

    Args:
        spec: the task.
        env: the live env of that task: its model file and frame skip build the oracle, and
            `encode` reads the physics state of this env (so plan for this env's episodes).
        threads: MuJoCo rollout threads.

    Raises:
        ValueError: the task has no oracle (`spec.obs_from_physics` is None).
    """
    if spec.obs_from_physics is None:
        raise ValueError(
            f"task {spec.name!r} has no oracle model (its EnvSpec has no obs_from_physics): "
            "use a learned model"
        )
    live = env.unwrapped.model
    model = sensor_model(env, spec.sensor_bodies)
    sync = physics_copier(model, live)  # run at each encode (see the module docstring)
    datas = [mujoco.MjData(model) for _ in range(threads)]
    frame_skip = env.unwrapped.frame_skip
    # which substep's sensors hold the positions gymnasium reports (see the module docstring)
    extra = int(model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4)
    read = frame_skip - 1 + extra
    nstate = mujoco.mj_stateSize(model, _STATE_SPEC)
    nq, nv, O = model.nq, model.nv, spec.obs_dim
    reward_fn, done_fn = jax.vmap(spec.reward_fn), jax.vmap(spec.done_fn)

    def _host_step(physics: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lead = physics.shape[:-1]
        physics = np.asarray(physics, np.float64).reshape(-1, nstate)
        action = np.asarray(action, np.float64).reshape(physics.shape[0], 1, -1)
        control = np.repeat(action, frame_skip + extra, axis=1)
        state, sensors = mujoco.rollout.rollout(model, datas, physics, control)
        new = state[:, frame_skip - 1]
        qpos, qvel = new[:, 1 : 1 + nq], new[:, 1 + nq : 1 + nq + nv]
        obs = spec.obs_from_physics(qpos, qvel, sensors[:, read])
        return (
            new.reshape(lead + (nstate,)).astype(np.float32),
            obs.reshape(lead + (O,)).astype(np.float32),
        )

    def predict(state: Any, key: PRNGKey, root: OracleObs, action) -> Step:
        del state, key
        B = root.physics.shape[0]
        shapes = (
            jax.ShapeDtypeStruct((B, nstate), jnp.float32),
            jax.ShapeDtypeStruct((B, O), jnp.float32),
        )
        physics, obs = jax.pure_callback(
            _host_step, shapes, root.physics, action, vmap_method="expand_dims"
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
        u = env.unwrapped
        physics = np.empty(nstate)
        mujoco.mj_getState(u.model, u.data, physics, _STATE_SPEC)
        return OracleObs(
            obs=jnp.asarray(obs, jnp.float32), physics=jnp.asarray(physics, jnp.float32)
        )

    return WorldModel(init=init, predict=predict, fit=fit, encode=encode, name="oracle")
