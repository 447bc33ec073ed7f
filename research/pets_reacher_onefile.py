"""Does TS-1 vs TS-inf matter at small CEM populations? PETS on Reacher-v5 in one file.

Question: Chua et al. (2018) found TS-inf (each particle keeps its ensemble member for the whole
rollout) a little better than TS-1 (a fresh member every step) at 400-500 candidates. With the
small populations a 2-core CPU can afford (25-100 candidates), does the choice still matter, or
is it swamped by CEM's own sampling noise? Compare final returns over seeds:

    python experiments/sweep.py research/pets_reacher_onefile.py --seeds 0 1 2 3 \\
        --grid propagation=ts1,tsinf --grid population=25,100 --jobs 2 -- --total-steps 1500

Date: 2026-11-22. Status: exploring (no answer yet: needs the 4-seed sweep above, ~1 h).

One run: one random episode, then every episode refit the ensemble on all data (prototypes'
ensemble, with early stopping) and act by CEM through it (prototypes' CEM; TS-1/TS-inf is the
ensemble's `propagation`). Logs to runs/<run_name>/ (config.json, metrics.jsonl with
`charts/episodic_return`, `model/...`, `perf/sps`), or to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from prototypes import config as cfglib
from prototypes.config import arg
from prototypes.data.runs import open_run
from prototypes.envs import get_spec, make
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.planning import PlannerConfig, make_cem
from prototypes.types import Transition


@dataclass(frozen=True)
class Args:
    exp_name: str = arg("pets_reacher_onefile", "the name of this experiment")
    seed: int = arg(1, "seed of the env resets, network init, planner and data order")
    env_id: str = arg("reacher", "task short name (reacher or pusher)")
    total_steps: int = arg(1500, "total env steps (50 per Reacher episode)")
    random_episodes: int = arg(1, "episodes of uniform random actions first")
    propagation: Literal["ts1", "tsinf"] = arg("tsinf", "particle propagation: ts1 or tsinf")
    population: int = arg(50, "CEM candidates per iteration")
    elites: int = arg(5, "CEM elites")
    iterations: int = arg(4, "CEM iterations per action")
    horizon: int = arg(15, "planning horizon")
    particles: int = arg(5, "model rollouts per candidate (a multiple of members for TS-inf)")
    members: int = arg(5, "ensemble size")
    hidden_size: int = arg(128, "hidden layer width")
    hidden_layers: int = arg(3, "hidden layers")
    max_epochs: int = arg(50, "most training epochs per refit")
    out: str = arg("", "run directory (default: runs/<run_name>)")


def collect(env, policy, seed: int) -> tuple[Transition, float]:
    """One episode of policy(obs, t) -> action; returns its transitions (NumPy) and return."""
    obs, _ = env.reset(seed=seed)
    rows, total, t = [], 0.0, 0
    while True:
        action = np.asarray(policy(obs, t), np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, np.float32(reward), next_obs, terminated))
        total, obs, t = total + float(reward), next_obs, t + 1
        if terminated or truncated:
            break
    cols = [np.asarray(c) for c in zip(*rows, strict=True)]
    return Transition(cols[0].astype(np.float32), cols[1], cols[2],
                      cols[3].astype(np.float32), cols[4].astype(bool)), total


def main(args: Args) -> Path:
    run_name = f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run = open_run(Path(args.out or f"runs/{run_name}"), dataclasses.asdict(args), resume=False)
    key = jax.random.key(args.seed)
    key_init, key_loop = jax.random.split(key)

    spec = get_spec(args.env_id)
    env = make(args.env_id, seed=args.seed)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    model = make_ensemble(
        EnsembleConfig(members=args.members, hidden_size=args.hidden_size,
                       hidden_layers=args.hidden_layers, propagation=args.propagation,
                       max_epochs=args.max_epochs), spec)
    planner = make_cem(
        PlannerConfig(horizon=args.horizon, population=args.population, elites=args.elites,
                      iterations=args.iterations, particles=args.particles), spec)
    model_state = model.init(key_init, None)

    @jax.jit
    def act(model_state, plan_state, key, obs):
        return planner.plan(plan_state, key, obs, partial(model.predict, model_state))

    data: list[Transition] = []
    global_step, episode = 0, 0
    rng = np.random.default_rng(args.seed)
    while global_step < args.total_steps:
        key_ep = jax.random.fold_in(key_loop, episode)
        t0 = time.perf_counter()
        if episode < args.random_episodes:
            policy = lambda obs, t: rng.uniform(low, high)
        else:
            holder = {"plan": planner.init()}

            def policy(obs, t, holder=holder, key_ep=key_ep, model_state=model_state):
                action, holder["plan"], _ = act(model_state, holder["plan"],
                                                jax.random.fold_in(key_ep, t), jnp.asarray(obs))
                return np.asarray(action)

        tr, ret = collect(env, policy, seed=args.seed * 10_000 + episode)
        steps = len(tr.reward)
        sps = steps / (time.perf_counter() - t0)
        global_step, episode = global_step + steps, episode + 1
        data.append(tr)
        record = {"global_step": global_step, "episode": episode, "charts/episodic_return": ret,
                  "charts/random": episode <= args.random_episodes, "perf/sps": sps}
        if global_step < args.total_steps:  # refit for the next episode
            t1 = time.perf_counter()
            all_data = jax.tree.map(lambda *xs: np.concatenate(xs), *data)
            model_state, fit = model.fit(model_state, jax.random.fold_in(key_ep, 1), all_data)
            record.update({k: float(v) for k, v in fit.items()})
            record["perf/fit_seconds"] = time.perf_counter() - t1
        run.log(record)
        print(f"step {global_step}: return {ret:.2f} ({sps:.0f} steps/s)")
    env.close()
    return run.path


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cfglib.add_arguments(parser, Args)
    return cfglib.from_args(Args, parser.parse_args(argv))


if __name__ == "__main__":
    main(parse_args())
