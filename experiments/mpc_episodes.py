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
from prototypes.agents.episode import (
    ActFn,
    EpisodeResult,
    drive_episode,
    drive_episodes,
    make_vector_env,
)
from prototypes.agents.mpc import (
    MPCAgent,
    MPCState,
    batch_plan_state,
    planning_act,
    planning_act_batch,
)
from prototypes.data import replay
from prototypes.data.runs import RunDir, episode_seed, read_metrics
from prototypes.envs import FETCH_TASKS
from prototypes.envs.fetch import DISTANCE_THRESHOLD, FetchLayout
from prototypes.types import PRNGKey

__all__ = [
    "Episode",
    "uniform_act",
    "codebook_act",
    "run_mpc_episodes",
    "run_batched_episodes",
    "episode_rounds",
    "SUCCESS_WINDOW",
    "goal_metrics",
    "plot_goal_curves",
]

SUCCESS_WINDOW = 20  # episodes in the rolling success rate of goal-conditioned (Fetch) tasks
RATE = f"success_rate_last{SUCCESS_WINDOW}"  # its metrics key
LAST = 50  # results rows also count successes over the last LAST episodes (issue 11's window)


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
    num_envs: int = 1,
    make_env: Callable[[], gym.Env] | None = None,
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
        num_envs: B > 1 acts B episodes at once in a vector env of `make_env()` copies, planning
            for all of them in one batched call (`run_batched_episodes`); 1 is the loop below.
        make_env: builds one env of the task (needed when num_envs > 1).

    Returns:
        The agent state after the last episode.
    """
    if num_envs > 1:
        if make_env is None:
            raise ValueError("num_envs > 1 needs make_env, to build the vector env")
        return run_batched_episodes(
            agent,
            make_env,
            num_envs,
            run,
            seed=seed,
            episodes=episodes,
            random_episodes=random_episodes,
            explore=explore,
            fits_after=fits_after,
            record=record,
            resume=resume,
            progress=progress,
            desc=desc,
            postfix=postfix,
            after=after,
        )
    run_key, state, start, bar = _start(agent, run, seed, episodes, resume, progress, desc)
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
        line = _log_episode(run, record, episode)
        run.save_checkpoint({"state": state})
        if after is not None:
            after(episode)
        bar.set_postfix(**postfix(episode, line))
    bar.close()
    return state


def run_batched_episodes(
    agent: MPCAgent,
    make_env: Callable[[], gym.Env],
    num_envs: int,
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
    """`run_mpc_episodes` with B = `num_envs` episodes acted at once (same arguments).

    Episodes go in rounds of B (`episode_rounds`: the random episodes first, then the planning
    ones; the last round of each may be smaller): episode i keeps its reset seed
    and acting key, every planning episode of a round plans with the same model state in one
    batched call (`MPCAgent.act_batch`; exploring episodes act with `explore`), then all of the
    round's transitions join the buffer in episode order and the model is refit once, if
    `fits_after` says so for the round's last episode. So a round of B acts like B episodes
    run one after another without a refit between them. Metrics get one line per episode, in
    order; the round's acting time is split evenly over its episodes and the fit time goes to
    its last one. A checkpoint is written after each round (the planner's warm start stored
    unbatched), so a resumed run restarts at the round boundary it stopped after.
    """
    run_key, state, start, bar = _start(agent, run, seed, episodes, resume, progress, desc)
    vector_envs: dict[int, gym.vector.VectorEnv] = {}
    for eps in episode_rounds(episodes, random_episodes, num_envs):
        if eps[0] < start:  # done before the resume
            continue
        b = len(eps)
        if b not in vector_envs:
            vector_envs[b] = make_vector_env(make_env, b)
        keys = [jax.random.split(jax.random.fold_in(run_key, ep + 1)) for ep in eps]
        key_act, key_fit = [k[0] for k in keys], [k[1] for k in keys]
        randoms = [ep < random_episodes for ep in eps]
        explorers = [explore(key_act[i]) if randoms[i] else None for i in range(b)]
        planned = None if all(randoms) else planning_act_batch(agent, key_act)

        def act(state: MPCState, t: int, obs: np.ndarray, planned=planned, explorers=explorers):
            actions = None
            if planned is not None:
                actions, state = planned(state, t, obs)
                actions = np.array(actions)
            rows = [
                None if e is None else np.asarray(e(None, t, obs[i])[0])
                for i, e in enumerate(explorers)
            ]
            if actions is None:
                return np.stack(rows), state
            for i, row in enumerate(rows):
                if row is not None:
                    actions[i] = row
            return actions, state

        def on_step(n: int, reward: float, seen: list = [0]) -> None:  # noqa: B006 (per round)
            bar.update(n - seen[0])
            seen[0] = n

        t0 = time.perf_counter()
        state = state.replace(plan=batch_plan_state(agent, b))
        results, state = drive_episodes(
            vector_envs[b], act, state, [episode_seed(seed, ep) for ep in eps], on_step=on_step
        )
        state = state.replace(plan=agent.planner.init())
        t_act = (time.perf_counter() - t0) / b
        for result in results:
            state = state.replace(
                buffer=replay.add(state.buffer, jax.tree.map(jnp.asarray, result.transitions))
            )
        fit_metrics: dict = {}
        t1 = time.perf_counter()
        if fits_after(eps[-1]):
            state, fit_metrics = agent.update(state, key_fit[-1])
        t_fit = time.perf_counter() - t1
        episodes_done = []
        for i, (ep, result) in enumerate(zip(eps, results, strict=True)):
            last = i == b - 1
            episode = Episode(
                ep, randoms[i], result, fit_metrics if last else {}, t_act, t_fit if last else 0.0
            )
            episodes_done.append((episode, _log_episode(run, record, episode, num_envs=b)))
        state = state.replace(episode=jnp.int32(eps[-1] + 1))
        run.save_checkpoint({"state": state})
        for episode, line in episodes_done:
            if after is not None:
                after(episode)
            bar.set_postfix(**postfix(episode, line))
    bar.close()
    for envs in vector_envs.values():
        envs.close()
    return state


def _start(
    agent: MPCAgent, run: RunDir, seed: int, episodes: int, resume: bool, progress: bool, desc: str
) -> tuple[PRNGKey, MPCState, int, Any]:
    """The run key, the agent state (restored from the run's checkpoint and the metrics cut back
    to it, with `resume`), the first episode still to run and the progress bar over env steps."""
    run_key = jax.random.key(seed)
    state = agent.init(jax.random.fold_in(run_key, 0))
    if resume:
        state = run.load_state(like=state)
        run.truncate_metrics(int(state.episode))
    start, T = int(state.episode), agent.spec.episode_steps
    return run_key, state, start, progress_bar(episodes * T, start * T, progress, desc=desc)


def _log_episode(
    run: RunDir, record: Callable[[Episode], dict], episode: Episode, num_envs: int | None = None
) -> dict:
    """Write a finished episode's metrics line (`record`) and its perf line; return the former.
    `num_envs` (batched rounds only) goes into the perf line."""
    line = record(episode)
    run.log(line)
    run.log_perf(
        {
            "episode": episode.index + 1,
            "act_seconds": episode.act_seconds,
            "fit_seconds": episode.fit_seconds,
            "seconds_per_step": episode.act_seconds / episode.result.steps,
            **({} if num_envs is None else {"num_envs": num_envs}),
        }
    )
    return line


def episode_rounds(episodes: int, random_episodes: int, num_envs: int) -> list[list[int]]:
    """The rounds `run_batched_episodes` acts: the random episodes in rounds of `num_envs`, then
    the planning ones in rounds of `num_envs` (the last round of each may be smaller), so no
    planning episode shares a round with, and so plans before the fit on, the random data.
    E.g. episodes 5, random 1, B 2: [[0], [1, 2], [3, 4]]."""
    R = min(random_episodes, episodes)
    return [
        list(range(first, min(first + num_envs, stop)))
        for lo, stop in ((0, R), (R, episodes))
        for first in range(lo, stop, num_envs)
    ]


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


def run_figures(env: str, run: RunDir, target: float | None = None) -> dict:
    """The figures of a run of these episodes (pets.py, mcts.py), finished or not, for a
    results row (experiments/results/*.csv): episodes, env steps, the mean return of the last 10
    episodes, the best episode and the wall-clock minutes spent acting and fitting. Fetch runs
    add the rolling success rate (`RATE`), `successes_last50`, e.g. "43/50" (fewer episodes than
    50 give a smaller denominator), `planned_solved` (successes over the planned, not random,
    episodes, e.g. "229/271"), `successes_per50`: the successes in each block of 50 episodes,
    space-separated (the last block may be partial), `first_steps_at_target`: the env steps
    at which the rolling rate, over a full window of `SUCCESS_WINDOW` episodes, first reached
    `target` (empty if it never did or no target is given), `first_episode_last50_at_target`:
    the first episode whose last 50 episodes succeeded at least `target` of the time, and
    `fewest_last50_after`: the fewest successes in any 50 consecutive episodes ending there or
    later, e.g. "42/50" (both empty if no full 50 ever reached `target`)."""
    records = run.metrics()
    # perf.jsonl is not truncated on resume: the last line of each episode counts
    perf = list({r["episode"]: r for r in read_metrics(run.perf_path)}.values())
    returns = [r["return"] for r in records]
    row = {
        "episodes": len(records),
        "env_steps": records[-1]["env_steps"] if records else 0,
        "last10_return": round(float(np.mean(returns[-10:])), 4) if returns else "",
        "best_return": round(float(np.max(returns)), 4) if returns else "",
        "act_minutes": round(sum(r["act_seconds"] for r in perf) / 60, 2),
        "fit_minutes": round(sum(r["fit_seconds"] for r in perf) / 60, 2),
    }
    if env in FETCH_TASKS and records:
        row[RATE] = records[-1][RATE]
        last = [r["success"] for r in records[-LAST:]]
        row[f"successes_last{LAST}"] = f"{int(sum(last))}/{len(last)}"
        planned = [r["success"] for r in records if not r["random"]]
        row["planned_solved"] = f"{int(sum(planned))}/{len(planned)}"
        every = [r["success"] for r in records]
        row[f"successes_per{LAST}"] = " ".join(
            str(int(sum(every[i : i + LAST]))) for i in range(0, len(every), LAST)
        )  # the learning curve in blocks, e.g. "36 43 43 44 39"; the last may be partial
        full = records[SUCCESS_WINDOW - 1 :]  # a rate over fewer episodes is not the target's
        hit = [r["env_steps"] for r in full if target is not None and r[RATE] >= target]
        row["first_steps_at_target"] = hit[0] if hit else ""  # the rolling rate's first >= target
        row.update(_last_block_figures(every, target))
    return row


def _last_block_figures(successes: list[float], target: float | None) -> dict:
    """`first_episode_last{LAST}_at_target` and `fewest_last{LAST}_after` of `run_figures`: is
    the bar of "at least `target` over the last LAST episodes" held from some episode on, and by
    how much at worst afterwards."""
    keys = (f"first_episode_last{LAST}_at_target", f"fewest_last{LAST}_after")
    if target is None or len(successes) < LAST:
        return dict.fromkeys(keys, "")
    totals = np.convolve(np.asarray(successes, dtype=float), np.ones(LAST), mode="valid")
    totals = np.rint(totals).astype(int)  # totals[i]: successes of episodes i+1 .. i+LAST
    (hits,) = np.nonzero(totals >= target * LAST)
    if not len(hits):
        return dict.fromkeys(keys, "")
    first = int(hits[0])
    return {keys[0]: first + LAST, keys[1]: f"{int(totals[first:].min())}/{LAST}"}
