"""PETS: a probabilistic ensemble world model planned through with CEM/MPPI, on MuJoCo arms.

    python experiments/pets.py --env reacher --seed 0 --out runs/pets_reacher_0

Schedule (Chua et al. 2018): `--random-episodes` episodes of uniform random actions, then every
episode the model is refit on all data so far and the agent acts by planning through it. The run
directory gets config.json, metrics.jsonl (one line per episode, deterministic per seed),
perf.jsonl (wall-clock timings), checkpoints/latest.pkl (after every episode) and
plots/learning_curve.png. `--resume` continues an interrupted run and gives the same metrics as an
uninterrupted one. `--model oracle` plans with the true simulator instead of a learned model.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cli import (
    Throttle,
    add_run_arguments,
    apply_task_defaults,
    progress_bar,
    run_experiment,
)
from prototypes import config as cfglib
from prototypes.agents.episode import drive_episode
from prototypes.agents.mpc import make_mpc_agent, planning_act
from prototypes.config import ConfigError, arg, check
from prototypes.data import replay
from prototypes.data.runs import RunDir, episode_seed
from prototypes.envs import get_spec, make
from prototypes.models.base import TrainingDivergedError
from prototypes.models.ensemble import EnsembleConfig
from prototypes.models.registry import make_model
from prototypes.planning import PlannerConfig, make_planner

# Published and measured reference figures, drawn as dashed lines on the learning curve.
REFERENCES = {
    "reacher": {"random -43": -43.0, "zero actions -11.5": -11.5, "CEM on true sim -4.2": -4.2},
    "pusher": {"random -147": -147.0, "zero actions -56": -56.0, "CEM on true sim -33": -33.0},
}


@dataclass(frozen=True)
class PETSConfig:
    env: str = arg("reacher", "task: reacher (Reacher-v5) or pusher (Pusher-v5)")
    seed: int = arg(0, "seeds the env resets, the network init, the planner and the data order")
    episodes: int = arg(50, "total episodes, random ones included")
    random_episodes: int = arg(1, "episodes of uniform random actions before planning starts")
    model_kind: Literal["ensemble", "oracle"] = arg(
        "ensemble", "world model: ensemble (learned, PETS) or oracle (the true simulator)"
    )
    model: EnsembleConfig = arg(EnsembleConfig(), "probabilistic ensemble")
    planner: PlannerConfig = arg(PlannerConfig(), "planner")

    def __post_init__(self) -> None:
        from prototypes.envs import TASKS

        check(
            self.env in TASKS, f"unknown env {self.env!r}: choose from {', '.join(sorted(TASKS))}"
        )
        check(self.episodes >= 1, f"episodes must be >= 1, got {self.episodes}")
        check(
            0 <= self.random_episodes <= self.episodes,
            f"random_episodes must be in [0, episodes={self.episodes}], got {self.random_episodes}",
        )
        check(
            self.model_kind == "oracle" or self.random_episodes >= 1,
            "a learned model needs random_episodes >= 1 to have data before planning",
        )


PLOT_SECONDS = 30.0

# Per-task defaults, chosen on this 2-core CPU (see the README for the figures they reach).
TASK_DEFAULTS = {
    "reacher": {
        "episodes": 50,
        "model.hidden_size": 128,
        "planner.population": 200,
        "planner.elites": 20,
        "planner.iterations": 4,
        "planner.horizon": 15,
    },
    "pusher": {
        "episodes": 100,
        "model.hidden_size": 128,
        "planner.population": 200,
        "planner.elites": 20,
        "planner.iterations": 4,
        "planner.horizon": 25,
    },
}

ALIASES = {
    "model_kind": "model",
    "planner.kind": "planner",
    "planner.horizon": "horizon",
    "planner.population": "population",
    "planner.particles": "particles",
    "planner.elites": "elites",
    "planner.iterations": "iterations",
    "model.members": "ensemble",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pets.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cfglib.add_arguments(parser, PETSConfig, aliases=ALIASES)
    add_run_arguments(parser, "runs/pets_<env>_<seed>")
    return parser


def parse_config(
    parser: argparse.ArgumentParser, argv: list[str]
) -> tuple[PETSConfig, argparse.Namespace]:
    """Parse flags; the chosen env's TASK_DEFAULTS replace the generic defaults first."""
    apply_task_defaults(parser, argv, TASK_DEFAULTS, PETSConfig.env)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model-kind", "--model", dest="model_kind", default=PETSConfig.model_kind)
    # the oracle is deterministic: one particle per candidate is exact
    if pre.parse_known_args(argv)[0].model_kind == "oracle":
        parser.set_defaults(**{"planner.particles": 1, "random_episodes": 0})
    ns = parser.parse_args(argv)
    return cfglib.from_args(PETSConfig, ns), ns


