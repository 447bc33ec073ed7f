"""Model-predictive control with a world model and a planner: the PETS agent.

The agent's data is an `MPCState` pytree (model state, planner warm start, replay buffer, episode
counter); its behaviour is `act` (one jitted call per action: bind the model into a StepFn and
plan) and `update` (refit the model on everything in the buffer). Episodes are driven by
`prototypes/agents/episode.py`; the PETS schedule (random episodes, then refit / plan / act) is
the loop in `experiments/mpc_episodes.py`.

Batched acting: `act_batch(state, keys [B], roots [B, ...])` plans for B environments in one
jitted call, the planner vmapped over its warm start, key and root with one shared model; the
state's `plan` then holds B warm starts (leading axis B; `batch_plan_state` builds it). Row i
is what `act` gives for root i, key i and warm start i (tests/agents/test_mpc_batch.py checks it).
On a GPU the B rollouts fill the device; on a CPU one planning call at the default sizes is
already compute bound, so B calls cost about B times one (profiling/benchmark_batch.py measures
it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from prototypes.types import Array, Metrics, PRNGKey

__all__ = [
    "MPCState",
    "MPCAgent",
    "make_mpc_agent",
    "planning_act",
    "planning_act_batch",
    "batch_plan_state",
]


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
    act_batch(state, keys, roots) -> (actions [B, A], state, metrics) [jitted; state.plan
    batched]; update(state, key) -> (state, metrics) [host: fits the model on the buffer]."""

    init: Callable[[PRNGKey], MPCState]
    act: Callable[[MPCState, PRNGKey, Any], tuple[Array, MPCState, Metrics]]
    update: Callable[[MPCState, PRNGKey], tuple[MPCState, Metrics]]
    model: WorldModel
    planner: Planner
    spec: EnvSpec
    act_batch: Callable[[MPCState, PRNGKey, Any], tuple[Array, MPCState, Metrics]]


def make_mpc_agent(model: WorldModel, planner: Planner, spec: EnvSpec, capacity: int) -> MPCAgent:
    """An MPC agent whose replay buffer keeps the last `capacity` transitions."""
    example = replay.zero_transition(spec.obs_dim, spec.act_dim)

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

    @jax.jit
    def act_batch(state: MPCState, keys: PRNGKey, roots: Any):
        step_fn = partial(model.predict, state.model)
        plan = jax.vmap(lambda p, k, r: planner.plan(p, k, r, step_fn))
        actions, plan_state, metrics = plan(state.plan, keys, roots)
        return actions, state.replace(plan=plan_state), metrics

    def update(state: MPCState, key: PRNGKey) -> tuple[MPCState, Metrics]:
        model_state, metrics = model.fit(state.model, key, replay.contents(state.buffer))
        # what the model reports about what it learned (e.g. parent sets) joins the fit metrics
        return state.replace(model=model_state), {**metrics, **model.summary(model_state)}

    return MPCAgent(
        init=init,
        act=act,
        act_batch=act_batch,
        update=update,
        model=model,
        planner=planner,
        spec=spec,
    )


def planning_act(agent: MPCAgent, key: PRNGKey) -> Callable[[MPCState, int, Any], tuple]:
    """The episode driver's act for one planning episode: encode the observation (as float32)
    with the agent's model, plan with `fold_in(key, t)` at step t; (state, t, obs) ->
    (action, state)."""

    def act(state: MPCState, t: int, obs: Any) -> tuple[Array, MPCState]:
        root = agent.model.encode(state.model, np.asarray(obs, np.float32))
        action, state, _ = agent.act(state, jax.random.fold_in(key, t), root)
        return action, state

    return act


def batch_plan_state(agent: MPCAgent, batch: int) -> PlanState:
    """`batch` copies of the planner's initial warm start, stacked on a leading axis."""
    return jax.tree.map(lambda x: jnp.stack([x] * batch), agent.planner.init())


def planning_act_batch(
    agent: MPCAgent, keys: Sequence[PRNGKey]
) -> Callable[[MPCState, int, np.ndarray], tuple[Array, MPCState]]:
    """The batched driver's act for B planning episodes (`planning_act` per row): env i plans
    with `fold_in(keys[i], t)` at step t, so its actions are those of the same episode acted
    alone with key `keys[i]` (on the same model state); (state, t, obs [B, O]) -> (actions
    [B, A], state). The state's `plan` must be batched (`batch_plan_state`)."""
    keys = jnp.stack(list(keys))

    def act(state: MPCState, t: int, obs: np.ndarray) -> tuple[Array, MPCState]:
        roots = [agent.model.encode(state.model, np.asarray(o, np.float32)) for o in obs]
        roots = jax.tree.map(lambda *xs: jnp.stack(xs), *roots)
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
        actions, state, _ = agent.act_batch(state, step_keys, roots)
        return actions, state

    return act
