"""The episode schedule of the planning experiments (pets.py, mcts.py), written once.

Every episode: the episode key `fold_in(run_key, episode + 1)` splits into an acting and a
fitting key; the first `random_episodes` episodes act with the experiment's exploration (uniform
random actions, or codebook rows for a discrete model), the rest plan with the agent; the
episode's transitions join the replay buffer; the model is refit where `fits_after` says; then
one metrics line (the experiment's `record`), one perf line, an atomic checkpoint, and the
experiment's `after` hook (plots, the progress bar's postfix). Resuming restores the agent state
from the checkpoint and drops metrics newer than it, so a resumed run repeats the same episodes
with the same keys.

An experiment keeps only what differs: its exploration, its refit schedule and what it records.
For goal-conditioned (Fetch) tasks, `goal_metrics` is the part of the record every experiment
shares (the env's success, the rolling success rate, the final distance) and `plot_goal_curves`
draws it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from experiments.cli import progress_bar
from prototypes.agents.episode import ActFn, EpisodeResult, drive_episode
from prototypes.agents.mpc import MPCAgent, MPCState, planning_act
from prototypes.data import replay
from prototypes.data.runs import RunDir, episode_seed
from prototypes.envs.fetch import DISTANCE_THRESHOLD, FetchLayout
from prototypes.types import PRNGKey

__all__ = [
    "Episode",
    "uniform_act",
    "codebook_act",
    "run_mpc_episodes",
    "SUCCESS_WINDOW",
    "goal_metrics",
    "plot_goal_curves",
]

SUCCESS_WINDOW = 20  # episodes in the rolling success rate of goal-conditioned (Fetch) tasks


@dataclass(frozen=True)
class Episode:
    """What one finished episode hands to `record` and `after`.

    index: 0-based episode number; random: it explored instead of planning; result: the
    episode; fit_metrics: the refit's metrics ({} if none); act_seconds, fit_seconds: wall clock.
    """

    index: int
    random: bool
    result: EpisodeResult
    fit_metrics: dict
    act_seconds: float
    fit_seconds: float


def uniform_act(key: PRNGKey, low: np.ndarray, high: np.ndarray, steps: int) -> ActFn:
    """Uniform random actions in [low, high] for one episode of `steps` steps, drawn from `key`."""
    u = np.asarray(jax.random.uniform(key, (steps, len(low))))

    def act(state: Any, t: int, obs: Any) -> tuple[np.ndarray, Any]:
        return low + (high - low) * u[t], state

    return act


def codebook_act(key: PRNGKey, codebook: np.ndarray, steps: int) -> ActFn:
    """Uniformly random rows of `codebook` [K, A] for one episode, drawn from `key`."""
    rows = np.asarray(jax.random.randint(key, (steps,), 0, len(codebook)))

    def act(state: Any, t: int, obs: Any) -> tuple[np.ndarray, Any]:
        return codebook[rows[t]], state

    return act


def run_mpc_episodes(
    agent: MPCAgent,
    env: gym.Env,
    run: RunDir,
    *,
    seed: int,
    episodes: int,
    random_episodes: int,
    explore: Callable[[PRNGKey], ActFn],
    fits_after: Callable[[int], bool],
    record: Callable[[Episode], dict],
    resume: bool,
    progress: bool,
    desc: str,
    postfix: Callable[[Episode, dict], dict],
    after: Callable[[Episode], None] | None = None,
) -> MPCState:
    """Run (or, with `resume`, finish) the episodes of one planning experiment.

    Args:
        agent: the MPC agent (model + planner).
        env: the env its episodes run in.
        run: the run directory (metrics, perf, checkpoint).
        seed: the run's seed: the run key and the episodes' reset seeds.
        episodes: total episodes, random ones included.
        random_episodes: episodes (from the first) that act with `explore`.
        explore: the acting key -> an act function for one exploring episode.
        fits_after: refit the model after episode i (0-based)?
        record: the metrics line of a finished episode (written to metrics.jsonl).
        resume: continue from the run's checkpoint.
        progress, desc: show a progress bar over env steps, with this title.
        postfix: what the bar shows after an episode, from the episode and its metrics line.
        after: called after each episode is logged and checkpointed (plots).

    Returns:
        The agent state after the last episode.
    """
    run_key = jax.random.key(seed)
    state = agent.init(jax.random.fold_in(run_key, 0))
    if resume:
        state = run.load_state(like=state)
        run.truncate_metrics(int(state.episode))
    start, T = int(state.episode), agent.spec.episode_steps
    bar = progress_bar(episodes * T, start * T, progress, desc=desc)
    for ep in range(start, episodes):
        key_act, key_fit = jax.random.split(jax.random.fold_in(run_key, ep + 1))
        t0 = time.perf_counter()
        state = state.replace(plan=agent.planner.init())
        random = ep < random_episodes
        act = explore(key_act) if random else planning_act(agent, key_act)
        result, state = drive_episode(
            env, act, state, reset_seed=episode_seed(seed, ep), on_step=lambda t, r: bar.update(1)
        )
        t_act = time.perf_counter() - t0
        state = state.replace(
            buffer=replay.add(state.buffer, jax.tree.map(jnp.asarray, result.transitions))
        )
        fit_metrics: dict = {}
        t1 = time.perf_counter()
        if fits_after(ep):
            state, fit_metrics = agent.update(state, key_fit)
        episode = Episode(ep, random, result, fit_metrics, t_act, time.perf_counter() - t1)
        state = state.replace(episode=jnp.int32(ep + 1))
        line = record(episode)
        run.log(line)
        run.log_perf(
            {
                "episode": ep + 1,
                "act_seconds": episode.act_seconds,
                "fit_seconds": episode.fit_seconds,
                "seconds_per_step": episode.act_seconds / result.steps,
            }
        )
        run.save_checkpoint({"state": state})
        if after is not None:
            after(episode)
        bar.set_postfix(**postfix(episode, line))
    bar.close()
    return state


def goal_metrics(
    ep: Episode, run: RunDir, layout: FetchLayout, window: int = SUCCESS_WINDOW
) -> dict:
    """A Fetch episode's success metrics, for its metrics line.

    success: the env's `info["is_success"]` at the episode's last step (1.0 or 0.0);
    success_rate_last{window}: the mean success of the last `window` episodes, this one included
    (fewer at the start; metrics.jsonl holds exactly the episodes before this one, since a resume
    truncates it); final_distance: |achieved_goal - desired_goal| after the last step, in metres.
    """
    success = float(ep.result.final_info["is_success"])
    successes = [r["success"] for r in run.metrics()] + [success]
    last = ep.result.transitions.next_obs[-1]
    return {
        "success": success,
        f"success_rate_last{window}": float(np.mean(successes[-window:])),
        "final_distance": float(np.linalg.norm(last[layout.achieved] - last[layout.goal])),
    }


def plot_goal_curves(run: RunDir, title: str, target: float, window: int = SUCCESS_WINDOW) -> None:
    """plots/success.png (per-episode success and the rolling rate, with the `target` rate) and
    plots/distance.png (final distance, with the success threshold) from the run's metrics."""
    records = run.metrics()
    steps = [r["env_steps"] for r in records]
    run.plot_curve(
        "success",
        steps,
        {
            "success (final step)": [r["success"] for r in records],
            f"success rate, last {window} episodes": [
                r[f"success_rate_last{window}"] for r in records
            ],
        },
        xlabel="env steps",
        ylabel="success",
        title=title,
        hlines={f"target {target:.0%}": target},
    )
    run.plot_curve(
        "distance",
        steps,
        {"final |achieved - goal|": [r["final_distance"] for r in records]},
        xlabel="env steps",
        ylabel="metres",
        title=title,
        hlines={f"success threshold {DISTANCE_THRESHOLD} m": DISTANCE_THRESHOLD},
    )