def main(argv: list[str] | None = None) -> RunDir:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        cfg, ns = parse_config(parser, argv)
    except ConfigError as e:
        parser.error(str(e))
    return run_experiment(
        parser,
        argv,
        cfglib.to_dict(cfg),
        ns,
        Path("runs") / f"pets_{cfg.env}_{cfg.seed}",
        lambda run, resume, progress: train(cfg, run, resume=resume, progress=progress),
        fatal=(TrainingDivergedError,),
    )


def train(cfg: PETSConfig, run: RunDir, *, resume: bool, progress: bool = True) -> RunDir:
    spec = get_spec(cfg.env)
    env = make(cfg.env)
    # the ensemble's flags are --model.*; the oracle runs at its defaults
    model = make_model(
        cfg.model_kind, cfg.model if cfg.model_kind == "ensemble" else None, spec, env
    )
    planner = make_planner(cfg.planner, spec)
    capacity = cfg.episodes * spec.episode_steps
    agent = make_mpc_agent(model, planner, spec, capacity)
    run_key = jax.random.key(cfg.seed)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)

    state = agent.init(jax.random.fold_in(run_key, 0))
    if resume:
        state = run.load_state(like=state)
        run.truncate_metrics(int(state.episode))
    start = int(state.episode)

    bar = progress_bar(
        total=cfg.episodes * spec.episode_steps,
        initial=start * spec.episode_steps,
        enabled=progress,
        desc="PETS",
    )
    plot_due = Throttle(PLOT_SECONDS)  # the curve is redrawn at most this often, and at the end
    for ep in range(start, cfg.episodes):
        ep_key = jax.random.fold_in(run_key, ep + 1)
        key_act, key_fit = jax.random.split(ep_key)
        t0 = time.perf_counter()
        state = state.replace(plan=planner.init())
        if ep < cfg.random_episodes:
            u = np.asarray(jax.random.uniform(key_act, (spec.episode_steps, spec.act_dim)))

            def act(state, t, obs, u=u):
                return low + (high - low) * u[t], state
        else:
            act = planning_act(agent, key_act)

        result, state = drive_episode(
            env,
            act,
            state,
            reset_seed=episode_seed(cfg.seed, ep),
            on_step=lambda t, r: bar.update(1),
        )
        t_act = time.perf_counter() - t0
        state = state.replace(
            buffer=replay.add(state.buffer, jax.tree.map(jnp.asarray, result.transitions))
        )
        fit_metrics: dict = {}
        t1 = time.perf_counter()
        if ep + 1 < cfg.episodes:
            state, fit_metrics = agent.update(state, key_fit)
        t_fit = time.perf_counter() - t1
        state = state.replace(episode=jnp.int32(ep + 1))
        record = {
            "episode": ep + 1,
            "env_steps": (ep + 1) * spec.episode_steps,
            "return": result.episode_return,
            "random": ep < cfg.random_episodes,
            **fit_metrics,
        }
        run.log(record)
        run.log_perf(
            {
                "episode": ep + 1,
                "act_seconds": t_act,
                "fit_seconds": t_fit,
                "seconds_per_step": t_act / result.steps,
            },
        )
        run.save_checkpoint({"state": state})
        if plot_due.due(force=ep + 1 == cfg.episodes):
            _plot(run, cfg)
        bar.set_postfix(
            ep=ep + 1,
            ret=f"{result.episode_return:.1f}",
            s_per_step=f"{t_act / result.steps:.3f}",
            fit_s=f"{t_fit:.1f}",
        )
    bar.close()
    return run


def _plot(run: RunDir, cfg: PETSConfig) -> None:
    records = run.metrics()
    steps = [r["env_steps"] for r in records]
    rets = [r["return"] for r in records]
    last10 = [float(np.mean(rets[max(0, i - 9) : i + 1])) for i in range(len(rets))]
    run.plot_curve(
        "learning_curve",
        steps,
        {"episode return": rets, "mean of last 10": last10},
        xlabel="env steps",
        ylabel="return",
        title=f"PETS ({cfg.model_kind}, {cfg.planner.kind}) on {cfg.env}, seed {cfg.seed}",
        hlines=REFERENCES.get(cfg.env),
    )


if __name__ == "__main__":
    main()
