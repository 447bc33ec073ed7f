"""An interactive shell (ptpython) with the common pieces imported and a small example ready.

    python experiments/shell.py              # opens the REPL
    python experiments/shell.py --no-repl    # builds everything, prints what is in scope, exits

In scope: jax, jnp, np, plt (lazy: `plt()` imports pyplot), the prototypes modules (envs, models,
planning, agents, graphs, replay, runs, stats, config) and a ready example on Reacher-v5:
`spec`, `env`, `obs` (after a reset), `model` and `model_state` (a 2-member ensemble fitted on
`data`, one episode of random actions), `planner` and `plan_state` (CEM, population 64,
horizon 10), `step_fn` (the model bound to its state) and `plan(obs)`, which returns the
planned action and keeps the warm start:

    >>> action = plan(obs)
    >>> obs, reward, *_ = env.step(np.asarray(action))
    >>> jax.tree.map(jnp.shape, model_state)

Sizes are tiny so the shell opens in seconds; rebuild with bigger configs as you like.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

BANNER = """pmbrl shell: jax, jnp, np, envs, models, planning, agents, graphs, replay, runs, stats
example (Reacher-v5): env, obs, spec, data, model, model_state, planner, plan_state, step_fn
  action = plan(obs)            # CEM through the fitted ensemble (warm start kept)
  obs, r, *_ = env.step(np.asarray(action))
  plt().plot(...)               # pyplot, imported on first use"""


def build_namespace(seed: int = 0) -> dict[str, Any]:
    """Import the common pieces and build the small Reacher example; returns the namespace."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import jax
    import jax.numpy as jnp
    import numpy as np

    from prototypes import agents, config, envs, graphs, models, planning
    from prototypes.agents.episode import run_episode
    from prototypes.data import replay, runs, stats
    from prototypes.models.ensemble import EnsembleConfig, make_ensemble
    from prototypes.planning import PlannerConfig, make_planner

    key = jax.random.key(seed)
    key_model, key_fit, key_plan = jax.random.split(key, 3)
    spec = envs.get_spec("reacher")
    env = envs.make("reacher", seed=seed)
    rng = np.random.default_rng(seed)
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    data = run_episode(env, lambda o, t: rng.uniform(low, high), reset_seed=seed).transitions
    model = make_ensemble(
        EnsembleConfig(members=2, hidden_size=32, hidden_layers=2, max_epochs=5), spec
    )
    model_state, fit_metrics = model.fit(model.init(key_model, None), key_fit, data)
    planner = make_planner(
        PlannerConfig(population=64, elites=8, horizon=10, iterations=3, particles=2), spec
    )
    plan_state = planner.init()
    obs, _ = env.reset(seed=seed + 1)

    @jax.jit
    def _plan(model_state, plan_state, key, obs):
        return planner.plan(plan_state, key, obs, partial(model.predict, model_state))

    ns: dict[str, Any] = {}
    calls = {"n": 0}

    def plan(obs) -> jax.Array:
        """CEM through `model_state` from `obs`; updates `plan_state` in the shell's scope."""
        calls["n"] += 1
        action, ns["plan_state"], metrics = _plan(
            ns["model_state"], ns["plan_state"], jax.random.fold_in(key_plan, calls["n"]),
            jnp.asarray(obs, jnp.float32))
        ns["last_plan_metrics"] = metrics
        return action

    def plt():
        import matplotlib.pyplot as pyplot

        return pyplot

    ns.update(
        jax=jax, jnp=jnp, np=np, plt=plt, envs=envs, models=models, planning=planning,
        agents=agents, graphs=graphs, replay=replay, runs=runs, stats=stats, config=config,
        spec=spec, env=env, obs=obs, data=data, model=model, model_state=model_state,
        fit_metrics=fit_metrics, planner=planner, plan_state=plan_state,
        step_fn=partial(model.predict, model_state), plan=plan, key=key,
    )
    return ns


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="shell.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-repl", action="store_true",
                        help="build the namespace, print its names and exit (for tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example (default: 0)")
    ns_args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    ns = build_namespace(ns_args.seed)
    if ns_args.no_repl:
        print("in scope: " + ", ".join(sorted(k for k in ns if not k.startswith("_"))))
        return ns
    try:
        from ptpython.repl import embed
    except ImportError:
        parser.error("ptpython is missing: pip install -e '.[dev]' (or pip install ptpython)")
    print(BANNER)
    embed(globals=ns, locals=ns, title="pmbrl", history_filename=os.path.expanduser(
        "~/.pmbrl_shell_history"))
    return ns


if __name__ == "__main__":
    main()
