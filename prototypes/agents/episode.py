"""The episode driver: one gymnasium episode of an agent whose state goes in and comes out.

Every model-based experiment steps its env through `drive_episode`. The agent's state is an
explicit argument and result, never carried out of a callback:

    def act(state, t, obs):              # -> (action, new state)
        action, state, _ = agent.act(state, jax.random.fold_in(key, t), obs)
        return action, state

    result, state = drive_episode(env, act, state, reset_seed=seed)

`observe(state, t, transition) -> state`, if given, runs after every env step with that step's
transition (unbatched NumPy leaves): an agent that learns per step (MBPO) trains there. An
experiment keeps only its schedule (which episodes are random, when the model is refit) and what
it records. `run_episode` is the stateless form, for a policy `(obs, t) -> action`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import gymnasium as gym
import numpy as np

from prototypes.types import Transition

__all__ = ["EpisodeResult", "drive_episode", "run_episode"]

S = TypeVar("S")
ActFn = Callable[[S, int, np.ndarray], tuple[np.ndarray, S]]  # (state, t, obs) -> (action, state)
ObserveFn = Callable[[S, int, Transition], S]  # (state, t, transition) -> state


@dataclass(frozen=True)
class EpisodeResult:
    transitions: Transition  # leaves [T, ...], NumPy
    episode_return: float
    steps: int
    final_info: dict = field(default_factory=dict)  # the env's info dict of the last step


def drive_episode(
    env: gym.Env,
    act: ActFn,
    state: S,
    reset_seed: int,
    *,
    observe: ObserveFn | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[EpisodeResult, S]:
    """Run one episode from `env.reset(seed=reset_seed)`, threading the agent state through.

    Args:
        env: the gymnasium env.
        act: (state, t, obs) -> (action, state), called before every step.
        state: the agent state at the start of the episode (any value; None for none).
        reset_seed: the reset seed (the episode's identity, so a resumed run replays it).
        observe: (state, t, transition) -> state, called after every step with the step's
            transition (obs, action, reward, next_obs and terminated as unbatched NumPy).
        on_step: (steps so far, reward) after every step, for progress bars.

    Returns:
        The episode's transitions, return, length and last info dict (Fetch: `is_success`), and
        the agent state after the last step.

    Raises:
        FloatingPointError: `act` produced a non-finite action.
    """
    obs, _ = env.reset(seed=reset_seed)
    rows: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "done")}
    total, t = 0.0, 0
    while True:
        action, state = act(state, t, obs)
        action = np.asarray(action, np.float32)
        if not np.all(np.isfinite(action)):
            raise FloatingPointError(
                f"the policy produced a non-finite action {action} at step {t}"
            )
        next_obs, reward, terminated, truncated, info = env.step(action)
        for k, v in zip(rows, (obs, action, reward, next_obs, terminated), strict=True):
            rows[k].append(v)
        if observe is not None:
            state = observe(
                state,
                t,
                Transition(
                    obs=np.asarray(obs, np.float32),
                    action=action,
                    reward=np.asarray(reward, np.float32),
                    next_obs=np.asarray(next_obs, np.float32),
                    done=np.asarray(terminated),
                ),
            )
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
    result = EpisodeResult(transitions=tr, episode_return=total, steps=t, final_info=dict(info))
    return result, state


def run_episode(
    env: gym.Env,
    policy: Callable[[np.ndarray, int], np.ndarray],
    reset_seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> EpisodeResult:
    """One episode of a stateless `policy(obs, t) -> action` (see `drive_episode`)."""
    result, _ = drive_episode(
        env, lambda state, t, obs: (policy(obs, t), state), None, reset_seed, on_step=on_step
    )
    return result
