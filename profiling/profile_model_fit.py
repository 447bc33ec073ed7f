"""Profile fitting the PETS ensemble: where does an epoch of model training spend its time?

    kernprof -lv profiling/profile_model_fit.py              # line timings inside ensemble fit
    python profiling/profile_model_fit.py                    # timings only
    python profiling/profile_model_fit.py --trace /tmp/fit   # jax.profiler trace of one fit

Fixed seed and sizes: 20 episodes of uniformly random actions on Reacher-v5 (1000 transitions,
the data of a PETS run after 20 episodes), the ensemble pets.py uses on Reacher (5 members, 3
hidden layers of 128), `--epochs` epochs per fit with early stopping off. The first fit
compiles the jitted gradient-step chunk and the held-out evaluation; the later fits on the same
data size reuse them (the data is padded to a power-of-two row count), so the steady state is
their mean. Reported: compile time (first fit minus a steady fit), seconds per epoch, gradient
steps per second.

Under kernprof the lines of `fit` in prototypes/models/ensemble.py are timed: each call of the
jitted `train_steps` is one line whose time is dispatch plus whatever waiting the next
synchronising line forces (JAX dispatches asynchronously; `float(...)` of the epoch's loss is
where the host waits for the device). Inside the jitted call, use --trace.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import jax
import numpy as np

from prototypes.agents.episode import run_episode
from prototypes.envs import get_spec, make
from prototypes.models import fitting
from prototypes.models.ensemble import EnsembleConfig, make_ensemble

try:  # kernprof -l puts a LineProfiler named `profile` into builtins
    profile  # type: ignore[name-defined]  # noqa: B018
except NameError:

    def profile(f):
        return f


SEED, EPISODES, ENV = 0, 20, "reacher"
CONFIG = EnsembleConfig(hidden_size=128, patience=10_000)  # patience: every epoch runs


@profile
def collect(env, spec, episodes: int):
    rng = np.random.default_rng(SEED)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    parts = [
        run_episode(env, lambda o, t: rng.uniform(low, high), reset_seed=SEED + ep).transitions
        for ep in range(episodes)
    ]
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


@profile
def timed_fit(model, state, key, data) -> tuple[float, dict]:
    start = time.perf_counter()
    state, metrics = model.fit(state, key, data)
    jax.block_until_ready(state.params)
    return time.perf_counter() - start, metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5, help="epochs per fit (default: 5)")
    p.add_argument("--fits", type=int, default=3, help="fits timed after the first (default: 3)")
    p.add_argument("--trace", default=None, help="write a jax.profiler trace of one fit here")
    args = p.parse_args()
    cfg = replace(CONFIG, max_epochs=args.epochs)
    spec = get_spec(ENV)
    env = make(ENV, seed=SEED)
    data = collect(env, spec, EPISODES)
    n = len(data.reward)
    model = make_ensemble(cfg, spec)
    fit = model.fit
    if hasattr(profile, "add_function"):
        fit = profile(model.fit)  # the closure `fit` in ensemble.py, line by line
        model = replace(model, fit=fit)
    state = model.init(jax.random.key(SEED), None)

    first, metrics = timed_fit(model, state, jax.random.key(1), data)
    steady = [timed_fit(model, state, jax.random.key(2 + i), data)[0] for i in range(args.fits)]
    mean = float(np.mean(steady))
    train = n - int(cfg.holdout * n)
    steps = -(-train // (cfg.batch_size * fitting.CHUNK_STEPS)) * fitting.CHUNK_STEPS
    print(f"{n} transitions, {cfg.members} members x {cfg.hidden_layers} x {cfg.hidden_size}, "
          f"batch {cfg.batch_size}, {metrics['model/epochs']} epochs per fit")
    print(f"first fit (compile + run): {first:.2f} s | compile ~{first - mean:.2f} s")
    print(f"steady fit: {mean:.3f} s = {1e3 * mean / args.epochs:.1f} ms/epoch, "
          f"{steps * args.epochs / mean:.0f} gradient steps/s ({steps} per epoch, "
          f"each over {cfg.members} members x {cfg.batch_size} rows)")
    if args.trace:
        with jax.profiler.trace(args.trace):
            timed_fit(model, state, jax.random.key(99), data)
        print(f"trace written to {args.trace} (open in TensorBoard or Perfetto)")


if __name__ == "__main__":
    main()
