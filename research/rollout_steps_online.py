"""How many multi-step fine-tuning steps does an online refit use? (research tier: quick, untested)

    python research/rollout_steps_online.py --run /work/runs/fp_struct_levers_s0 --steps 2000

pets.py refits its model after every episode, warm-started from the last fit. This reads a run's
newest checkpoint (model state and replay buffer, read-only), refits the model on the buffer
once more with the run's own config but `--steps` multi-step fine-tuning steps,
and prints the fit's metrics: where each member's held-out open-loop error was best
(model/rollout_best_step) against the steps run, and the held-out error before and after. A best
step far below `--steps` would say an early stop could cut the refit.

Findings (2026-12-04). The structured levers run (`pets.py --env fetch_push --model structured
--seed 0 --model.nll-beta 0.5 --model.surface-features --model.rollout-horizon 10
--model.rollout-steps 250`) frozen at 165 episodes (8,250 transitions, 6,765 windows), refit
with the same key at three step counts (held-out open-loop error per window, summed over 10
steps of scaled squared error; the one-step refit is the same in all three, 9 epochs):

    steps   before -> after    members' best step   refit (2 cores shared with 7 runs)
      250   86.4 -> 65.9              215                 93 s
     1000   86.4 -> 48.7              670                135 s
     2000   86.4 -> 39.3             1780                221 s

The warm start does not carry the fine-tuning over: each one-step refit undoes much of the last
episode's (86 before, where the last refit had ended lower), and the members still improve near
the end at every step count. So an early stop would not cut the refit (it would not trigger; the
same holds for model_error.py's single fit from scratch: best step 1850 of 2000 on seed 0), and
the planning run's 250 steps get about 40% of the 2,000 steps' gain. Not tried: fine-tuning
with the one-step loss added, so that the refit keeps the multi-step fit instead of undoing it.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax

from experiments import pets
from prototypes.data import replay
from prototypes.models.registry import make_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", required=True, help="a pets.py run directory with rollout_horizon > 0")
    p.add_argument("--steps", type=int, default=2000, help="fine-tuning steps of the one refit")
    p.add_argument("--seed", type=int, default=0, help="key of the refit")
    args = p.parse_args()
    loaded = pets.load_run(Path(args.run))
    cfg = loaded.cfg
    if getattr(cfg.model, "rollout_horizon", 0) <= 0:
        p.error(f"--run {args.run}: its model has no multi-step fine-tuning (rollout_horizon 0)")
    model_cfg = dataclasses.replace(cfg.model, rollout_steps=args.steps)
    model = make_model(cfg.model_kind, model_cfg, loaded.built.spec)
    data = replay.contents(loaded.state.buffer)
    print(f"{args.run}: {data.obs.shape[0]} transitions, {cfg.model_kind} model, refit once")
    started = time.perf_counter()
    _, metrics = model.fit(loaded.state.model, jax.random.key(args.seed), data)
    print(f"refit {time.perf_counter() - started:.1f} s")
    for k, v in sorted(metrics.items()):
        print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")


if __name__ == "__main__":
    main()
