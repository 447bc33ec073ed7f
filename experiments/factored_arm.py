"""Factored (DBN) world models: structure recovery on synthetic MDPs, and planning on a MuJoCo arm.

Part 1, structure recovery: for each sample count N (`--samples`) and each of `--mdp-seeds`
random factored MDPs (`prototypes.envs.factored_mdp.make_random_mdp`), learn parent sets from N
i.i.d. transitions with BIC and BDeu (exhaustive search up to the in-degree cap) and measure
recall and precision of the true parent edges. Output: a printed table and
plots/structure_recovery.png.

Part 2, the discrete pushing task (`prototypes.envs.discrete_arm`, macro-actions executed in
MuJoCo): collect `max(--train-episodes)` episodes of uniformly random actions in the simulator,
learn the factored model from the first N of them for each N, and act by random shooting over
the model's StepFn (`prototypes.planning`; the planner's continuous action in [0, 4) is floored
to a discrete move). Why random shooting: with 4 discrete actions and horizon 8 a uniform
sample of 1000 sequences covers the useful ones, while CEM's Gaussian over an arbitrary ordering
of the moves has no meaning; max-product planning on the unrolled graph
(`prototypes.planning.graph_planner.make_graph_planner`) is tested against brute force but is slower
per action on this task. Success (block reaches the goal within 30 macro-steps) over
`--eval-episodes` episodes is compared with a uniformly random policy and with the same
planner on the exact abstraction (`discrete_arm.exact_dbn`, the true discrete dynamics as a
DBN, run through the same `predict`). Output: plots/arm_success.png and a printed table.

Each unit (one sample count, or one arm evaluation) is one line of metrics.jsonl followed by a
checkpoint, so `--resume` skips finished units; every unit's randomness is derived from
(--seed, unit), so results do not depend on interruptions.

    python experiments/factored_arm.py --out runs/factored_arm
    python experiments/factored_arm.py --samples 100,1000 --mdp-seeds 2 --train-episodes 50 \\
        --eval-episodes 5 --out /tmp/fa_smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cli import add_run_arguments, fail, one_line_warnings, progress_bar
from prototypes import config as cfglib
from prototypes.config import ConfigError, arg, check
from prototypes.data.runs import CheckpointError, RunDir, RunDirError, RunWriteError, open_run
from prototypes.envs.discrete_arm import DiscreteArmConfig, DiscreteArmEnv, exact_dbn
from prototypes.envs.factored_mdp import make_random_mdp, sample_transitions
from prototypes.envs.registry import EnvSpec
from prototypes.models.factored import (
    FactoredModelConfig,
    dbn_to_state,
    learn_dbn,
    make_factored_model,
)
from prototypes.planning import PlannerConfig, make_planner


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    check(len(values) > 0 and all(v > 0 for v in values),
          f"{what} must be positive integers, got {text!r}")
    check(list(values) == sorted(set(values)), f"{what} must be increasing, got {text!r}")
    return values


@dataclass(frozen=True)
class FactoredArmConfig:
    seed: int = arg(0, "seeds the MDPs, transitions, env resets, random policies and planner")
    samples: str = arg("50,100,200,400,800,1600,3200",
                       "structure recovery: comma-separated transition counts N")
    mdp_seeds: int = arg(5, "structure recovery: random MDPs per N (edges are pooled)")
    mdp_vars: int = arg(10, "structure recovery: state variables n")
    mdp_cardinality: int = arg(3, "structure recovery: states per variable")
    mdp_actions: int = arg(4, "structure recovery: actions")
    mdp_max_parents: int = arg(3, "structure recovery: true (and searched) in-degree cap")
    mdp_determinism: float = arg(0.5, "structure recovery: weight of the one-hot part of rows")
    train_episodes: str = arg("100,200,400,1000",
                              "arm: comma-separated counts of random episodes to learn from")
    eval_episodes: int = arg(50, "arm: evaluation episodes per policy")
    model: FactoredModelConfig = arg(
        FactoredModelConfig(max_parents=4, score="bdeu", backoff=2), "arm: factored model")
    planner: PlannerConfig = arg(
        PlannerConfig(kind="random", horizon=8, population=1000, particles=1, elites=10),
        "arm: planner over the model's StepFn")
    arm: DiscreteArmConfig = arg(DiscreteArmConfig(), "arm: the task")

    def __post_init__(self) -> None:
        _ints(self.samples, "samples")
        _ints(self.train_episodes, "train_episodes")
        check(self.mdp_seeds >= 1, f"mdp_seeds must be >= 1, got {self.mdp_seeds}")
        check(self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}")
        check(1 <= self.mdp_max_parents <= self.mdp_vars + 1,
              f"mdp_max_parents must be in 1..mdp_vars+1={self.mdp_vars + 1}, "
              f"got {self.mdp_max_parents}")
        check(0 <= self.mdp_determinism <= 1,
              f"mdp_determinism must be in [0, 1], got {self.mdp_determinism}")
        check(self.mdp_cardinality >= 2 and self.mdp_actions >= 2 and self.mdp_vars >= 1,
              "mdp_vars >= 1, mdp_cardinality >= 2 and mdp_actions >= 2 are required")
        check(self.model.max_parents >= 4,
              f"model.max_parents must be >= 4 on the arm (its true families have 4 inputs), "
              f"got {self.model.max_parents}")

    @property
    def units(self) -> list[tuple[str, int]]:
        out = [("structure", n) for n in _ints(self.samples, "samples")]
        out += [("arm_random", 0), ("arm_true", 0)]
        out += [("arm_learned", n) for n in _ints(self.train_episodes, "train_episodes")]
        return out


# --- part 1 -----------------------------------------------------------------------------------


def structure_unit(cfg: FactoredArmConfig, n: int) -> dict[str, Any]:
    record: dict[str, Any] = {"unit": "structure", "n": n}
    for kind in ("bic", "bdeu"):
        tp = true_total = found = 0
        for m in range(cfg.mdp_seeds):
            mdp = make_random_mdp(np.random.default_rng([cfg.seed, m]), cfg.mdp_vars,
                                  cfg.mdp_cardinality, cfg.mdp_actions, cfg.mdp_max_parents,
                                  cfg.mdp_determinism)
            s, a, s2 = sample_transitions(mdp, np.random.default_rng([cfg.seed, m, n]), n)
            dbn, _ = learn_dbn(mdp.spec, s, a, s2, cfg.mdp_max_parents, kind)
            tp += len(dbn.edges() & mdp.edges())
            true_total += len(mdp.edges())
            found += len(dbn.edges())
        record[f"{kind}_recall"] = tp / true_total
        record[f"{kind}_precision"] = tp / found if found else 1.0
        record["true_edges"] = true_total
    return record


# --- part 2 -----------------------------------------------------------------------------------


def _reset_seed(seed: int, episode: int, offset: int) -> int:
    return (seed * 1_000_003 + offset + episode) % (2**31 - 1)


def collect_random(cfg: FactoredArmConfig, env: DiscreteArmEnv, episodes: int):
    """Random-action episodes in the simulator; returns per-episode (s, a, s') arrays."""
    rng = np.random.default_rng([cfg.seed, 7])
    out = []
    for ep in range(episodes):
        s, _ = env.reset(seed=_reset_seed(cfg.seed, ep, 500_000))
        S, A, S2 = [], [], []
        while True:
            a = int(rng.integers(env.action_space.n))
            s2, _, terminated, truncated, _ = env.step(a)
            S.append(s), A.append(a), S2.append(s2)
            s = s2
            if terminated or truncated:
                break
        out.append((np.array(S), np.array(A), np.array(S2)))
    return out


def evaluate(cfg: FactoredArmConfig, env: DiscreteArmEnv, policy) -> dict[str, Any]:
    """Success rate and mean steps of `policy(obs, episode, t) -> action` on eval episodes."""
    successes, steps = [], []
    for ep in range(cfg.eval_episodes):
        s, _ = env.reset(seed=_reset_seed(cfg.seed, ep, 0))
        for t in range(cfg.arm.max_steps):
            s, _, terminated, truncated, _ = env.step(policy(s, ep, t))
            if terminated or truncated:
                break
        successes.append(bool(terminated))
        steps.append(t + 1)
    return {"success_rate": float(np.mean(successes)), "successes": int(np.sum(successes)),
            "episodes": len(successes), "mean_steps": float(np.mean(steps))}


def make_model_policy(cfg: FactoredArmConfig, dbn):
    spec = dbn.spec
    espec = EnvSpec(name="discrete_arm", gym_id="", obs_dim=spec.num_vars, act_dim=1,
                    action_low=(0.0,), action_high=(float(spec.num_actions),),
                    episode_steps=cfg.arm.max_steps, reward_fn=None, done_fn=None,
                    obs_from_physics=None, sensor_bodies=())
    planner = make_planner(cfg.planner, espec)
    model = make_factored_model(cfg.model, spec)
    model_state = dbn_to_state(dbn, max(cfg.model.max_parents, 4))
    run_key = jax.random.key(cfg.seed)

    @jax.jit
    def act(key, obs):
        step_fn = lambda k, o, u: model.predict(model_state, k, o, u)
        action, _, _ = planner.plan(planner.init(), key, obs, step_fn)
        return jnp.clip(jnp.floor(action[0]), 0, spec.num_actions - 1).astype(jnp.int32)

    def policy(obs, ep, t):
        key = jax.random.fold_in(jax.random.fold_in(run_key, ep), t)
        return int(act(key, jnp.asarray(obs, jnp.int32)))

    return policy


def arm_unit(cfg: FactoredArmConfig, kind: str, n: int, cache: dict) -> dict[str, Any]:
    env = DiscreteArmEnv(cfg.arm)
    record: dict[str, Any] = {"unit": kind, "n": n}
    t0 = time.perf_counter()
    if kind == "arm_random":
        rng = np.random.default_rng([cfg.seed, 11])
        record.update(evaluate(cfg, env, lambda s, ep, t: int(rng.integers(4))))
    elif kind == "arm_true":
        record.update(evaluate(cfg, env, make_model_policy(cfg, exact_dbn(cfg.arm.width))))
    else:
        if "data" not in cache:
            largest = max(_ints(cfg.train_episodes, "train_episodes"))
            cache["data"] = collect_random(cfg, env, largest)
        data = cache["data"][:n]
        S, A, S2 = (np.concatenate(x) for x in zip(*data, strict=True))
        dbn, _ = learn_dbn(env.spec_factored, S, A, S2, cfg.model.max_parents, cfg.model.score,
                           cfg.model.ess, cfg.model.pseudocount, cfg.model.backoff)
        true = exact_dbn(cfg.arm.width)
        record["transitions"] = len(S)
        record["parents"] = {env.spec_factored.names[i]: list(p)
                             for i, p in enumerate(dbn.parents)}
        record["edge_recall"] = len(dbn.edges() & true.edges()) / len(true.edges())
        record["edge_precision"] = len(dbn.edges() & true.edges()) / max(len(dbn.edges()), 1)
        record.update(evaluate(cfg, env, make_model_policy(cfg, dbn)))
    record["seconds"] = time.perf_counter() - t0
    return record


# --- reporting --------------------------------------------------------------------------------


def summarize(records: list[dict[str, Any]]) -> str:
    lines = []
    structure = [r for r in records if r["unit"] == "structure"]
    if structure:
        lines.append("structure recovery (true parent edges, pooled over MDPs)")
        lines.append(f"{'N':>7}{'BIC recall':>12}{'BIC prec':>10}{'BDeu recall':>13}"
                     f"{'BDeu prec':>11}")
        for r in structure:
            lines.append(f"{r['n']:>7}{r['bic_recall']:>12.3f}{r['bic_precision']:>10.3f}"
                         f"{r['bdeu_recall']:>13.3f}{r['bdeu_precision']:>11.3f}")
    arm = [r for r in records if r["unit"].startswith("arm")]
    if arm:
        lines.append("arm: success rate (block on the goal within the step limit)")
        for r in arm:
            label = {"arm_random": "random policy", "arm_true": "planner on exact abstraction"}.get(
                r["unit"], f"planner on model from {r['n']} random episodes")
            extra = (f"  ({r['transitions']} transitions, edge recall {r['edge_recall']:.2f}, "
                     f"precision {r['edge_precision']:.2f})" if "transitions" in r else "")
            lines.append(f"  {label:<46}{r['successes']:>3}/{r['episodes']:<3} "
                         f"= {r['success_rate']:.2f}, mean steps {r['mean_steps']:.1f}{extra}")
    return "\n".join(lines)


def plot(run: RunDir, records: list[dict[str, Any]]) -> list[Path]:
    paths = []
    structure = [r for r in records if r["unit"] == "structure"]
    if structure:
        ns = [r["n"] for r in structure]
        ys = {f"{k.upper() if k == 'bic' else 'BDeu'} {m}": [r[f"{k}_{m}"] for r in structure]
              for k in ("bic", "bdeu") for m in ("recall", "precision")}
        paths.append(run.plot_curve("structure_recovery", ns, ys, xlabel="transitions N",
                                    ylabel="fraction of edges", title="parent-edge recovery",
                                    hlines={"0.95": 0.95}))
    learned = [r for r in records if r["unit"] == "arm_learned"]
    if learned:
        ref = {f"{r['unit'][4:]} {r['success_rate']:.2f}": r["success_rate"] for r in records
               if r["unit"] in ("arm_random", "arm_true")}
        paths.append(run.plot_curve(
            "arm_success", [r["n"] for r in learned],
            {"planner on learned DBN": [r["success_rate"] for r in learned]},
            xlabel="random training episodes", ylabel="success rate",
            title="discrete arm: success over eval episodes", hlines=ref))
    return paths


# --- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="factored_arm.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cfglib.add_arguments(parser, FactoredArmConfig)
    add_run_arguments(parser, "runs/factored_arm_<seed>",
                      resume_help="continue the run in --out, skipping finished units")
    return parser


def main(argv: list[str] | None = None) -> RunDir:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        cfg = cfglib.from_args(FactoredArmConfig, ns)
    except ConfigError as e:
        parser.error(str(e))
    out = ns.out or Path("runs") / f"factored_arm_{cfg.seed}"
    with one_line_warnings(parser.prog):
        try:
            run = open_run(
                out,
                cfglib.to_dict(cfg),
                resume=ns.resume,
                argv=argv,
                added_defaults=cfglib.declared_defaults(cfg),
            )
            start = 0
            if ns.resume:
                ckpt = run.load_checkpoint()
                start = ckpt.get("completed") if isinstance(ckpt, dict) else None
                if not isinstance(start, int) or not 0 <= start <= len(cfg.units):
                    raise CheckpointError(f"checkpoint {run.checkpoint_path} is not a "
                                          "factored_arm checkpoint; delete the run directory "
                                          "to start over")
                run.truncate_metrics(start)
        except (CheckpointError, FileExistsError, RunDirError) as e:
            parser.error(str(e))
        try:
            _train(run, cfg, ns, start)
        except RunWriteError as e:
            fail(parser.prog, str(e))
        finally:
            run.close()
    return run


def _train(run: RunDir, cfg: FactoredArmConfig, ns: argparse.Namespace, start: int) -> None:
    units = cfg.units
    bar = progress_bar(len(units), start, not ns.no_progress, desc="", unit="unit")
    cache: dict = {}
    for k in range(start, len(units)):
        kind, n = units[k]
        bar.set_description(f"{kind} {n}")
        record = structure_unit(cfg, n) if kind == "structure" else arm_unit(cfg, kind, n, cache)
        run.log(record)
        run.save_checkpoint({"completed": k + 1})
        bar.update(1)
    bar.close()
    records = run.metrics()
    print(summarize(records))
    for path in plot(run, records):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
