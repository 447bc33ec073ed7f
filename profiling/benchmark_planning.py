"""Planning-speed benchmark: ms per planning call, compile time, achieved GFLOP/s.

    python profiling/benchmark_planning.py          # default Reacher config + PETS-paper config
    python profiling/benchmark_planning.py --env pusher --repeats 5
    python profiling/benchmark_planning.py --env fetch_push --models ensemble,structured

One planning call is one jitted program (CEM iterations, horizon and particles are scans and batch
dimensions). FLOPs count the ensemble's matrix multiplies only (2 x in x out per layer per
evaluation), which dominate; evaluations = iterations x population x particles x horizon.
A plain float32 matmul is timed in the same run as the machine reference. Configs:
- default: what `python experiments/pets.py --env ENV` plans with (its per-task defaults);
- pets-paper: population 500, 50 elites, 5 iterations, 20 particles, horizon 30, 5 members of
  4 x 200 (Chua et al. 2018).
`--models` times each listed model kind at its pets.py default config under the same planner (equal
population x particles x horizon), one after the other in the same run, and prints each one's
time as a ratio to the first's. GFLOP is only counted for the flat ensemble ("-" otherwise).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import jax
import jax.numpy as jnp
from _experiments import load_experiment  # profiling/ is on sys.path when run as a script

from prototypes.agents.mpc import make_mpc_agent
from prototypes.envs import get_spec
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.models.registry import make_model
from prototypes.planning import PlannerConfig, make_planner


def model_flops(cfg: EnsembleConfig, obs_dim: int, act_dim: int) -> int:
    sizes = [obs_dim + act_dim] + [cfg.hidden_size] * cfg.hidden_layers + [2 * obs_dim]
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    x = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(x).block_until_ready()
    t = time.perf_counter()
    for _ in range(repeats):
        f(x).block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def bench(
    name: str, env: str, mcfg, pcfg: PlannerConfig, repeats: int, kind: str = "ensemble"
) -> dict:
    spec = get_spec(env)
    model = make_ensemble(mcfg, spec) if kind == "ensemble" else make_model(kind, mcfg, spec)
    agent = make_mpc_agent(model, make_planner(pcfg, spec), spec, capacity=1)
    state = agent.init(jax.random.key(0))
    obs = jnp.zeros(spec.obs_dim, jnp.float32)
    t0 = time.perf_counter()
    compiled = agent.act.lower(state, jax.random.key(1), obs).compile()
    compile_s = time.perf_counter() - t0
    action, state, _ = compiled(state, jax.random.key(2), obs)  # warm-up
    action.block_until_ready()
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        action, state, _ = compiled(state, jax.random.key(3 + i), obs)
        action.block_until_ready()
        times.append(time.perf_counter() - t)
    best = min(times)
    evals = pcfg.iterations * pcfg.population * pcfg.particles * pcfg.horizon
    flops = evals * model_flops(mcfg, spec.obs_dim, spec.act_dim) if kind == "ensemble" else 0
    return {
        "name": name,
        "compile_s": compile_s,
        "ms": 1e3 * best,
        "ms_median": 1e3 * sorted(times)[len(times) // 2],
        "gflop": flops / 1e9,
        "gflops": flops / best / 1e9,
        "evals": evals,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--env", default="reacher", help="task whose dimensions are used (default: reacher)"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed calls per config, best reported")
    p.add_argument("--skip-paper", action="store_true", help="only the default config")
    p.add_argument(
        "--models",
        default="ensemble",
        help="comma-separated model kinds timed at their pets.py defaults (default: ensemble)",
    )
    args = p.parse_args()
    pets = load_experiment("pets")
    configs = []
    for kind in args.models.split(","):
        defaults, _ = pets.parse_config(["--env", args.env, "--model", kind])
        label = "default" if kind == "ensemble" else kind
        configs.append((label, defaults.model, defaults.planner, kind))
    if not args.skip_paper:
        paper_m = replace(EnsembleConfig(), members=5, hidden_size=200, hidden_layers=4)
        paper_p = replace(
            PlannerConfig(), population=500, elites=50, iterations=5, particles=20, horizon=30
        )
        configs.append(("pets-paper", paper_m, paper_p, "ensemble"))
    peak = matmul_gflops()
    print(f"reference float32 matmul (1024^3) on this machine: {peak:.0f} GFLOP/s")
    header = ("config", "compile s", "ms/call", "median", "x first", "evals", "GFLOP", "GFLOP/s")
    print(f"{header[0]:<12}" + "".join(f"{h:>10}" for h in header[1:]) + f"{'of ref':>10}")
    first = None
    for name, m, pc, kind in configs:
        r = bench(name, args.env, m, pc, args.repeats, kind)
        first = first or r["ms"]
        flops = (
            f"{r['gflop']:>10.1f}{r['gflops']:>10.1f}{r['gflops'] / peak:>10.0%}"
            if r["gflop"]
            else f"{'-':>10}{'-':>10}{'-':>10}"
        )
        print(
            f"{r['name']:<12}{r['compile_s']:>10.2f}{r['ms']:>10.1f}{r['ms_median']:>10.1f}"
            f"{r['ms'] / first:>10.2f}{r['evals']:>10}" + flops
        )


if __name__ == "__main__":
    main()
