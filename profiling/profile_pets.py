"""Line profile of the PETS host loop: where does a PETS episode spend its wall-clock time?

    kernprof -lv profiling/profile_pets.py                  # line timings of the host loop
    python profiling/profile_pets.py --trace /tmp/pets_trace  # jax.profiler trace of jitted code

Fixed seed and sizes (Reacher, the default model and planner sizes, one random episode, then
`--episodes` planning episodes). Compilation (the first planning call and the first model fit)
is reported apart from the steady state. line_profiler sees a jitted call as one line: look
inside it with `--trace` and TensorBoard/Perfetto.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from prototypes.agents.mpc import make_mpc_agent
from prototypes.data import replay
from prototypes.envs import get_spec, make
from prototypes.models.ensemble import EnsembleConfig, make_ensemble
from prototypes.planning import PlannerConfig, make_planner

try:  # defined by kernprof -l
    profile  # type: ignore[name-defined]  # noqa: B018
except NameError:

    def profile(f):
        return f


@profile
def episode(env, agent, state, key, spec, seed):
    """One planning episode, written out so every host-side step is its own line."""
    obs, _ = env.reset(seed=seed)
    rows = []
    total = 0.0
    for t in range(spec.episode_steps):
        root = agent.model.encode(state.model, obs, env)
        action, state, _ = agent.act(state, jax.random.fold_in(key, t), root)
        action = np.asarray(action)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, reward, next_obs, terminated))
        total += reward
        obs = next_obs
    batch = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *rows)
    from prototypes.types import Transition

    tr = Transition(
        obs=batch[0], action=batch[1], reward=batch[2], next_obs=batch[3], done=batch[4]
    )
    state = state.replace(buffer=replay.add(state.buffer, tr))
    state, _ = agent.update(state, jax.random.fold_in(key, 10_000))
    return state, total


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--episodes", type=int, default=3, help="planning episodes to profile")
    p.add_argument("--trace", default=None, help="write a jax.profiler trace of one episode here")
    args = p.parse_args()
    spec = get_spec("reacher")
    env = make("reacher", seed=0)
    model = make_ensemble(EnsembleConfig(hidden_size=128), spec)
    planner = make_planner(PlannerConfig(population=200, elites=20, iterations=4, horizon=15), spec)
    agent = make_mpc_agent(model, planner, spec, capacity=(args.episodes + 2) * spec.episode_steps)
    state = agent.init(jax.random.key(0))

    # one random episode of data and a first fit (this is where the fit compiles)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(spec.episode_steps):
        a = rng.uniform(spec.action_low, spec.action_high).astype(np.float32)
        nxt, r, term, _, _ = env.step(a)
        rows.append((obs, a, r, nxt, term))
        obs = nxt
    from prototypes.types import Transition

    cols = [jnp.asarray(np.stack(c)) for c in zip(*rows, strict=True)]
    state = state.replace(buffer=replay.add(state.buffer, Transition(*cols)))
    t0 = time.perf_counter()
    state, _ = agent.update(state, jax.random.key(1))
    print(f"first fit (includes compile): {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    root = model.encode(state.model, obs, env)
    jax.block_until_ready(agent.act(state, jax.random.key(2), root))
    print(f"first planning call (compile + run): {time.perf_counter() - t0:.2f} s")

    for ep in range(args.episodes):
        t0 = time.perf_counter()
        if args.trace and ep == args.episodes - 1:
            with jax.profiler.trace(args.trace):
                state, ret = episode(env, agent, state, jax.random.key(100 + ep), spec, ep + 1)
        else:
            state, ret = episode(env, agent, state, jax.random.key(100 + ep), spec, ep + 1)
        dt = time.perf_counter() - t0
        ms = 1e3 * dt / spec.episode_steps
        print(f"episode {ep + 1}: return {ret:.2f}, {dt:.2f} s ({ms:.1f} ms/step incl. fit)")


if __name__ == "__main__":
    main()
