"""Model-predictive control with a world model and a planner: the PETS agent.

The agent's data is an `MPCState` pytree (model state, planner warm start, replay buffer, episode
counter); its behaviour is `act` (one jitted call per action: bind the model into a StepFn and
plan) and `update` (refit the model on everything in the buffer). Episodes are driven by
`prototypes/agents/episode.py`; the PETS schedule (random episodes, then refit / plan / act) is
the loop in `experiments/pets.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from prototypes.data import replay
from prototypes.envs.registry import EnvSpec
from prototypes.models.base import ModelState, WorldModel
from prototypes.planning.base import Planner, PlanState
from prototypes.types import Array, Metrics, PRNGKey, Transition

__all__ = ["MPCState", "MPCAgent", "make_mpc_agent", "planning_act"]


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
        # what the model reports about what it learned (e.g. parent sets) joins the fit metrics
        return state.replace(model=model_state), {**metrics, **model.summary(model_state)}

    return MPCAgent(init=init, act=act, update=update, model=model, planner=planner, spec=spec)


def planning_act(agent: MPCAgent, key: PRNGKey) -> Callable[[MPCState, int, Any], tuple]:
    """The episode driver's act for one planning episode: encode the observation (as float32)
    with the agent's model, plan with `fold_in(key, t)` at step t; (state, t, obs) ->
    (action, state)."""

    def act(state: MPCState, t: int, obs: Any) -> tuple[Array, MPCState]:
        root = agent.model.encode(state.model, np.asarray(obs, np.float32))
        action, state, _ = agent.act(state, jax.random.fold_in(key, t), root)
        return action, state

    return act
