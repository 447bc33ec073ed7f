"""Model error on the transitions a FetchPush planner meets (research tier: quick, untested)

    python research/model_error_planning_data.py --run /work/runs/fp_struct_s0 --train 100

experiments/model_error.py tests on a scripted pusher that knocks the block off the table in most
of its episodes (research/model_error_split.py: two thirds of its contact windows are falls). This
asks the same question on a pets.py FetchPush run's own replay buffer, read-only from its newest
checkpoint: both models (model_error.py's configs, mean predictions) are fit on the run's first
`--train` episodes and scored on its last `--test` episodes, with model_error.py's error and
contact definitions. The data were collected by the run's own planner (the structured model's,
for a `--model structured` run), which is a bias to keep in mind: compare runs of both models.

(The findings below were measured at the structured model's defaults before 2026-12-05: plain NLL,
no rollout fine-tuning, no table features. The script follows today's defaults.)

Findings (2026-12-03; the three structured FetchPush runs of issue 11 at 191 / 159 / 143 episodes,
fit on episodes 1-100, scored on the last 20; object error in cm, ensemble / structured / no
motion, ratio structured / ensemble):

    run       1-step contact        10-step contact          ratio   10-step no contact
    seed 0    1.00 / 0.74 / 2.04    7.87 / 5.06 / 10.96      0.64    0.48 / 0.05
    seed 1    0.86 / 0.68 / 1.88    6.35 / 3.31 /  9.36      0.52    0.25 / 0.06
    seed 2    0.90 / 0.77 / 1.97    6.80 / 4.13 /  9.69      0.61    0.30 / 0.10

On the planner's own data (few falls) both models are better than on model_error.py's scripted
pushes (11-13 / 8-9 cm) and the ratio is lower (0.52-0.64 against 0.65-0.77), but still above
issue 11's 0.5. On the flat ensemble's own run (seed 0 at 133 episodes, the same split) the
block mostly creeps (no motion 2.45 cm over 10 steps, 764 of 820 windows in contact) and the two
models are close: 1-step contact 0.27 / 0.26 / 0.50, 10-step contact 1.47 / 1.25 / 2.45, ratio
0.85. So the ratio depends on whose planner collected the data as much as on the model.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import pets
from experiments.model_error import _mean_config, _mean_next_obs, object_errors, summarise
from prototypes.data import replay
from prototypes.envs import get_spec
from prototypes.envs.layout import OBJECT
from prototypes.models.registry import make_model
from prototypes.types import Transition


def load_episodes(run_path: Path) -> tuple[list[Transition], pets.PETSConfig]:
    """The run's replay contents cut into 50-step episodes, and its config."""
    loaded = pets.load_run(run_path)
    data = jax.tree.map(np.asarray, replay.contents(loaded.state.buffer))
    T = loaded.built.spec.episode_steps
    n = data.obs.shape[0] // T
    eps = [jax.tree.map(lambda x, i=i: x[i * T : (i + 1) * T], data) for i in range(n)]
    return eps, loaded.cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", required=True)
    p.add_argument("--train", type=int, default=100, help="first episodes to fit on")
    p.add_argument("--test", type=int, default=20, help="last episodes to score")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="ensemble,structured")
    args = p.parse_args()
    eps, config = load_episodes(Path(args.run))
    print(f"{args.run}: {len(eps)} episodes in the buffer ({config.model_kind} run)")
    train, test = eps[: args.train], eps[-args.test :]
    data = jax.tree.map(lambda *xs: jnp.concatenate([jnp.asarray(x) for x in xs]), *train)
    spec = get_spec("fetch_push")
    obj = spec.layout.entities_of_type(OBJECT)[0].position
    for i, kind in enumerate(args.models.split(",")):
        model = make_model(kind, _mean_config(kind), spec)
        key = jax.random.fold_in(jax.random.key(args.seed), i)
        k_init, k_fit, k_pred = jax.random.split(key, 3)
        state = model.init(k_init, jax.tree.map(lambda x: x[0], data))
        state, _ = model.fit(state, k_fit, data)
        step = jax.jit(functools.partial(_mean_next_obs, model, state, k_pred))
        errors = object_errors(step, test, obj, 10, 1e-3)
        print(
            f"{kind}: "
            + ", ".join(
                f"{r['steps']}-step {r['split']} {r['mean_error_m'] * 100:.2f} cm (n={r['count']})"
                for r in summarise(kind, errors, 10)
            ),
            flush=True,
        )
    still = object_errors(lambda o, a: o, test, obj, 10, 1e-3)
    print(
        "no motion: "
        + ", ".join(
            f"{r['steps']}-step {r['split']} {r['mean_error_m'] * 100:.2f} cm"
            for r in summarise("none", still, 10)
        )
    )


if __name__ == "__main__":
    main()
