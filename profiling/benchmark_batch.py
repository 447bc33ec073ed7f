"""Batched acting: env steps per second with B environments planned in one call against B = 1.

    python profiling/benchmark_batch.py                       # Reacher, pets.py defaults, B = 8
    python profiling/benchmark_batch.py --env pusher --num-envs 4 --episodes 1

The agent is pets.py's default ensemble (untrained weights: the cost of a call does not depend on
them) and planner for the task. B = 1 runs `--episodes` episodes one after another through
`drive_episode` and `MPCAgent.act`; B runs the same number of rounds of B episodes through
`drive_episodes` and `MPCAgent.act_batch`. Reported: ms per planning call (best of 5 after
compilation, from a zero observation) and env steps per second over whole episodes (env stepping
and host work included, compilation excluded), and their ratio. Where one planning call already
keeps the CPU busy (it is a chain of matrix multiplies over population x particles rows), B rows
cost about B times one; the ratio shows how much the batch buys on this machine.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from _experiments import load_experiment  # profiling/ is on sys.path when run as a script

from prototypes.agents.episode import drive_episode, drive_episodes, make_vector_env
from prototypes.agents.mpc import batch_plan_state, make_mpc_agent, planning_act, planning_act_batch
from prototypes.envs import get_spec, make
from prototypes.models.registry import make_model
from prototypes.planning import make_planner


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", default="reacher", help="reacher or pusher (default reacher)")
    p.add_argument("--num-envs", type=int, default=8, help="B, the batch (default 8)")
    p.add_argument("--episodes", type=int, default=2, help="episodes (B = 1) or rounds (B)")
    args = p.parse_args()
    if args.env not in ("reacher", "pusher") or args.num_envs < 2 or args.episodes < 1:
        p.error("--env reacher|pusher, --num-envs >= 2 and --episodes >= 1")
    cfg, _ = load_experiment("pets").parse_config(["--env", args.env])
    spec = get_spec(args.env)
    model = make_model("ensemble", cfg.model, spec)
    agent = make_mpc_agent(model, make_planner(cfg.planner, spec), spec, capacity=1)
    state = agent.init(jax.random.key(0))
    B = args.num_envs

    def best_ms(call) -> float:
        jax.block_until_ready(call())
        times = []
        for _ in range(5):
            t = time.perf_counter()
            jax.block_until_ready(call())
            times.append(time.perf_counter() - t)
        return 1e3 * min(times)

    obs = jnp.zeros(spec.obs_dim, jnp.float32)
    one = best_ms(lambda: agent.act(state, jax.random.key(1), obs)[0])
    batched = state.replace(plan=batch_plan_state(agent, B))
    keys = jax.random.split(jax.random.key(1), B)
    many = best_ms(lambda: agent.act_batch(batched, keys, jnp.zeros((B, spec.obs_dim)))[0])

    env, steps, t = make(args.env), 0, 0.0
    for i in range(args.episodes):
        act = planning_act(agent, jax.random.key(100 + i))
        t0 = time.perf_counter()
        r, _ = drive_episode(env, act, state.replace(plan=agent.planner.init()), reset_seed=i)
        t += time.perf_counter() - t0
        steps += r.steps
    rate_one = steps / t
    envs, steps, t = make_vector_env(lambda: make(args.env), B), 0, 0.0
    for i in range(args.episodes):
        act = planning_act_batch(agent, list(jax.random.split(jax.random.key(200 + i), B)))
        t0 = time.perf_counter()
        rs, _ = drive_episodes(envs, act, batched, [1000 + B * i + j for j in range(B)])
        t += time.perf_counter() - t0
        steps += sum(r.steps for r in rs)
    rate_many = steps / t
    print(
        f"{args.env}, pets.py defaults ({cfg.planner.population} x {cfg.planner.iterations} "
        f"iterations x {cfg.planner.particles} particles x horizon {cfg.planner.horizon})"
    )
    print(
        f"one planning call: B=1 {one:.1f} ms, B={B} {many:.1f} ms ({B * one / many:.2f}x rows/s)"
    )
    print(
        f"whole episodes:    B=1 {rate_one:.1f} env steps/s, B={B} {rate_many:.1f} env steps/s "
        f"({rate_many / rate_one:.2f}x)"
    )


if __name__ == "__main__":
    main()
