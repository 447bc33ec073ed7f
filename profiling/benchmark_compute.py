"""Compute against return: how much planning a PETS agent needs, on the oracle and on a fixed model.

    python profiling/benchmark_compute.py --env reacher                  # oracle + fitted ensemble
    python profiling/benchmark_compute.py --env pusher --models ensemble --configs today,icem-20k
    python profiling/benchmark_compute.py --list                         # the grid, with its costs

For one task, every planner config of a fixed grid (`GRID`: today's CEM defaults, iCEM and plain
CEM at about a fifth and a tenth of today's model evaluations, fewer particles, shorter horizons)
acts for `--episodes` episodes of the real env, on the same reset seeds and planner keys for every
config, with two world models:

- oracle: the true simulator (models/oracle.py). One particle is exact, so a config's particles
  are set to 1 here: the rows measure the planner's search quality alone.
- ensemble: pets.py's default ensemble, fitted once (seed 0) to a fixed dataset that the script
  builds the same way every time: `--random-episodes` episodes of uniform actions, then
  `--guided-episodes` episodes planned on the oracle at a cheap setting with Gaussian action noise
  (std 0.3 of the action range's half-width), so the data cover both the start states and the
  states a good plan visits. The rows measure the planner through a learned model's errors,
  TS-inf particles included, but not the data the planner would have collected itself (that needs
  the learning runs: experiments/pets.py).

Model evaluations per action = sum over iterations of the (decayed) population x particles x
horizon: the work that scales the planning call (profiling/benchmark_planning.py times one call).
Per config the script prints the mean return over the episodes (with its standard error), the
mean wall-clock seconds per action, and writes one row per (model, config) with the per-episode
returns to `--csv` (default experiments/results/compute_frontier_<env>.csv; rows already there
are skipped, so an interrupted benchmark continues where it stopped) and the frontier (return
against evaluations per action, log scale) to `--plot` (default
runs/benchmark_compute/<env>_frontier.png). Run it on a quiet machine for the seconds column; the
returns are deterministic for a given machine.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _experiments import ROOT, load_experiment  # profiling/ is on sys.path when run as a script

from prototypes.agents.episode import drive_episode
from prototypes.agents.mpc import make_mpc_agent, planning_act
from prototypes.data import replay
from prototypes.envs import get_spec, make
from prototypes.models.registry import make_model
from prototypes.planning import PlannerConfig, make_planner

TASKS = ("reacher", "pusher")
EVAL_SEED = 10_000  # reset seeds EVAL_SEED + i: never a training episode's (runs.episode_seed)
DATA_SEED = 20_000


@dataclass(frozen=True)
class Setting:
    """One row of the grid: planner fields over PlannerConfig's defaults, per task."""

    name: str
    fields: dict
    note: str


def _icem(pop: int, elites: int, iters: int, particles: int, horizon: int, **kw) -> dict:
    return dict(
        population=pop,
        elites=elites,
        iterations=iters,
        particles=particles,
        horizon=horizon,
        noise_beta=kw.pop("beta", 2.0),
        population_decay=kw.pop("decay", 1.25),
        keep_elites=kw.pop("keep", 0.3),
        shift_elites=kw.pop("shift", 0.2),
        **kw,
    )


def _cem(pop: int, elites: int, iters: int, particles: int, horizon: int) -> dict:
    return dict(
        population=pop, elites=elites, iterations=iters, particles=particles, horizon=horizon
    )


GRID: dict[str, tuple[Setting, ...]] = {
    "reacher": (
        Setting("today", _cem(200, 20, 4, 5, 15), "pets.py's defaults before iCEM (60k evals)"),
        Setting("cem-12k", _cem(100, 10, 3, 4, 10), "plain CEM at a fifth"),
        Setting("icem-12k", _icem(100, 10, 3, 4, 12), "iCEM at a fifth, horizon 12"),
        Setting("icem-12k-h15", _icem(80, 8, 3, 4, 15), "iCEM at a fifth, today's horizon"),
        Setting("icem-12k-p2", _icem(150, 15, 3, 2, 15), "iCEM at a fifth, 2 particles"),
        Setting("icem-6k", _icem(60, 6, 3, 4, 10), "iCEM at a tenth"),
        Setting("icem-12k-white", _icem(100, 10, 3, 4, 12, beta=0.0), "as icem-12k, white noise"),
        Setting("icem-12k-b1", _icem(80, 8, 3, 4, 15, beta=1.0), "as icem-12k-h15, beta 1"),
        Setting("icem-12k-i4", _icem(60, 6, 4, 4, 15), "iCEM at a fifth, 4 iterations"),
        Setting("icem-12k-best", _icem(80, 8, 3, 4, 15, return_best=True), "act on the best seen"),
        Setting("cem-12k-h15", _cem(50, 5, 4, 4, 15), "plain CEM at a fifth, today's horizon"),
    ),
    "pusher": (
        Setting("today", _cem(200, 20, 4, 5, 25), "pets.py's defaults before iCEM (100k evals)"),
        Setting("cem-20k", _cem(100, 10, 2, 4, 25), "plain CEM at a fifth"),
        Setting("icem-20k", _icem(100, 10, 3, 4, 20), "iCEM at a fifth, horizon 20"),
        Setting("icem-20k-h25", _icem(80, 8, 3, 4, 25), "iCEM at a fifth, today's horizon"),
        Setting("icem-20k-p2", _icem(160, 16, 3, 2, 25), "iCEM at a fifth, 2 particles"),
        Setting("icem-10k", _icem(60, 6, 3, 4, 15), "iCEM at a tenth"),
        Setting("icem-20k-white", _icem(100, 10, 3, 4, 20, beta=0.0), "as icem-20k, white noise"),
    ),
}

