"""Profile one planning call: compile vs steady state, and how much of it is the model.

    kernprof -lv profiling/profile_planner.py                 # line timings of the MPC loop
    python profiling/profile_planner.py --planner mppi        # timings only
    python profiling/profile_planner.py --trace /tmp/plan     # jax.profiler trace of the loop

Fixed seed and sizes, kept so that runs compare across commits: the Reacher PETS defaults of
pets.py before iCEM (ensemble 5 x 3 x 128, TS-inf; CEM
population 200, 20 elites, 4 iterations, horizon 15, 5 particles), untrained weights (the cost
of a call does not depend on them). Reported:
- compile: `jax.jit(...).lower(...).compile()` of the planning call, timed alone;
- steady: best and median of `--repeats` calls, each ended with `block_until_ready`;
- model share: one batched `model.predict` over the N x P states of one horizon step, timed
  alone and multiplied by iterations x horizon: the rest is the planner's own work (sampling,
  top-k, refits) and the scan's overhead.

Under kernprof, `mpc_steps` shows a jitted call as a single line: the time there is dispatch plus
waiting, and `np.asarray(action)` is where the host blocks until the device has finished, so the
planning time shows up on that line. What happens inside the call is only visible with --trace
(TensorBoard's profile plugin or Perfetto: look for the `while` loops of the two scans).
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
from prototypes.planning import PlannerConfig, make_planner

try:  # kernprof -l puts a LineProfiler named `profile` into builtins
    profile  # type: ignore[name-defined]  # noqa: B018
except NameError:

    def profile(f):
        return f


SEED, ENV = 0, "reacher"
MODEL = EnsembleConfig(hidden_size=128)
PLANNER = dict(population=200, elites=20, iterations=4, horizon=15, particles=5)


def build(kind: str):
    spec = get_spec(ENV)
    model = make_ensemble(MODEL, spec)
    cfg = PlannerConfig(kind=kind, **PLANNER)
    planner = make_planner(cfg, spec)
    model_state = model.init(jax.random.key(SEED), None)

    @jax.jit
    def act(model_state, plan_state, key, obs):
        return planner.plan(plan_state, key, obs, partial(model.predict, model_state))

    return spec, cfg, model, model_state, planner, act


@profile
def mpc_steps(env, act, model_state, plan_state, steps: int) -> float:
    """A host MPC loop as pets.py runs it, one line per host-side step."""
    obs, _ = env.reset(seed=SEED)
    total = 0.0
    for t in range(steps):
        key = jax.random.fold_in(jax.random.key(SEED), t)
        obs_j = jnp.asarray(obs, jnp.float32)
        action, plan_state, _ = act(model_state, plan_state, key, obs_j)
        action = np.asarray(action)  # the host waits for the device here
        obs, reward, *_ = env.step(action)
        total += float(reward)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--planner", choices=("cem", "mppi", "random"), default="cem",
                   help="planner (default: cem)")
    p.add_argument("--repeats", type=int, default=10, help="timed calls (default: 10)")
    p.add_argument("--steps", type=int, default=20, help="MPC loop steps profiled (default: 20)")
    p.add_argument("--trace", default=None, help="write a jax.profiler trace of the loop here")
    args = p.parse_args()
    spec, cfg, model, model_state, planner, act = build(args.planner)
    obs = jnp.zeros(spec.obs_dim, jnp.float32)
    plan_state = planner.init()

    t0 = time.perf_counter()
    compiled = act.lower(model_state, plan_state, jax.random.key(1), obs).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(model_state, plan_state, jax.random.key(2), obs))  # warm-up
    times = []
    for i in range(args.repeats):
        t = time.perf_counter()
        jax.block_until_ready(compiled(model_state, plan_state, jax.random.key(3 + i), obs))
        times.append(time.perf_counter() - t)

    B = cfg.population * cfg.particles
    predict = jax.jit(partial(model.predict, model_state))
    states = jnp.zeros((B, spec.obs_dim), jnp.float32)
    actions = jnp.zeros((B, spec.act_dim), jnp.float32)
    jax.block_until_ready(predict(jax.random.key(0), states, actions))
    t = time.perf_counter()
    for i in range(args.repeats):
        jax.block_until_ready(predict(jax.random.key(i), states, actions))
    model_ms = 1e3 * (time.perf_counter() - t) / args.repeats
    calls = (cfg.iterations if args.planner != "random" else 1) * cfg.horizon
    best, median = 1e3 * min(times), 1e3 * float(np.median(times))
    print(f"{args.planner}: population {cfg.population} x particles {cfg.particles} x horizon "
          f"{cfg.horizon} x iterations {cfg.iterations}, ensemble {MODEL.members} x "
          f"{MODEL.hidden_layers} x {MODEL.hidden_size}")
    print(f"compile {compile_s:.2f} s | steady best {best:.1f} ms, median {median:.1f} ms")
    print(f"model alone: {model_ms:.2f} ms per batched predict over {B} states x {calls} = "
          f"{model_ms * calls:.1f} ms ({100 * model_ms * calls / best:.0f}% of the call)")

    env = make(ENV, seed=SEED)
    mpc_steps(env, act, model_state, planner.init(), 2)  # compile act outside the profile
    t = time.perf_counter()
    if args.trace:
        with jax.profiler.trace(args.trace):
            mpc_steps(env, act, model_state, planner.init(), args.steps)
        print(f"trace written to {args.trace} (open in TensorBoard or Perfetto)")
    else:
        mpc_steps(env, act, model_state, planner.init(), args.steps)
    per = 1e3 * (time.perf_counter() - t) / args.steps
    print(f"MPC loop: {per:.1f} ms per env step ({per - median:+.1f} ms host overhead vs the "
          "median call)")


if __name__ == "__main__":
    main()
