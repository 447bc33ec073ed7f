"""Profile the factored (DBN) world model: structure learning, batched predict, graph planning.

    kernprof -lv profiling/profile_factored.py              # line timings of learn_dbn & co
    python profiling/profile_factored.py                    # timings only
    python profiling/profile_factored.py --trace /tmp/dbn   # jax.profiler trace of predict/plan

Fixed seed and sizes: a random factored MDP of experiments/factored_arm.py part 1 (10 ternary
variables, 4 actions, in-degree 3, determinism 0.5), 3200 i.i.d. transitions, BIC, exhaustive
search up to 3 parents (232 subsets per child); the model's `predict` on a batch of 1000 x 8
(random shooting's population x horizon on the arm, one step at a time); max-product planning on
the discrete arm's exact DBN unrolled over horizon 4 (`make_graph_planner`, 50 BP iterations).

Structure learning is host-side NumPy: kernprof times it line by line (the `np.bincount` of
each subset and `family_score`, where gammaln/log dominate). `predict` and the graph planner are
jitted: their first call is compile + run (reported apart), and under kernprof each is one line;
look inside them with --trace.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from prototypes.envs.discrete_arm import exact_dbn
from prototypes.envs.factored_mdp import make_random_mdp, sample_transitions
from prototypes.graphs import BPConfig
from prototypes.models import factored
from prototypes.models.factored import FactoredModelConfig, learn_dbn, make_factored_model
from prototypes.planning.graph_planner import make_graph_planner

try:  # kernprof -l puts a LineProfiler named `profile` into builtins
    profile  # type: ignore[name-defined]  # noqa: B018
except NameError:

    def profile(f):
        return f


SEED, VARS, CARD, ACTIONS, PARENTS, SAMPLES = 0, 10, 3, 4, 3, 3200
BATCH, STEPS, PLAN_HORIZON = 1000, 8, 4


def _time(fn, *args, repeats: int = 5) -> tuple[float, float]:
    """(first call incl. compile, best of `repeats` later calls), seconds, device-synchronised."""
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return first, best


@profile
def structure(rng: np.random.Generator):
    mdp = make_random_mdp(rng, VARS, CARD, ACTIONS, PARENTS, 0.5)
    s, a, s2 = sample_transitions(mdp, rng, SAMPLES)
    t = time.perf_counter()
    dbn, _ = learn_dbn(mdp.spec, s, a, s2, PARENTS, "bic")
    seconds = time.perf_counter() - t
    recall = len(dbn.edges() & mdp.edges()) / len(mdp.edges())
    return mdp, dbn, seconds, recall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trace", default=None, help="write a jax.profiler trace of predict/plan")
    args = p.parse_args()
    if hasattr(profile, "add_function"):  # the library's host-side hot spots, line by line
        for fn in (factored.learn_dbn, factored.family_score, factored.estimate_cpt):
            profile.add_function(fn)
    rng = np.random.default_rng(SEED)
    mdp, dbn, learn_s, recall = structure(rng)
    print(f"learn_dbn: {VARS} vars x card {CARD}, {SAMPLES} transitions, in-degree <= {PARENTS}: "
          f"{learn_s:.2f} s (edge recall {recall:.2f})")

    model = make_factored_model(FactoredModelConfig(max_parents=PARENTS), mdp.spec)
    state = factored.dbn_to_state(dbn, PARENTS)
    obs = jnp.asarray(sample_transitions(mdp, rng, BATCH)[0])
    action = jnp.asarray(rng.integers(0, ACTIONS, (BATCH, 1)), jnp.float32)

    @jax.jit
    def rollout(key, obs):
        def step(s, k):
            out = model.predict(state, k, s, action)
            return out.obs, out.reward
        return jax.lax.scan(step, obs, jax.random.split(key, STEPS))

    first, best = _time(rollout, jax.random.key(1), obs)
    print(f"predict: {BATCH} states x {STEPS} steps: compile ~{first - best:.2f} s, steady "
          f"{1e3 * best:.2f} ms ({BATCH * STEPS / best / 1e6:.1f} M state-steps/s)")

    t = time.perf_counter()
    planner = make_graph_planner(exact_dbn(5), PLAN_HORIZON,
                                 BPConfig(num_iters=50, temperature=0.0, damping=0.5))
    build_s = time.perf_counter() - t
    plan = jax.jit(planner.plan)
    start = jnp.asarray([2, 2, 3, 4, 3, 3], jnp.int32)  # block (2,2), gripper left of it
    first, best = _time(plan, start)
    print(f"graph planner (arm, horizon {PLAN_HORIZON}, {planner.compiled.num_variables} vars, "
          f"{len(planner.graph.factors)} factors): build {build_s:.2f} s, compile "
          f"~{first - best:.2f} s, steady {1e3 * best:.1f} ms per plan")
    if args.trace:
        with jax.profiler.trace(args.trace):
            jax.block_until_ready(rollout(jax.random.key(2), obs))
            jax.block_until_ready(plan(start))
        print(f"trace written to {args.trace} (open in TensorBoard or Perfetto)")


if __name__ == "__main__":
    main()