GUIDE = _cem(50, 5, 2, 1, 10)  # the cheap oracle planner that collects the guided episodes


def planner_config(base: PlannerConfig, setting: Setting, oracle: bool) -> PlannerConfig:
    """The grid row's planner: `setting` over PlannerConfig's class defaults (plain CEM), never
    over pets.py's current task defaults, so a row means the same whatever they become."""
    cfg = dataclasses.replace(base, **setting.fields)
    return dataclasses.replace(cfg, particles=1) if oracle else cfg


def guided_dataset(env_name: str, random_episodes: int, guided_episodes: int, progress) -> tuple:
    """(obs, action, reward, next_obs, done) arrays of the fixed dataset (module docstring)."""
    pets = load_experiment("pets")
    spec = get_spec(env_name)
    env = make(env_name)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    rng = np.random.default_rng(DATA_SEED)
    cfg, _ = pets.parse_config(["--env", env_name, "--model", "oracle"])
    oracle = make_model("oracle", cfg.model, spec, env)
    guide = make_planner(dataclasses.replace(PlannerConfig(), **GUIDE), spec)
    agent = make_mpc_agent(oracle, guide, spec, capacity=1)
    state = agent.init(jax.random.key(DATA_SEED))
    episodes = []
    for i in range(random_episodes + guided_episodes):
        if i < random_episodes:
            u = rng.uniform(low, high, (spec.episode_steps, len(low)))

            def act(s, t, obs, u=u):
                return u[t], s
        else:
            planned = planning_act(agent, jax.random.key(DATA_SEED + i))
            noise = rng.normal(0.0, 0.3, (spec.episode_steps, len(low))) * (high - low) / 2

            def act(s, t, obs, planned=planned, noise=noise):
                a, s = planned(s, t, obs)
                return np.clip(np.asarray(a) + noise[t], low, high), s

            state = state.replace(plan=agent.planner.init())
        result, state = drive_episode(env, act, state, reset_seed=DATA_SEED + i)
        episodes.append(result.transitions)
        progress(f"dataset episode {i + 1}: return {result.episode_return:.1f}")
    return jax.tree.map(lambda *xs: np.concatenate(xs), *episodes)


def evaluate(env_name: str, model_kind: str, setting: Setting, episodes: int, fitted) -> dict:
    """Act for `episodes` episodes with one planner config; returns and seconds per action."""
    pets = load_experiment("pets")
    spec = get_spec(env_name)
    env = make(env_name)
    cfg, _ = pets.parse_config(["--env", env_name, "--model", model_kind])
    pcfg = planner_config(PlannerConfig(), setting, oracle=model_kind == "oracle")
    model = make_model(model_kind, cfg.model, spec, env)
    agent = make_mpc_agent(model, make_planner(pcfg, spec), spec, capacity=1)
    state = agent.init(jax.random.key(0))
    if fitted is not None:
        state = state.replace(model=fitted)
    returns, seconds, steps = [], 0.0, 0
    for i in range(episodes):
        state = state.replace(plan=agent.planner.init())
        act = planning_act(agent, jax.random.key(EVAL_SEED + i))
        if i == 0:  # compile outside the clock
            act(state, 0, env.reset(seed=EVAL_SEED)[0])
        t0 = time.perf_counter()
        result, state = drive_episode(env, act, state, reset_seed=EVAL_SEED + i)
        seconds += time.perf_counter() - t0
        steps += result.steps
        returns.append(result.episode_return)
    return {
        "env": env_name,
        "model": model_kind,
        "config": setting.name,
        "evals_per_action": pcfg.evaluations(),
        "seconds_per_action": seconds / steps,
        "mean_return": float(np.mean(returns)),
        "stderr": float(np.std(returns, ddof=1) / np.sqrt(len(returns))) if episodes > 1 else 0.0,
        "episodes": episodes,
        "planner": json.dumps({k: getattr(pcfg, k) for k in sorted(setting.fields)}),
        "returns": " ".join(f"{r:.3f}" for r in returns),
    }


