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

`drive_episodes` runs B episodes side by side in a gymnasium vector env (one per sub-env, each
with its own reset seed): `act(state, t, obs [B, O]) -> (actions [B, A], state)` is called once
per step for all of them, so a batched planner serves B environments in one call. Each episode
is the same as `drive_episode` would give for that reset seed and the same actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import gymnasium as gym
import numpy as np

from prototypes.types import Transition

__all__ = ["EpisodeResult", "drive_episode", "drive_episodes", "make_vector_env", "run_episode"]

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


def _row_info(infos: dict, i: int) -> dict:
    """Sub-env i's info dict from a vector env's batched one (keys "_k" mark which rows have k)."""
    out = {}
    for k, v in infos.items():
        if k.startswith("_") or not infos.get("_" + k, np.ones(i + 1, bool))[i]:
            continue
        out[k] = _row_info(v, i) if isinstance(v, dict) else v[i]
    return out


def make_vector_env(make_one: Callable[[], gym.Env], num_envs: int) -> gym.vector.VectorEnv:
    """`num_envs` copies of `make_one()` stepped in this process, without autoreset (an episode's
    end is the driver's business: `drive_episodes` resets with explicit seeds)."""
    return gym.vector.SyncVectorEnv(
        [make_one] * num_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )


def drive_episodes(
    envs: gym.vector.VectorEnv,
    act: Callable[[S, int, np.ndarray], tuple[np.ndarray, S]],
    state: S,
    reset_seeds: list[int],
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[list[EpisodeResult], S]:
    """Run one episode in each of the vector env's B sub-envs, acting for all B in one call.

    Args:
        envs: a vector env without autoreset (`make_vector_env`).
        act: (state, t, obs [B, ...]) -> (actions [B, A], state), called before every step. After
            an episode has ended its row keeps being computed (the batch has a fixed shape) and
            ignored: its env is not stepped again.
        state: the agent state at the start.
        reset_seeds: B reset seeds, one per sub-env.
        on_step: (steps so far, summed over the running episodes; summed reward) after every step.

    Returns:
        The B episodes (as `drive_episode` returns them), and the state after the last step.

    Raises:
        ValueError: `reset_seeds` does not have one seed per sub-env.
        FloatingPointError: `act` produced a non-finite action for a running episode.
    """
    B = envs.num_envs
    if len(reset_seeds) != B:
        raise ValueError(
            f"drive_episodes needs {B} reset seeds (one per env), got {len(reset_seeds)}"
        )
    obs, _ = envs.reset(seed=list(reset_seeds))
    rows: list[dict[str, list]] = [
        {k: [] for k in ("obs", "action", "reward", "next_obs", "done")} for _ in range(B)
    ]
    running = np.ones(B, bool)
    totals, last_info = np.zeros(B), [dict() for _ in range(B)]
    t = 0
    while running.any():
        actions, state = act(state, t, obs)
        actions = np.asarray(actions, np.float32)
        bad = running & ~np.all(np.isfinite(actions.reshape(B, -1)), axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise FloatingPointError(
                f"the policy produced a non-finite action {actions[i]} at step {t} of env {i}"
            )
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        for i in np.flatnonzero(running):
            values = (obs[i], actions[i], rewards[i], next_obs[i], terminated[i])
            for k, v in zip(rows[i], values, strict=True):
                rows[i][k].append(v)
            totals[i] += float(rewards[i])
            if terminated[i] or truncated[i]:
                running[i] = False
                last_info[i] = _row_info(infos, i)
        t += 1
        if on_step is not None:
            on_step(sum(len(r["obs"]) for r in rows), float(np.sum(rewards)))
        obs = next_obs
    results = []
    for i in range(B):
        r = rows[i]
        tr = Transition(
            obs=np.asarray(r["obs"], np.float32),
            action=np.asarray(r["action"], np.float32),
            reward=np.asarray(r["reward"], np.float32),
            next_obs=np.asarray(r["next_obs"], np.float32),
            done=np.asarray(r["done"], bool),
        )
        results.append(
            EpisodeResult(
                transitions=tr,
                episode_return=float(totals[i]),
                steps=len(r["obs"]),
                final_info=last_info[i],
            )
        )
    return results, state
