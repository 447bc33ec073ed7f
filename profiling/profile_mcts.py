"""Profile one MCTS search over a learned model: compile vs steady state, and the model's share.

    kernprof -lv profiling/profile_mcts.py                  # line timings of an MCTS MPC loop
    python profiling/profile_mcts.py --algorithm muzero     # timings only
    python profiling/profile_mcts.py --batch 16             # one search over 16 roots at once
    python profiling/profile_mcts.py --trace /tmp/mcts      # jax.profiler trace of the loop

Fixed seed and sizes: Reacher, the pets.py ensemble (5 x 3 x 128, TS-inf) with untrained weights
(the cost of a search does not depend on them), the default `MCTSConfig` (Gumbel MuZero, 64
simulations, depth 10, leaf value = mean of 4 random codebook rollouts of 5 steps) over the
"axes" codebook. Reported:
- compile: `jax.jit(...).lower(...).compile()` of the search, timed alone;
- steady: best and median of `--repeats` searches, each ended with `block_until_ready`;
- model share: a simulation makes one StepFn call on the batch of roots (the expanded node) and
  `rollout_steps` calls on `rollout_count` times that batch (the leaf rollouts); the same calls
  are timed alone, scanned over the simulations in one jitted program. The rest of a search is
  mctx's tree bookkeeping (selection, backup, the Gumbel top-k at the root).
Because mctx's simulations are sequential, each StepFn call is small: a search is latency-bound
rather than arithmetic-bound, and batching roots (`--batch`) is how it uses the hardware.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from prototypes.envs import get_spec, make
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.planning.mcts import MCTSConfig, make_codebook, make_mcts_search

try:  # kernprof -l puts a LineProfiler named `profile` into builtins
    profile  # type: ignore[name-defined]  # noqa: B018
except NameError:

    def profile(f):
        return f


SEED, ENV = 0, "reacher"
MODEL = EnsembleConfig(hidden_size=128)


def build(cfg: MCTSConfig):
    spec = get_spec(ENV)
    model = make_ensemble(MODEL, spec)
    model_state = model.init(jax.random.key(SEED), None)
    codebook = make_codebook(cfg, spec)
    search = make_mcts_search(cfg, codebook)

    @jax.jit
    def act(model_state, key, roots):
        return search(key, roots, partial(model.predict, model_state))

    return spec, model, model_state, codebook, act


def model_only_ms(cfg: MCTSConfig, spec, model, model_state, batch: int, repeats: int) -> float:
    """Best ms of the search's StepFn work alone: per simulation one call on `batch` rows and
    `rollout_steps` calls on `batch * rollout_count` rows, scanned over the simulations."""
    rollout_rows = batch * cfg.rollout_count if cfg.value == "rollout" else 0
    steps = cfg.rollout_steps if rollout_rows else 0

    @jax.jit
    def work(model_state, key):
        def simulation(obs, k):
            k_expand, k_roll = jax.random.split(k)
            act = jnp.zeros((batch, spec.act_dim), jnp.float32)
            leaf = model.predict(model_state, k_expand, obs, act).obs
            x = jnp.repeat(leaf, cfg.rollout_count, axis=0) if rollout_rows else leaf
            for i in range(steps):  # static and short, as in the search's rollout scan
                a = jnp.zeros((x.shape[0], spec.act_dim), jnp.float32)
                x = model.predict(model_state, jax.random.fold_in(k_roll, i), x, a).obs
            return leaf + 0.0 * jnp.mean(x), None

        obs0 = jnp.zeros((batch, spec.obs_dim), jnp.float32)
        out, _ = jax.lax.scan(simulation, obs0, jax.random.split(key, cfg.num_simulations))
        return out

    jax.block_until_ready(work(model_state, jax.random.key(0)))
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(work(model_state, jax.random.key(i)))
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


@profile
def mcts_steps(env, act, model_state, steps: int) -> float:
    """A host MPC loop with MCTS as the planner, one line per host-side step."""
    obs, _ = env.reset(seed=SEED)
    total = 0.0
    for t in range(steps):
        key = jax.random.fold_in(jax.random.key(SEED), t)
        roots = jnp.asarray(obs, jnp.float32)[None]
        out = act(model_state, key, roots)
        action = np.asarray(out.action[0])  # the host waits for the search here
        obs, reward, *_ = env.step(action)
        total += float(reward)
    return total


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--algorithm", choices=("gumbel", "muzero"), default="gumbel", help="search (gumbel)"
    )
    p.add_argument("--simulations", type=int, default=64, help="simulations per search (64)")
    p.add_argument("--batch", type=int, default=1, help="roots searched together (1)")
    p.add_argument("--repeats", type=int, default=10, help="timed searches (10)")
    p.add_argument("--steps", type=int, default=20, help="MPC loop steps profiled (20)")
    p.add_argument("--trace", default=None, help="write a jax.profiler trace of the loop here")
    args = p.parse_args()
    for name in ("simulations", "batch", "repeats", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    cfg = MCTSConfig(algorithm=args.algorithm, num_simulations=args.simulations)
    spec, model, model_state, codebook, act = build(cfg)
    roots = jnp.zeros((args.batch, spec.obs_dim), jnp.float32)

    t0 = time.perf_counter()
    compiled = act.lower(model_state, jax.random.key(1), roots).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(model_state, jax.random.key(2), roots))  # warm-up
    times = []
    for i in range(args.repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(model_state, jax.random.key(3 + i), roots))
        times.append(time.perf_counter() - t)
    best, median = 1e3 * min(times), 1e3 * float(np.median(times))

    model_ms = model_only_ms(cfg, spec, model, model_state, args.batch, args.repeats)
    print(
        f"mcts-{cfg.algorithm}: {cfg.num_simulations} simulations, depth <= {cfg.max_depth}, "
        f"{codebook.shape[0]} actions, leaf value {cfg.value} ({cfg.rollout_count} x "
        f"{cfg.rollout_steps} steps), batch {args.batch}; ensemble {MODEL.members} x "
        f"{MODEL.hidden_layers} x {MODEL.hidden_size}"
    )
    print(
        f"compile {compile_s:.2f} s | steady best {best:.1f} ms, median {median:.1f} ms "
        f"({1e3 * best / cfg.num_simulations:.0f} us per simulation)"
    )
    print(
        f"model alone (the same StepFn calls in one jitted scan): {model_ms:.1f} ms per search "
        f"({100 * model_ms / best:.0f}% of the search; the rest is mctx's tree bookkeeping)"
    )

    env = make(ENV, seed=SEED)
    mcts_steps(env, act, model_state, 2)  # the loop's own first calls, outside the timing
    t = time.perf_counter()
    if args.trace:
        with jax.profiler.trace(args.trace):
            mcts_steps(env, act, model_state, args.steps)
        print(f"trace written to {args.trace} (open in TensorBoard or Perfetto)")
    else:
        mcts_steps(env, act, model_state, args.steps)
    per = 1e3 * (time.perf_counter() - t) / args.steps
    print(f"MPC loop (batch 1): {per:.1f} ms per env step")


if __name__ == "__main__":
    main()
