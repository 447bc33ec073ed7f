"""Line profile of the PETS host loop: where does a PETS run spend its wall-clock time?

    kernprof -lv profiling/profile_pets.py                    # line timings of the real loop
    kernprof -lv profiling/profile_pets.py --env pusher --episodes 4
    kernprof -lv profiling/profile_pets.py --env fetch_push --model structured --episodes 4 \
        -- --random-episodes 2                               # anything after -- goes to pets.py
    python profiling/profile_pets.py --trace /tmp/pets_trace  # jax.profiler trace of the run

This runs the real experiment, `experiments/pets.py` with that env's default config, a fixed seed
and a short budget (`--episodes`, the first of them random), into a temporary run directory.
Under kernprof it times every line of:
- `run_mpc_episodes` (experiments/mpc_episodes.py): the episode loop: acting, buffer add, refit,
  log, checkpoint, plot hook;
- `drive_episode` (prototypes/agents/episode.py): per step, the policy (one jitted planning call,
  which the `act(state, t, obs)` line contains), the env step and the bookkeeping;
- `train_with_early_stopping` (prototypes/models/fitting.py): the ensemble's epoch loop;
- the multi-step fine-tuning after it (`finetune` in prototypes/models/rollout.py; the structured
  model's default): its chunks of 25 gradient steps and the held-out checks between them;
- `RunDir.save_checkpoint` and pets.py's `_plot`: what the run writes.

Compilation is reported apart: the table printed at the end (from the run's perf.jsonl) splits
the first planning episode, whose first step compiles the planner, from the steady episodes
after it. Below it, the whole run's wall clock is split into acting, fitting and the rest
(start-up, compilation outside acting, logging, checkpoints, plots), each with its share.
A jitted call is one line to line_profiler: look inside it with `--trace`.
"""

from __future__ import annotations

import argparse
import builtins
import json
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import jax
from _experiments import load_experiment  # profiling/ is on sys.path when run as a script

from experiments import mpc_episodes
from prototypes.agents import episode
from prototypes.data.runs import RunDir
from prototypes.models import fitting, rollout


def register(pets) -> bool:
    """Under kernprof -l, add the host-loop functions to its profiler; False without kernprof.

    kernprof's profiler records only while a function it wrapped is running, so `pets.main` is
    wrapped too: registered functions are then timed whenever the experiment calls them.
    """
    profiler = getattr(builtins, "profile", None)
    if profiler is None or not hasattr(profiler, "add_function"):
        return False
    pets.main = profiler(pets.main)
    # each model builds its own `finetune` closure: wrap the ones built from now on
    make_finetune = rollout.make_finetune_rollout
    rollout.make_finetune_rollout = lambda *a, **kw: profiler(make_finetune(*a, **kw))
    for f in (
        mpc_episodes.run_mpc_episodes,
        episode.drive_episode,
        fitting.train_with_early_stopping,
        RunDir.save_checkpoint,
        pets._plot,
    ):
        profiler.add_function(f)
    return True


def summarise(perf_path: Path, random_episodes: int, wall: float) -> None:
    rows = [json.loads(line) for line in perf_path.read_text().splitlines()]
    planned = [r for r in rows if r["episode"] > random_episodes]
    print(f"\n{'episode':>8}{'act s':>9}{'fit s':>9}{'s/step':>9}")
    for r in rows:
        note = "  (random actions)" if r["episode"] <= random_episodes else ""
        if planned and r is planned[0]:
            note = "  (first planning episode: includes the planner's compile)"
        print(
            f"{r['episode']:>8}{r['act_seconds']:>9.2f}{r['fit_seconds']:>9.2f}"
            f"{r['seconds_per_step']:>9.3f}{note}"
        )
    steady = planned[1:]
    if steady:
        per_step = sum(r["act_seconds"] for r in steady) / sum(
            r["act_seconds"] / r["seconds_per_step"] for r in steady
        )
        fit = sum(r["fit_seconds"] for r in steady) / len(steady)
        first = planned[0]
        first_steps = first["act_seconds"] / first["seconds_per_step"]
        compile_s = first["act_seconds"] - per_step * first_steps
        print(f"steady state: {1e3 * per_step:.1f} ms per env step acting, {fit:.2f} s per refit")
        print(f"planner compile (first planning episode minus steady): {compile_s:.2f} s")
    act = sum(r["act_seconds"] for r in rows)
    fit = sum(r["fit_seconds"] for r in rows)
    rest = wall - act - fit
    print(
        f"\nwhole run {wall:.1f} s: acting {act:.1f} s ({act / wall:.0%}), fitting {fit:.1f} s "
        f"({fit / wall:.0%}), the rest {rest:.1f} s ({rest / wall:.0%}: start-up, logging, "
        "checkpoints, plots)"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env", default="reacher", help="task, with its pets.py defaults (reacher)")
    p.add_argument(
        "--episodes", type=int, default=5, help="episodes in the run, the first random (5)"
    )
    p.add_argument("--seed", type=int, default=0, help="run seed (0)")
    p.add_argument("--model", default="ensemble", help="world model kind, as pets.py --model")
    p.add_argument("--trace", default=None, help="write a jax.profiler trace of the run here")
    p.add_argument("pets_args", nargs="*", help="after --: more pets.py flags")
    args = p.parse_args()
    if args.episodes < 3:
        p.error(f"--episodes must be >= 3 (random, compile, steady), got {args.episodes}")

    pets = load_experiment("pets")
    profiled = register(pets)
    if not profiled:
        print("(plain run: use `kernprof -lv profiling/profile_pets.py` for line timings)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = ["--env", args.env, "--episodes", str(args.episodes), "--seed", str(args.seed)]
        argv += ["--model", args.model, "--out", str(out), "--no-progress", *args.pets_args]
        t0 = time.perf_counter()
        with jax.profiler.trace(args.trace) if args.trace else nullcontext():
            run = pets.main(argv)
        wall = time.perf_counter() - t0
        config = json.loads((run.path / "config.json").read_text())["config"]
        summarise(run.path / "perf.jsonl", config["random_episodes"], wall)


if __name__ == "__main__":
    main()
