"""Why do a FetchPush structured run's planned episodes fail? (research tier: quick, untested)

    python research/fetch_push_failures.py --run /work/runs/fp_struct_s0 --split 210

Date 2026-12-03, status: diagnosis (issue 11: seed 0 dipped after episode 210).

Reads a `pets.py --env fetch_push` run's replay buffer and its model from the newest checkpoint
(read only; `experiments.pets.load_run`) and, for the planned episodes before and
after `--split`, compares failures with successes:
- the block's start distance from the goal, the step at which the block first moved, how close
  the block came to the goal, how many failures ended with the block off the table and how many
  never moved it;
- the run's final model (mean prediction) rolled open loop for 10 steps with the episode's real
  actions from every step t < 40: its predicted 10-step object displacement against the real one.
  Too little predicted motion lets the planner overshoot or push too hard; predicted motion
  where there was none ("phantom contact") would let it believe it pushes without touching.

Findings (seed 0 finished at 500 episodes; successes per 50 episodes 36, 43, 43, 44, 39, 37,
37, 44, 44, 43: the dip after episode 210 recovered, 43 of the last 50):

                            seed 0, 11-210    seed 0, 211-500    seed 1, 11-210    seed 1, 211-327
    failures / episodes     24 / 200          56 / 290           21 / 200          14 / 117
    start-goal distance     fail 0.226 m      fail 0.182         fail 0.196        fail 0.211
                            success 0.177     success 0.168      success 0.169     success 0.159
    block first moved       fail 10.2         fail 14.6          fail 10.8         fail 9.5
      (step)                success 11.8      success 13.1       success 13.1      success 10.5
    failures off table      8                 19                 8                 10
    failures never moved    1                 9                  1                 1

After episode 210 seed 0's failures reach the block later than its successes, and 9 of them never
touch it: the planner hovers 3-5 cm above table height behind a block that started 4-7 cm from
the goal (the object-to-goal gain of a short push is small against the reach term). The model is
not predicting phantom contact there: with the model fit at episode 324, its 10-step predicted
object motion in those episodes was 0.13 cm against 0. The model's open-loop motion on the
failures is in-sample here (the final model was fit on these episodes), and it does not settle
the cause. With the model at episode 324, failures that moved the block had 6.8 cm of predicted
motion against 9.9 cm real (successes 4.2 / 4.5). With the final model they have 10.9 / 10.3
(successes 4.1 / 4.6). Seed 1, model at episode 327: 7.0 / 11.1 before episode 210 and
7.8 / 15.8 after. Under-predicted contact motion goes with failure while the episodes are
recent, but this does not show that it causes them.

The flat ensemble's run (`--run /work/runs/fp_ens_s0 --split 100`, 196 episodes, model fit at
episode 195; 2026-12-04): 60 of 90 planned episodes 11-100 and 81 of 96 of 101-196 failed. Its
model predicts almost no block motion under the real actions, in-sample: 0.39 cm of 10-step
motion against 3.11 cm real on the failures that moved the block (episodes 11-100) and 0.41 /
3.24 after, successes 0.45 / 3.86 and 0.20 / 1.54. Its successes are the blocks that start near
the goal (0.116 and 0.065 m against 0.219 and 0.208 m for failures). The structured model's
predicted motion on the same kind of windows is close to the real one (10.9 / 10.3 cm above).
The planner and the cost are the same in both runs, so the likeliest reason the flat ensemble
fails is that its model has not learned how far a push moves the block (not tested by
intervention here).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import pets
from prototypes.data import replay
from prototypes.data.runs import RunDir
from prototypes.envs import make
from prototypes.models.registry import make_model

GRIP, OBJ, GOAL = slice(0, 3), slice(3, 6), slice(25, 28)  # FetchPush observation (goal appended)
FELL_Z = 0.40  # the block rests at z ~0.425 on the table
T, K = 50, 10


def load(run_path: Path):
    """The run's replay contents [N, ...], its metrics, and a mean-prediction step of its model."""
    loaded = pets.load_run(run_path)
    cfg, spec, state = loaded.cfg, loaded.built.spec, loaded.state
    mean_cfg = dataclasses.replace(cfg.model, propagation="expectation")
    mean = make_model(cfg.model_kind, mean_cfg, spec, make(cfg.env))
    step = jax.jit(lambda o, a: mean.predict(state.model, jax.random.key(0), o, a).obs)
    data = jax.tree.map(np.asarray, replay.contents(state.buffer))
    return data, RunDir(run_path).metrics(), step


def episode_figures(data, ep: int, step) -> dict:
    sl = slice(ep * T, (ep + 1) * T)
    obs, act, nxt = data.obs[sl], data.action[sl], data.next_obs[sl]
    traj = np.concatenate([obs[:, OBJ], nxt[-1:, OBJ]])
    goal = obs[0, GOAL]
    to_goal = np.linalg.norm(traj[:, :2] - goal[:2], axis=1)
    moves = np.linalg.norm(np.diff(traj, axis=0), axis=1) > 1e-3
    cur = jnp.asarray(obs[: T - K])
    for k in range(K):
        cur = step(cur, jnp.asarray(act[k : k + T - K]))
    pred = np.linalg.norm(np.asarray(cur)[:, OBJ] - obs[: T - K, OBJ], axis=1)
    real = np.linalg.norm(nxt[K - 1 : K - 1 + T - K, OBJ] - obs[: T - K, OBJ], axis=1)
    return {
        "start": to_goal[0],
        "first_move": int(np.argmax(moves)) if moves.any() else T,
        "closest": to_goal.min(),
        "fell": traj[-1, 2] < FELL_Z,
        "moved": np.linalg.norm(traj[-1] - traj[0]) > 5e-3,
        "pred": pred.mean(),
        "real": real.mean(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--split", type=int, default=210, help="compare episodes before and after")
    p.add_argument("--skip", type=int, default=10, help="leading (random) episodes to skip")
    args = p.parse_args()
    data, metrics, step = load(Path(args.run))
    n = min(data.obs.shape[0] // T, len(metrics))
    print(f"{args.run}: {n} episodes")
    for lo, hi in ((args.skip, args.split), (args.split, n)):
        figs = [(episode_figures(data, i, step), metrics[i]["success"] > 0) for i in range(lo, hi)]
        fail = [f for f, ok in figs if not ok]
        good = [f for f, ok in figs if ok]
        moved = [f for f in fail if f["moved"]]

        def mean(rows, key):
            return float(np.mean([r[key] for r in rows])) if rows else float("nan")

        closest = np.median([f["closest"] for f in fail]) if fail else float("nan")
        lines = [
            f"episodes {lo + 1}-{hi}: {len(fail)} failures of {len(figs)}",
            f"  start-goal distance  fail {mean(fail, 'start'):.3f}"
            f"  success {mean(good, 'start'):.3f}",
            f"  block first moved    fail {mean(fail, 'first_move'):.1f}"
            f"  success {mean(good, 'first_move'):.1f}",
            f"  failures off table {sum(f['fell'] for f in fail)}, never moved "
            f"{sum(not f['moved'] for f in fail)}, closest approach (median) {closest:.3f}",
            "  10-step object motion, predicted / real (cm): failures that moved it "
            f"{100 * mean(moved, 'pred'):.2f} / {100 * mean(moved, 'real'):.2f} "
            f"(n={len(moved)}), successes {100 * mean(good, 'pred'):.2f} / "
            f"{100 * mean(good, 'real'):.2f}",
        ]
        print("\n".join(lines))


if __name__ == "__main__":
    main()
