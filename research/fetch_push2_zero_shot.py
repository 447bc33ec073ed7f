"""Does a structured model fitted on one-block FetchPush plan zero-shot on two blocks? (research
tier: quick, untested)

    python research/fetch_push2_zero_shot.py --checkpoint /work/runs/fp_struct_s0 --episodes 10

Date 2026-12-03, status: exploring (issue 12: "on two blocks it plans zero-shot and its success is
reported").

Takes the structured model state of a `experiments/pets.py --env fetch_push --model structured`
run's newest complete checkpoint (the run's last fit on its own FetchPush episodes; the run
directory is only read: the checkpoint files are copied to a temporary directory first, since
the run may still be writing), or with `--refit` a fresh fit, keyed by `--seed`, on the replay
buffer in that checkpoint. `models.structured.transfer_state` carries it over to fetch_push2's
layout (no new data), and the run's own planner and planning reward (its config.json: pets.py's
FetchPush defaults, CEM 100 x 10 elites x 2 iterations, horizon 10, 5 particles, the shaped push
reward on block 1) plan `--episodes` episodes of fetch_push2. The same model, untransferred,
plans fetch_push on the same reset seeds as a control: fetch_push2's block 1 and goal are exactly
fetch_push's for a seed, so the two columns differ only by block 2.

Writes <out>/config.json and <out>/metrics.jsonl (one line per episode: task, reset seed,
success, final distance, how far block 2 moved and how close the blocks came) and prints the
successes. The flat ensemble cannot take part: its input size is the observation's
(`transfer_state` says so).

Findings (2026-12-03, code at c3b1b84; the newest complete checkpoint of each run at the time,
about episode 200-214 of its 500; resets 100000-100009, one planning seed per run; ~0.8 s per
step on two blocks, ~0.4 on one, on the loaded 2-core machine):

    run (pets.py FetchPush structured)   fetch_push2 zero-shot   fetch_push, same resets
    fp_struct_s0 (--seed 0)              6/10                    8/10
    fp_struct_s1 (--seed 1)              10/10                   8/10
    fp_struct_s2 (--seed 2)              10/10                   8/10
    total                                26/30                   24/30

So the carried-over model plans two blocks about as well as one (transfer ratio 26/24 = 1.08,
10 episodes a seed: too few to tell the two apart). Block 2 moved more than 1 mm in 6 of the 30
two-block episodes (pushed or nudged); seed 0's two extra failures are reset 100001 (the blocks
came within 6.8 cm and block 2 moved 1.9 cm) and 100009 (the gripper never moved block 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from experiments.cli import progress_bar
from prototypes import config as cfglib
from prototypes.agents.episode import drive_episode
from prototypes.agents.mpc import MPCAgent, MPCState, make_mpc_agent, planning_act
from prototypes.data import replay
from prototypes.data.runs import CheckpointError, RunDir, git_revision
from prototypes.envs import fetch, get_spec, make
from prototypes.models.structured import StructuredConfig, make_structured, transfer_state
from prototypes.planning import PlannerConfig, make_planner
from prototypes.types import Transition


@dataclass(frozen=True)
class Args:
    checkpoint: str = cfglib.arg(
        "/work/runs/fp_struct_s0",
        "a pets.py run directory (fetch_push, model structured) to read the model from",
    )
    episodes: int = cfglib.arg(10, "planned episodes per task")
    first_reset: int = cfglib.arg(
        100_000, "reset seed of the first episode (then +1 each); apart from the run's seeds"
    )
    seed: int = cfglib.arg(0, "seeds the planner's keys (and the fit with --refit)")
    refit: bool = cfglib.arg(False, "fit a fresh model on the checkpoint's buffer instead")
    control: bool = cfglib.arg(True, "also plan fetch_push (one block) on the same reset seeds")
    out: str = cfglib.arg("", "run directory (default runs/fetch_push2__zero_shot__SEED__TIME)")
    progress: bool = cfglib.arg(True, "show a progress bar")

    def __post_init__(self) -> None:
        cfglib.check(self.episodes >= 1, f"episodes must be >= 1, got {self.episodes}")


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _copy_newest_checkpoint(run: Path, into: Path) -> RunDir:
    """Copy the newest generation with a manifest (and every older one, in case it changes under
    us) into `into`/checkpoints, read-only on `run`; the copy as a RunDir."""
    (into / "checkpoints").mkdir(parents=True)
    for manifest in sorted((run / "checkpoints").glob("ckpt_*.json"), reverse=True):
        data = manifest.with_suffix(".msgpack")
        try:
            shutil.copy2(data, into / "checkpoints" / data.name)
            shutil.copy2(manifest, into / "checkpoints" / manifest.name)
        except FileNotFoundError:  # pruned by the live run while we copied
            continue
    return RunDir(path=into)


def load_model_state(args: Args, cfg: StructuredConfig, model, spec):
    """The model state (and the buffer's transitions) from the run's checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = _copy_newest_checkpoint(Path(args.checkpoint), Path(tmp) / "run").load_checkpoint()
    like = jax.eval_shape(model.init, jax.random.key(0), None)
    try:
        state = serialization.from_state_dict(like, saved["state"]["model"])
    except (KeyError, ValueError, TypeError) as e:
        _fail(
            f"checkpoint in {args.checkpoint} holds no structured model state of this config: {e}"
        )
    state = jax.tree.map(jnp.asarray, state)
    buf = saved["state"]["buffer"]
    n = int(buf["size"])
    data = Transition(**{k: np.asarray(v)[:n] for k, v in buf["data"].items()})
    return state, data


def plan_episodes(agent: MPCAgent, state: MPCState, task: str, args: Args, bar, run_key):
    """Plan args.episodes episodes of `task`; one metrics line each."""
    env = make(task)
    layout = fetch.LAYOUTS[task]
    for i in range(args.episodes):
        reset = args.first_reset + i
        state = state.replace(plan=agent.planner.init())
        t0 = time.perf_counter()
        result, state = drive_episode(
            env,
            planning_act(agent, jax.random.fold_in(run_key, i)),
            state,
            reset_seed=reset,
            on_step=lambda t, r: bar.update(1),
        )
        obs, nxt = result.transitions.obs, result.transitions.next_obs
        last = nxt[-1]
        line = {
            "task": task,
            "episode": i + 1,
            "reset_seed": reset,
            "success": float(result.final_info["is_success"]),
            "final_distance": float(np.linalg.norm(last[layout.achieved] - last[layout.goal])),
            "block1_moved": float(np.linalg.norm(last[3:5] - obs[0, 3:5])),
            "seconds_per_step": (time.perf_counter() - t0) / result.steps,
        }
        if task == "fetch_push2":
            line["block2_moved"] = float(np.linalg.norm(last[25:27] - obs[0, 25:27]))
            gaps = np.linalg.norm(nxt[:, 3:5] - nxt[:, 25:27], axis=-1)
            line["closest_blocks"] = float(gaps.min())
        bar.set_postfix(task=task, ep=i + 1, success=line["success"])
        yield line


def main(args: Args) -> Path:
    run_cfg = json.loads((Path(args.checkpoint) / "config.json").read_text())["config"]
    if run_cfg.get("env") != "fetch_push" or run_cfg.get("model_kind") != "structured":
        _fail(
            f"{args.checkpoint} is a run of env {run_cfg.get('env')!r} with model "
            f"{run_cfg.get('model_kind')!r}: this script needs fetch_push with structured"
        )
    cfg = cfglib.from_dict(StructuredConfig, run_cfg, "model.")
    planner_cfg = cfglib.from_dict(PlannerConfig, run_cfg, "planner.")
    reward = run_cfg["reward"]
    out = Path(args.out or f"runs/fetch_push2__zero_shot__{args.seed}__{int(time.time())}")
    out.mkdir(parents=True, exist_ok=False)
    (out / "config.json").write_text(
        json.dumps(
            {"config": dataclasses.asdict(args), "run_config": run_cfg, "git": git_revision()},
            indent=2,
        )
    )

    def spec_of(task):  # the planner scores imagined steps with the run's planning reward
        return dataclasses.replace(get_spec(task), reward_fn=fetch.reward_fns(task)[reward])

    one, two = spec_of("fetch_push"), spec_of("fetch_push2")
    model1, model2 = make_structured(cfg, one), make_structured(cfg, two)
    state1, data = load_model_state(args, cfg, model1, one)
    key_fit, key_plan = jax.random.split(jax.random.key(args.seed))
    if args.refit:
        print(f"fitting a fresh model on {len(data.obs)} transitions", file=sys.stderr)
        state1, metrics = model1.fit(model1.init(key_fit, None), key_fit, data)
        print(f"fit: {metrics}", file=sys.stderr)
    state2 = transfer_state(state1, cfg, one, two)

    tasks = [("fetch_push2", model2, two, state2)]
    if args.control:
        tasks.append(("fetch_push", model1, one, state1))
    bar = progress_bar(len(tasks) * args.episodes * 50, 0, args.progress, "zero-shot")
    results: dict[str, list[float]] = {}
    with open(out / "metrics.jsonl", "a") as log:
        for task, model, spec, model_state in tasks:
            planner = make_planner(planner_cfg, spec)
            agent = make_mpc_agent(model, planner, spec, 1)
            example = replay.zero_transition(spec.obs_dim, spec.act_dim)
            state = MPCState(  # no model.init: the state is the carried-over one
                model=model_state,
                plan=planner.init(),
                buffer=replay.init(example, 1),
                episode=jnp.int32(0),
            )
            for line in plan_episodes(agent, state, task, args, bar, key_plan):
                log.write(json.dumps(line) + "\n")
                log.flush()
                results.setdefault(task, []).append(line["success"])
    bar.close()
    for task, succ in results.items():
        print(
            f"{task}: {int(sum(succ))}/{len(succ)} episodes solved (resets "
            f"{args.first_reset}..{args.first_reset + args.episodes - 1})"
        )
    return out


def parse_args(argv: list[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cfglib.add_arguments(parser, Args)
    try:
        return cfglib.from_args(Args, parser.parse_args(argv))
    except cfglib.ConfigError as e:
        _fail(str(e))


if __name__ == "__main__":
    try:
        main(parse_args())
    except (CheckpointError, FileNotFoundError, FileExistsError) as e:
        _fail(str(e).splitlines()[0])
