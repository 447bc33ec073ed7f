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

from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.cli import CommandLine, Layer, Throttle
from experiments.mpc_episodes import Episode, run_mpc_episodes, uniform_act
from prototypes.agents.mpc import make_mpc_agent
from prototypes.config import arg, check
from prototypes.data.runs import RunDir
from prototypes.envs import get_spec, make
from prototypes.envs.variants import parse_variant
from prototypes.models.base import TrainingDivergedError
from prototypes.models.ensemble import EnsembleConfig
from prototypes.models.registry import check_model, get_model_kind, make_model
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
    variant: str = arg(
        "none",
        "task variant: factor=VALUE[,factor=VALUE...], e.g. mass=2 or mass=B,goal=A "
        "(--variant help lists the env's factors and ranges)",
    )
    model_kind: str = arg("ensemble", "world model kind (listed below)")
    model: Any = arg(EnsembleConfig(), "the world model's config (its kind's config class)")
    planner: PlannerConfig = arg(PlannerConfig(), "planner")

    def __post_init__(self) -> None:
        from prototypes.envs import TASKS

        check(
            self.env in TASKS, f"unknown env {self.env!r}: choose from {', '.join(sorted(TASKS))}"
        )
        parse_variant(self.env, self.variant)  # one line naming a bad factor or value
        check_model(self.model_kind, self.model, self.env)
        check(self.episodes >= 1, f"episodes must be >= 1, got {self.episodes}")
        check(
            0 <= self.random_episodes <= self.episodes,
            f"random_episodes must be in [0, episodes={self.episodes}], got {self.random_episodes}",
        )
        check(
            get_model_kind(self.model_kind).needs_env or self.random_episodes >= 1,
            "a learned model needs random_episodes >= 1 to have data before planning",
        )


PLOT_SECONDS = 30.0

# Defaults over the class defaults, in order, chosen on this 2-core CPU (see the README for the
# figures they reach).
LAYERS = (
    Layer({"model.hidden_size": 128}, when={"model_kind": "ensemble"}),
    Layer(
        {
            "episodes": 50,
            "planner.population": 200,
            "planner.elites": 20,
            "planner.iterations": 4,
            "planner.horizon": 15,
        },
        when={"env": "reacher"},
    ),
    Layer(
        {
            "episodes": 100,
            "planner.population": 200,
            "planner.elites": 20,
            "planner.iterations": 4,
            "planner.horizon": 25,
        },
        when={"env": "pusher"},
    ),
    # the oracle is deterministic (one particle per candidate is exact) and needs no data
    Layer({"planner.particles": 1, "random_episodes": 0}, when={"model_kind": "oracle"}),
)

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

COMMAND = CommandLine(
    prog="pets.py",
    description=__doc__,
    config=PETSConfig,
    out="runs/pets_{env}_{seed}",
    layers=LAYERS,
    aliases=ALIASES,
)


parse_config = COMMAND.parse  # argv -> (config, namespace)


def main(argv: list[str] | None = None) -> RunDir:
    return COMMAND.run(argv, train, fatal=(TrainingDivergedError,))


def train(cfg: PETSConfig, run: RunDir, *, resume: bool, progress: bool = True) -> RunDir:
    spec = get_spec(cfg.env)
    env = make(cfg.env, variant=cfg.variant)
    model = make_model(cfg.model_kind, cfg.model, spec, env)
    planner = make_planner(cfg.planner, spec)
    T = spec.episode_steps
    agent = make_mpc_agent(model, planner, spec, cfg.episodes * T)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)

    def record(ep: Episode) -> dict:
        return {
            "episode": ep.index + 1,
            "env_steps": (ep.index + 1) * T,
            "return": ep.result.episode_return,
            "random": ep.random,
            **ep.fit_metrics,
        }

    plot_due = Throttle(PLOT_SECONDS)  # the curve is redrawn at most this often, and at the end

    def after(ep: Episode) -> None:
        if plot_due.due(force=ep.index + 1 == cfg.episodes):
            _plot(run, cfg)

    run_mpc_episodes(
        agent,
        env,
        run,
        seed=cfg.seed,
        episodes=cfg.episodes,
        random_episodes=cfg.random_episodes,
        explore=lambda key: uniform_act(key, low, high, T),
        fits_after=lambda ep: ep + 1 < cfg.episodes,
        record=record,
        resume=resume,
        progress=progress,
        desc="PETS",
        postfix=lambda ep, line: {
            "ep": ep.index + 1,
            "ret": f"{ep.result.episode_return:.1f}",
            "s_per_step": f"{ep.act_seconds / ep.result.steps:.3f}",
            "fit_s": f"{ep.fit_seconds:.1f}",
        },
        after=after,
    )
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
