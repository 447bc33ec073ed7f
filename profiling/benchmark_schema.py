"""Speed of max-product planning on schema networks (issue 13's must-hold: one plan for a
three-block 10 x 10 layout at horizon 20 in under 1 s after compilation).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        python profiling/benchmark_schema.py [--starts 20] [--horizon 20] [--solve]

Layout: discrete_arm.LAYOUTS["big_three_blocks"] (10 x 10 map with walls, 3 blocks, 3 goals),
start states from its seeded resets; schemas: the task's true ones (discrete_arm.arm_rules,
which the learner recovers exactly from 200 random one-block episodes; 100 were not enough
for seed 2; experiments/schema_arm.py),
reward: a block on a goal. Plans are timed, compile (first call) apart:

- `best_first`: the planner experiments/schema_arm.py acts with by default (`--planner guided`):
  greedy best-first search on the exact grounded graph to a plan covering *every* goal (any
  length, so more than `horizon` steps when needed), ordered by h_add and dead-end-pruned from
  the relaxed max-product messages run to their fixpoint (the horizon does not bound them);
  batches of GROW_BATCH states per jitted `children` call, their new children scored in one
  jitted `heuristics` call; with --shortest the plan lengths are compared with the shortest
  (discrete_arm.solve_steps, a slow pure-Python search);
- `plan`: one jitted call, the greedy decode of `horizon` actions, each from the max-marginals
  of the 4 first actions (4 relaxed max-product passes of `horizon` steps over 10 x 10 x 4
  binary variables);
- `plan_search`: enforced hill climbing on the exact grounded graph with the relaxed messages
  as its estimate (what experiments/schema_arm.py acts with), until the first block is on a
  goal or `horizon` actions; host loop over jitted batches;
- `solve` (only with --solve; ~20 s a plan): the exact search of `--planner exact`: breadth-first
  over the distinct states of the exact grounded graph to the shortest plan covering *every*
  goal (any length; checked against discrete_arm.solve_steps); host loop over jitted batches
  of SOLVE_CHUNK states.

Prints median and max seconds per plan over `--starts` start states, and the plan lengths.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from prototypes.envs.discrete_arm import GOAL, LAYOUTS, PushArmEnv, arm_rules, solve_steps
from prototypes.planning.schema_planner import (
    CHUNKS,
    GROW_BATCH,
    SCORE_SIZES,
    SOLVE_CHUNK,
    SchemaPlannerConfig,
    best_first,
    make_schema_planner,
    plan_search,
    solve,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=20, help="start states timed")
    parser.add_argument("--horizon", type=int, default=20, help="planning horizon")
    parser.add_argument("--solve", action="store_true", help="also time breadth-first solve")
    parser.add_argument("--shortest", action="store_true",
                        help="compare best_first's plan lengths with solve_steps (slow BFS)")
    args = parser.parse_args()
    if args.starts < 1 or args.horizon < 1:
        parser.error(f"--starts and --horizon must be >= 1, got {args.starts}, {args.horizon}")
    layout = LAYOUTS["big_three_blocks"]
    env = PushArmEnv(layout, substeps=2)  # only its seeded placements are used
    spec, rules = arm_rules()
    planner = make_schema_planner(
        spec, rules, SchemaPlannerConfig(horizon=args.horizon), target=(("block", 1), ("goal", 1))
    )
    starts = [env.reset(seed=i)[0] for i in range(args.starts)]
    frozen = np.zeros_like(starts[0])
    print(f"benchmark_schema.py: {layout.width} x {layout.width}, {layout.blocks} blocks, "
          f"horizon {args.horizon}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
          f"load average {os.getloadavg()[0]:.1f}")

    want = int(starts[0][..., GOAL].sum())
    t0 = time.perf_counter()
    jax.block_until_ready(planner.children(np.zeros((GROW_BATCH, *frozen.shape), bool)))
    for size in SCORE_SIZES:
        jax.block_until_ready(planner.heuristics(np.zeros((size, *frozen.shape), bool), want))
    jax.block_until_ready(planner.heuristic(starts[0], want))
    compile_guided = time.perf_counter() - t0
    times, lengths, nodes, shortest = [], [], [], []
    for s in starts:
        t0 = time.perf_counter()
        actions, expanded = best_first(planner, s, want)
        times.append(time.perf_counter() - t0)
        lengths.append(len(actions))
        nodes.append(expanded)
    if args.shortest:
        for s in starts:
            cells = [np.argwhere(s[..., k]) for k in range(4)]
            shortest.append(solve_steps(layout.walls, cells[0][0], cells[1], cells[3]))
    print(f"benchmark_schema.py: best_first (guided, every goal): compile {compile_guided:.2f} s, "
          f"median {np.median(times):.4f} s, max {np.max(times):.4f} s per plan over "
          f"{len(starts)} starts; {sum(n > 0 for n in lengths)}/{len(starts)} found; lengths "
          f"{lengths}; shortest {shortest or 'not computed (--shortest)'}; states expanded "
          f"median {int(np.median(nodes))}, "
          f"max {max(nodes)}; per-start seconds {[round(t, 3) for t in times]}")

    t0 = time.perf_counter()
    jax.block_until_ready(planner.plan(starts[0], frozen))
    compile_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(planner.first_reward(starts[0], frozen))
    for size in CHUNKS:  # compile every batch size search uses
        jax.block_until_ready(planner.expand(np.zeros((size, *frozen.shape), bool), frozen))
    jax.block_until_ready(planner.step(starts[0], 0))
    jax.block_until_ready(planner.count(starts[0]))
    compile_search = time.perf_counter() - t0

    times, lengths, got = [], [], []
    for s in starts:
        t0 = time.perf_counter()
        actions, rewards, value = jax.block_until_ready(planner.plan(s, frozen))
        times.append(time.perf_counter() - t0)
        got.append(bool(np.asarray(rewards).any()))
    print(f"benchmark_schema.py: plan (jitted greedy decode): compile {compile_plan:.2f} s, "
          f"median {np.median(times):.4f} s, max {np.max(times):.4f} s per plan; "
          f"a block reaches a goal in {sum(got)}/{len(got)} plans")
    times, got = [], []
    for s in starts:
        t0 = time.perf_counter()
        actions, rewards = plan_search(planner, s, frozen)
        times.append(time.perf_counter() - t0)
        lengths.append(len(actions))
        got.append(any(rewards))
    print(f"benchmark_schema.py: plan_search (hill climbing): compile {compile_search:.2f} s, "
          f"median {np.median(times):.4f} s, max {np.max(times):.4f} s per plan; "
          f"lengths {lengths}; a block reaches a goal in {sum(got)}/{len(got)} plans")
    if not args.solve:
        return
    t0 = time.perf_counter()
    jax.block_until_ready(planner.children(np.zeros((SOLVE_CHUNK, *frozen.shape), bool)))
    compile_solve = time.perf_counter() - t0
    times, lengths, nodes, agree = [], [], [], 0
    for s in starts:
        t0 = time.perf_counter()
        actions, expanded = solve(planner, s, int(s[..., GOAL].sum()))
        times.append(time.perf_counter() - t0)
        lengths.append(len(actions))
        nodes.append(expanded)
        cells = [np.argwhere(s[..., k]) for k in range(4)]
        agree += len(actions) == solve_steps(layout.walls, cells[0][0], cells[1], cells[3])
    print(f"benchmark_schema.py: solve (exact, every goal): compile {compile_solve:.2f} s, "
          f"median {np.median(times):.4f} s, max {np.max(times):.4f} s per plan; "
          f"lengths {lengths}; states expanded median {int(np.median(nodes))}, "
          f"max {max(nodes)}; shortest by solve_steps in {agree}/{len(starts)}")


if __name__ == "__main__":
    main()
