"""Loopy BP benchmark: speed on an RBM, speed-up over pgmpy, accuracy on small loopy graphs.

(a) max-product, `--iters` iterations, a batch of `--batch` evidence settings on a binary RBM
    (`--visible` x `--hidden`, fully connected pairwise factors, random weights); compile time
    reported apart from steady state (best of `--repeats`, block_until_ready). PGMax's figure on
    CPU: 200 iterations, 40 units, batch 100 in about 1 s.
(b) per-query time of our batched sum-product against pgmpy's fastest exact inference
    (VariableElimination or junction-tree BeliefPropagation, all marginals per query) on a
    random tree both handle exactly (`--tree-nodes` variables), and their agreement.
(c) mean and max absolute marginal error of damped loopy sum-product against brute-force
    enumeration on `--loopy-graphs` random loopy graphs of `--loopy-nodes` variables.

Usage: python experiments/bp_benchmark.py [--seed 0] [--batch 100] [--iters 200] ...
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import jax
import numpy as np

from prototypes.config import finite_float
from prototypes.graphs import (
    BPConfig,
    FactorGraph,
    PairwiseFactor,
    TableFactor,
    Variable,
    compile_graph,
    exact,
    make_bp,
)


def parse_args(argv=None) -> argparse.Namespace:
    """The flags, checked: bad input ends in one line `bp_benchmark.py: error: ...`, status 2,
    before any work (an --out that cannot be written included)."""
    p = argparse.ArgumentParser(
        prog="bp_benchmark.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seed", type=int, default=0, help="seed for graphs and evidence")
    p.add_argument("--batch", type=int, default=100, help="(a) evidence settings per call")
    p.add_argument("--iters", type=int, default=200, help="(a, c) BP iterations")
    p.add_argument("--visible", type=int, default=20, help="(a) RBM visible units")
    p.add_argument("--hidden", type=int, default=20, help="(a) RBM hidden units")
    p.add_argument("--damping", type=finite_float, default=0.5, help="(a, c) message damping")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the best is reported")
    p.add_argument("--tree-nodes", type=int, default=12, help="(b) variables in the tree")
    p.add_argument("--tree-batch", type=int, default=100, help="(b) queries per batched call")
    p.add_argument("--pgmpy-queries", type=int, default=10, help="(b) pgmpy queries timed")
    p.add_argument("--loopy-graphs", type=int, default=20, help="(c) random loopy graphs")
    p.add_argument("--loopy-nodes", type=int, default=10, help="(c) variables per graph")
    p.add_argument("--loopy-extra-edges", type=int, default=5,
                   help="(c) edges added to a random spanning tree (the loops)")
    p.add_argument("--coupling", type=finite_float, default=1.0,
                   help="(c) std of the pairwise log-potentials")
    p.add_argument("--out", default=None, help="optional path for a JSON file of the results")
    args = p.parse_args(argv)
    for name in ("batch", "iters", "visible", "hidden", "repeats", "tree_batch",
                 "pgmpy_queries", "loopy_graphs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name, low in (("tree_nodes", 2), ("loopy_nodes", 3)):
        if getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    if args.loopy_extra_edges < 0:
        p.error(f"--loopy-extra-edges must be >= 0, got {args.loopy_extra_edges}")
    if not 0 <= args.damping < 1:
        p.error(f"--damping must be in [0, 1), got {args.damping}")
    if args.coupling < 0:
        p.error(f"--coupling must be >= 0, got {args.coupling}")
    if args.out is not None:
        parent = os.path.dirname(os.path.abspath(args.out))
        if os.path.isdir(args.out) or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            p.error(f"cannot write --out {args.out}: its directory must exist and be writable")
    return args


def _time(fn, *args, repeats: int) -> tuple[float, float]:
    """(first call incl. compile, best steady-state call), in seconds."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return first, best


def _infer_fn(compiled, cfg):
    bp = make_bp(cfg, compiled)

    def infer(log_potentials, evidence):
        state, metrics = bp.run(log_potentials, bp.init(), evidence)
        return bp.beliefs(state, evidence), metrics

    return jax.jit(jax.vmap(infer, in_axes=(None, 0)))


