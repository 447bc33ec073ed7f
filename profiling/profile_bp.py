"""Profile loopy BP: host-side graph building and compilation, jit compile, steady state.

    kernprof -lv profiling/profile_bp.py            # line profile of the host-side functions
    python profiling/profile_bp.py --trace /tmp/bp  # jax.profiler trace of the steady state

line_profiler sees a jitted call as one line, so device time goes through `--trace` (open the
trace directory in TensorBoard / Perfetto). Fixed seed and sizes: a 20 x 20 binary RBM,
max-product, 200 iterations, batch 100 (the `experiments/bp_benchmark.py` (a) setting).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from prototypes.graphs import (
    BPConfig,
    FactorGraph,
    PairwiseFactor,
    TableFactor,
    Variable,
    compile_graph,
    make_bp,
)

try:
    profile  # noqa: B018 (injected by kernprof)
except NameError:
    profile = lambda f: f  # noqa: E731

SEED, VISIBLE, HIDDEN, BATCH, ITERS = 0, 20, 20, 100, 200


@profile
def build_graph(rng: np.random.Generator) -> FactorGraph:
    vis = [Variable(f"v{i}", 2) for i in range(VISIBLE)]
    hid = [Variable(f"h{j}", 2) for j in range(HIDDEN)]
    factors = [PairwiseFactor((v.name, h.name), [[0.0, 0.0], [0.0, rng.normal()]])
               for v in vis for h in hid]
    factors += [TableFactor((u.name,), [0.0, rng.normal()]) for u in vis + hid]
    return FactorGraph(vis + hid, factors)


@profile
def compile_and_jit(graph: FactorGraph):
    compiled = compile_graph(graph)
    bp = make_bp(BPConfig(num_iters=ITERS, temperature=0.0, damping=0.5), compiled)

    def infer(log_potentials, evidence):
        state, metrics = bp.run(log_potentials, bp.init(), evidence)
        return bp.beliefs(state, evidence).map_states, metrics["max_delta"]

    return compiled, jax.jit(jax.vmap(infer, in_axes=(None, 0)))


@profile
def run(infer, compiled, evidence, repeats: int = 5) -> tuple[float, float]:
    start = time.perf_counter()
    jax.block_until_ready(infer(compiled.log_potentials, evidence))
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(infer(compiled.log_potentials, evidence))
        best = min(best, time.perf_counter() - start)
    return first, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", default=None, help="write a jax.profiler trace to this dir")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    graph = build_graph(rng)
    compiled, infer = compile_and_jit(graph)
    host = time.perf_counter() - start
    evidence = np.zeros((BATCH, compiled.num_var_states), np.float32)
    evidence[:, 1::2] = rng.normal(size=(BATCH, compiled.num_variables))
    first, steady = run(infer, compiled, evidence)
    print(f"host build+compile_graph {host:.3f} s | jit compile {first - steady:.2f} s | "
          f"steady {steady:.3f} s ({BATCH} x {ITERS} iterations)")
    if args.trace:
        with jax.profiler.trace(args.trace):
            jax.block_until_ready(infer(compiled.log_potentials, evidence))
        print(f"trace written to {args.trace}")


if __name__ == "__main__":
    main()
