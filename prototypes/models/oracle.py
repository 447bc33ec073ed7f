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
"""

from __future__ import annotations

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

__all__ = ["OracleObs", "make_oracle"]

_STATE_SPEC = mujoco.mjtState.mjSTATE_FULLPHYSICS


@struct.dataclass
class OracleObs:
    """obs [..., O]: the env observation; physics [..., S]: MuJoCo's full physics state."""

    obs: Float[Array, "... O"]
    physics: Float[Array, "... S"]


def _sensor_model(env: gym.Env, bodies: tuple[str, ...]) -> mujoco.MjModel:
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
    model.opt.timestep = ref.opt.timestep
    return model


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
    model = _sensor_model(env, spec.sensor_bodies)
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
        u = env.unwrapped
        physics = np.empty(nstate)
        mujoco.mj_getState(u.model, u.data, physics, _STATE_SPEC)
        return OracleObs(
            obs=jnp.asarray(obs, jnp.float32), physics=jnp.asarray(physics, jnp.float32)
        )

    return WorldModel(init=init, predict=predict, fit=fit, encode=encode, name="oracle")