def fit_ensemble(env_name: str, data, log) -> object:
    """pets.py's default ensemble for the task, fitted once (key 0) to `data`."""
    pets = load_experiment("pets")
    spec = get_spec(env_name)
    cfg, _ = pets.parse_config(["--env", env_name])
    model = make_model("ensemble", cfg.model, spec)
    agent = make_mpc_agent(model, make_planner(cfg.planner, spec), spec, len(data.obs))
    state = agent.init(jax.random.key(0))
    state = state.replace(buffer=replay.add(state.buffer, jax.tree.map(jnp.asarray, data)))
    t0 = time.perf_counter()
    state, metrics = agent.update(state, jax.random.key(1))
    log(
        f"ensemble fitted to {len(data.obs)} transitions in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{k} {float(v):.4g}" for k, v in metrics.items() if np.ndim(v) == 0)
    )
    return state.model


FIELDS = (
    "env", "model", "config", "evals_per_action", "seconds_per_action", "mean_return", "stderr",
    "episodes", "planner", "returns",
)  # fmt: skip


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()


def plot(rows: list[dict], env_name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model, marker in (("oracle", "s"), ("ensemble", "o")):
        sub = [r for r in rows if r["model"] == model]
        if not sub:
            continue
        x = [float(r["evals_per_action"]) for r in sub]
        y = [float(r["mean_return"]) for r in sub]
        e = [1.96 * float(r["stderr"]) for r in sub]
        ax.errorbar(x, y, yerr=e, fmt=marker, capsize=3, label=model)
        for xi, yi, r in zip(x, y, sub, strict=True):
            ax.annotate(
                r["config"], (xi, yi), fontsize=7, xytext=(4, 3), textcoords="offset points"
            )
    ax.set_xscale("log")
    ax.set_xlabel("model evaluations per action (log)")
    ax.set_ylabel("mean episode return (95% interval)")
    ax.set_title(f"Planning compute against return, {env_name}")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", default="reacher", help=f"task: {', '.join(TASKS)} (default reacher)")
    p.add_argument(
        "--models", default="oracle,ensemble", help="comma list of oracle, ensemble (default both)"
    )
    p.add_argument("--configs", default="all", help="comma list of grid names, or all (--list)")
    p.add_argument("--episodes", type=int, default=20, help="evaluation episodes per config")
    p.add_argument("--random-episodes", type=int, default=5, help="dataset: uniform episodes")
    p.add_argument("--guided-episodes", type=int, default=15, help="dataset: oracle-led episodes")
    p.add_argument("--csv", type=Path, default=None, help="results CSV (default in results/)")
    p.add_argument("--plot", type=Path, default=None, help="frontier plot path")
    p.add_argument("--list", action="store_true", help="print the grid and its costs, and exit")
    args = p.parse_args(argv)

    def fail(msg: str) -> None:
        print(f"benchmark_compute.py: error: {msg}", file=sys.stderr)
        raise SystemExit(2)

    if args.env not in TASKS:
        fail(f"unknown env {args.env!r}: choose from {', '.join(TASKS)}")
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in ("oracle", "ensemble"):
            fail(f"unknown model {m!r}: choose from oracle, ensemble")
    grid = {s.name: s for s in GRID[args.env]}
    names = list(grid) if args.configs == "all" else [c for c in args.configs.split(",") if c]
    for n in names:
        if n not in grid:
            fail(f"unknown config {n!r} for {args.env}: choose from {', '.join(grid)}")
    if args.episodes < 1:
        fail(f"--episodes must be >= 1, got {args.episodes}")
    if args.random_episodes < 1 or args.guided_episodes < 0:
        fail("the dataset needs --random-episodes >= 1 and --guided-episodes >= 0")
    base = PlannerConfig()
    if args.list:
        for s in grid.values():
            print(
                f"{s.name:<16} ensemble {planner_config(base, s, False).evaluations():>7,} "
                f"oracle {planner_config(base, s, True).evaluations():>7,}  {s.note}"
            )
        return
    out = args.csv or ROOT / "experiments" / "results" / f"compute_frontier_{args.env}.csv"
    fig = args.plot or ROOT / "runs" / "benchmark_compute" / f"{args.env}_frontier.png"
    done = {(r["model"], r["config"]) for r in read_rows(out) if r["env"] == args.env}

    def log(msg: str) -> None:
        print(msg, flush=True)

    for model in models:
        todo = [n for n in names if (model, n) not in done]
        if not todo:
            continue
        fitted = None
        if model == "ensemble":
            data = guided_dataset(args.env, args.random_episodes, args.guided_episodes, log)
            fitted = fit_ensemble(args.env, data, log)
        for n in todo:
            row = evaluate(args.env, model, grid[n], args.episodes, fitted)
            append_row(out, row)
            log(
                f"{model:<9}{n:<16}{row['evals_per_action']:>8,} evals  "
                f"{1e3 * row['seconds_per_action']:>7.1f} ms/action  "
                f"return {row['mean_return']:8.2f} +- {row['stderr']:.2f}"
            )
    rows = [r for r in read_rows(out) if r["env"] == args.env]
    plot(rows, args.env, fig)
    log(f"wrote {out} and {fig}")


if __name__ == "__main__":
    main()
