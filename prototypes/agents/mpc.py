"""Model-predictive control with a world model and a planner: the PETS agent.

The agent's data is an `MPCState` pytree (model state, planner warm start, replay buffer, episode
counter); its behaviour is `act` (one jitted call per action: bind the model into a StepFn and
plan) and `update` (refit the model on everything in the buffer). `run_episode` drives a gymnasium
env with any policy and returns the episode's transitions. The PETS schedule (random episodes,
then refit / plan / act) is the loop in `experiments/pets.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prototypes.data import replay
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import ModelState, WorldModel
from prototypes.planning.base import Planner, PlanState
from prototypes.types import Array, Metrics, PRNGKey, Transition

__all__ = ["MPCState", "MPCAgent", "make_mpc_agent", "run_episode", "EpisodeResult"]


@struct.dataclass
class MPCState:
    """model: the world model's state; plan: the planner's warm start; buffer: all real
    transitions; episode: int32 [], episodes completed."""

    model: ModelState
    plan: PlanState
    buffer: replay.ReplayState
    episode: Array


@dataclass(frozen=True)
class MPCAgent:
    """init(key) -> MPCState; act(state, key, root) -> (action, state, metrics) [jitted];
    update(state, key) -> (state, metrics) [host: fits the model on the buffer]."""

    init: Callable[[PRNGKey], MPCState]
    act: Callable[[MPCState, PRNGKey, Any], tuple[Array, MPCState, Metrics]]
    update: Callable[[MPCState, PRNGKey], tuple[MPCState, Metrics]]
    model: WorldModel
    planner: Planner
    spec: EnvSpec


def make_mpc_agent(model: WorldModel, planner: Planner, spec: EnvSpec, capacity: int) -> MPCAgent:
    """An MPC agent whose replay buffer keeps the last `capacity` transitions."""
    example = Transition(
        obs=jnp.zeros(spec.obs_dim, jnp.float32),
        action=jnp.zeros(spec.act_dim, jnp.float32),
        reward=jnp.zeros((), jnp.float32),
        next_obs=jnp.zeros(spec.obs_dim, jnp.float32),
        done=jnp.zeros((), bool),
    )

    def init(key: PRNGKey) -> MPCState:
        return MPCState(
            model=model.init(key, example),
            plan=planner.init(),
            buffer=replay.init(example, capacity),
            episode=jnp.int32(0),
        )

    @jax.jit
    def act(state: MPCState, key: PRNGKey, root: Any):
        step_fn = partial(model.predict, state.model)
        action, plan_state, metrics = planner.plan(state.plan, key, root, step_fn)
        return action, state.replace(plan=plan_state), metrics

    def update(state: MPCState, key: PRNGKey) -> tuple[MPCState, Metrics]:
        model_state, metrics = model.fit(state.model, key, replay.contents(state.buffer))
        return state.replace(model=model_state), metrics

    return MPCAgent(init=init, act=act, update=update, model=model, planner=planner, spec=spec)


@dataclass(frozen=True)
class EpisodeResult:
    transitions: Transition  # leaves [T, ...], NumPy
    episode_return: float
    steps: int
    final_info: dict = field(default_factory=dict)  # the env's info dict of the last step


def run_episode(
    env: gym.Env,
    policy: Callable[[np.ndarray, int], np.ndarray],
    reset_seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> EpisodeResult:
    """Run one episode of `policy(obs, t) -> action` from `env.reset(seed=reset_seed)`.

    `on_step(t, reward)` is called after every step (for progress bars). Stops at termination or
    truncation (the env's time limit). The last step's info dict (Fetch: `is_success`) is kept
    in `final_info`.
    """
    obs, _ = env.reset(seed=reset_seed)
    rows: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "done")}
    total, t = 0.0, 0
    while True:
        action = np.asarray(policy(obs, t), np.float32)
        if not np.all(np.isfinite(action)):
            raise FloatingPointError(
                f"the policy produced a non-finite action {action} at step {t}"
            )
        next_obs, reward, terminated, truncated, info = env.step(action)
        for k, v in zip(rows, (obs, action, reward, next_obs, terminated), strict=True):
            rows[k].append(v)
        total += float(reward)
        t += 1
        if on_step is not None:
            on_step(t, float(reward))
        obs = next_obs
        if terminated or truncated:
            break
    tr = Transition(
        obs=np.asarray(rows["obs"], np.float32),
        action=np.asarray(rows["action"], np.float32),
        reward=np.asarray(rows["reward"], np.float32),
        next_obs=np.asarray(rows["next_obs"], np.float32),
        done=np.asarray(rows["done"], bool),
    )
    return EpisodeResult(transitions=tr, episode_return=total, steps=t, final_info=dict(info))