def rbm_benchmark(args, rng) -> dict:
    vis = [Variable(f"v{i}", 2) for i in range(args.visible)]
    hid = [Variable(f"h{j}", 2) for j in range(args.hidden)]
    factors = [
        PairwiseFactor((v.name, h.name), [[0.0, 0.0], [0.0, rng.normal()]])
        for v in vis for h in hid
    ]  # log psi(v, h) = w v h
    factors += [TableFactor((u.name,), [0.0, rng.normal()]) for u in vis + hid]  # biases
    compiled = compile_graph(FactorGraph(vis + hid, factors))
    evidence = np.zeros((args.batch, compiled.num_var_states), np.float32)
    evidence[:, 1::2] = rng.normal(size=(args.batch, compiled.num_variables))  # soft, state 1
    cfg = BPConfig(num_iters=args.iters, temperature=0.0, damping=args.damping)
    infer = _infer_fn(compiled, cfg)
    first, steady = _time(infer, compiled.log_potentials, evidence, repeats=args.repeats)
    (beliefs, metrics) = infer(compiled.log_potentials, evidence)
    return {
        "variables": compiled.num_variables,
        "factors": len(factors),
        "batch": args.batch,
        "iters": args.iters,
        "compile_s": first - steady,
        "steady_s": steady,
        "converged_fraction": float(np.mean(np.asarray(metrics["max_delta"]) < 1e-4)),
    }


def _random_tree(rng, n) -> FactorGraph:
    cards = rng.integers(2, 4, size=n)
    names = [f"x{i}" for i in range(n)]
    factors = [TableFactor((names[i],), rng.normal(size=cards[i])) for i in range(n)]
    for i in range(1, n):
        p = int(rng.integers(0, i))
        factors.append(TableFactor((names[p], names[i]), rng.normal(size=(cards[p], cards[i]))))
    return FactorGraph([Variable(m, int(c)) for m, c in zip(names, cards, strict=True)],
                       factors)


def pgmpy_speedup(args, rng) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from pgmpy.inference import BeliefPropagation, VariableElimination

        from prototypes.graphs import pgmpy_io

    graph = _random_tree(rng, args.tree_nodes)
    compiled = compile_graph(graph)
    # Each query clamps one random variable and asks for every marginal.
    clamped = rng.integers(0, args.tree_nodes, size=args.tree_batch)
    values = [int(rng.integers(graph.variables[v].cardinality)) for v in clamped]
    queries = [{graph.names[v]: s} for v, s in zip(clamped, values, strict=True)]
    evidence = np.stack([compiled.evidence(clamp=q) for q in queries])
    cfg = BPConfig(num_iters=args.tree_nodes + 1, temperature=1.0, damping=0.0)
    infer = _infer_fn(compiled, cfg)
    first, steady = _time(infer, compiled.log_potentials, evidence, repeats=args.repeats)
    ours = infer(compiled.log_potentials, evidence)[0].marginals

    model = pgmpy_io.to_pgmpy_markov_network(graph)
    engines = {"VariableElimination": VariableElimination(model),
               "BeliefPropagation": BeliefPropagation(model)}
    per_query, max_diff = {}, 0.0
    for name, engine in engines.items():
        start = time.perf_counter()
        for b, query in enumerate(queries[: args.pgmpy_queries]):
            targets = [n for n in graph.names if n not in query]
            result = engine.query(targets, evidence=query, joint=False, show_progress=False)
            for var, factor in result.items():
                values_ = np.asarray(factor.values) / np.sum(factor.values)
                v = graph.index(var)
                max_diff = max(max_diff, float(np.abs(ours[b, v, : len(values_)] - values_).max()))
        per_query[name] = (time.perf_counter() - start) / args.pgmpy_queries
    fastest = min(per_query, key=per_query.get)
    ours_per_query = steady / args.tree_batch
    return {
        "variables": args.tree_nodes,
        "ours_compile_s": first - steady,
        "ours_per_query_s": ours_per_query,
        "pgmpy_per_query_s": per_query,
        "pgmpy_fastest": fastest,
        "speedup": per_query[fastest] / ours_per_query,
        "max_abs_diff": max_diff,
    }


def _random_loopy(rng, n, extra, coupling, prefix) -> FactorGraph:
    names = [f"{prefix}x{i}" for i in range(n)]
    cards = rng.integers(2, 4, size=n)
    edges = {(int(rng.integers(0, i)), i) for i in range(1, n)}  # a spanning tree
    while len(edges) < n - 1 + extra:
        i, j = sorted(rng.choice(n, size=2, replace=False).tolist())
        edges.add((i, j))
    factors = [TableFactor((names[i],), rng.normal(size=cards[i])) for i in range(n)]
    factors += [
        TableFactor((names[i], names[j]), coupling * rng.normal(size=(cards[i], cards[j])))
        for i, j in sorted(edges)
    ]
    return FactorGraph([Variable(m, int(c)) for m, c in zip(names, cards, strict=True)],
                       factors)


def loopy_accuracy(args, rng) -> dict:
    graphs = [_random_loopy(rng, args.loopy_nodes, args.loopy_extra_edges, args.coupling,
                            f"g{k}_") for k in range(args.loopy_graphs)]
    union = FactorGraph([v for g in graphs for v in g.variables],
                        [f for g in graphs for f in g.factors])  # one compile for all graphs
    compiled = compile_graph(union)
    cfg = BPConfig(num_iters=args.iters, temperature=1.0, damping=args.damping)
    infer = _infer_fn(compiled, cfg)
    beliefs, metrics = infer(compiled.log_potentials, compiled.evidence()[None])
    marginals = np.asarray(beliefs.marginals[0])
    errors, start = [], 0
    for g in graphs:
        for v, want in enumerate(exact.marginals(g)):
            errors.append(np.abs(marginals[start + v, : len(want)] - want).max())
        start += len(g.variables)
    errors = np.array(errors)
    return {
        "graphs": args.loopy_graphs,
        "variables_each": args.loopy_nodes,
        "loops_each": args.loopy_extra_edges,
        "mean_abs_error": float(errors.mean()),
        "max_abs_error": float(errors.max()),
        "final_max_delta": float(np.asarray(metrics["max_delta"])[0]),
    }


def main(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    results = {"args": vars(args), "jax": jax.__version__, "device": str(jax.devices()[0])}
    results["rbm"] = rbm_benchmark(args, rng)
    results["pgmpy"] = pgmpy_speedup(args, rng)
    results["loopy"] = loopy_accuracy(args, rng)

    r, p, lo = results["rbm"], results["pgmpy"], results["loopy"]
    rows = [
        ("(a) RBM max-product", f"{r['variables']} vars, {r['factors']} factors, "
         f"batch {r['batch']}, {r['iters']} iters",
         f"steady {r['steady_s']:.3f} s (target < 1 s), compile {r['compile_s']:.2f} s, "
         f"converged {r['converged_fraction']:.0%}"),
        ("(b) vs pgmpy", f"tree of {p['variables']} vars, all marginals per query",
         f"ours {p['ours_per_query_s'] * 1e6:.1f} us/query, pgmpy {p['pgmpy_fastest']} "
         f"{p['pgmpy_per_query_s'][p['pgmpy_fastest']] * 1e3:.2f} ms/query: "
         f"{p['speedup']:.0f}x (target >= 100x); max |diff| {p['max_abs_diff']:.1e}"),
        ("(c) loopy accuracy", f"{lo['graphs']} graphs x {lo['variables_each']} vars, "
         f"{lo['loops_each']} extra edges",
         f"marginal error mean {lo['mean_abs_error']:.2e}, max {lo['max_abs_error']:.2e}; "
         f"final max delta {lo['final_max_delta']:.1e}"),
    ]
    width = max(len(a) for a, _, _ in rows)
    print(f"loopy BP benchmark (seed {args.seed}, jax {jax.__version__}, {results['device']})")
    for name, setting, figures in rows:
        print(f"{name:<{width}}  {setting}\n{'':<{width}}  {figures}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, default=float)
    return results


if __name__ == "__main__":
    main(parse_args())
