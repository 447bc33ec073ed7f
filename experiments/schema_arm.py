"""Schema networks on the multi-block arm: learn from one block, plan zero-shot on new layouts.

    python experiments/schema_arm.py --seeds 0 --out runs/schema_arm
    python experiments/schema_arm.py --seeds 0 --train-episodes 30 --eval-episodes 3 \\
        --layouts train,two_blocks --out /tmp/schema_arm_smoke        # a quick look

For each seed: `--train-episodes` episodes of uniformly random macro-actions on the one-block
training layout (prototypes/envs/discrete_arm.py: `LAYOUTS["train"]`, an 8 x 8 map with an
L-shaped wall; macro-actions run in MuJoCo and are read back as the entity grid gripper /
block / solid / goal), then the schema learner (prototypes/models/schema.learn_rules) on those
transitions, then `--eval-episodes` episodes on each of `--layouts`, planned zero-shot on the
learned schemas with no further learning:

- train: the training layout (one block, one goal, new random placements);
- two_blocks, three_blocks: as many blocks and goals on the same map;
- moved_walls: one block on another map (the wall moved and split);
- distractors: three blocks and one goal.

Planner (prototypes/planning/schema_planner.py): max-product on the learned schemas unrolled
`--horizon` steps, relaxed forward messages, enforced hill climbing on the exact grounded
graph; model-predictive: the found path is followed while each real next state equals the
model's prediction and searched again otherwise. When every search fails (a dead end, or no
block can reach a free goal within the horizon), `--random-steps` random moves are taken
before the next search. What it maximises: "a block on a goal cell" (the target literals
block@0=1 & goal@0=1), counted over cells, with goals already covered frozen (and unfrozen for
a second search when the frozen one finds nothing). The learned *reward* schemas are printed
and compared with the true ones but not planned on: with one block, the episode ends when it
reaches the goal, so the data never shows a goal that already holds a block, and the learned
reward rule cannot know that a second block is stopped there (it lacks solid@goal=0; see the
rules file).

Reported per (seed, layout): success rate (every goal covered within the layout's
max_steps), its ratio to the training layout's, mean macro-steps of the successes, planning
seconds per step; and per seed the recovery of the true task schemas (precision, recall). The
factored DBN (models/factored.py, full tables over the single-block task's cell variables)
cannot take the multi-block layouts (its variables are one block's and one goal's coordinates
and the gripper's offset from that block); on the one-block layouts it was not run, since its
abstraction has no variables for walls inside the grid; the table says so. The flat ensemble
with MCTS was not run (the brief allowed leaving it out).

Outputs: config.json, metrics.jsonl (one line per unit: a seed's fit, or a seed x layout
evaluation; `--resume` skips finished units and, since every unit's randomness derives from
(seed, unit), gives the same numbers), rules_seed<s>.txt (format_rules), the learned schemas
of each event exported to pgmpy factor graphs (counts in the fit line),
plots/schema_arm.png, and experiments/results/schema_arm.csv (`--results-csv`).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.cli import CommandLine, progress_bar
from prototypes.config import arg, check
from prototypes.data.runs import RunDir
from prototypes.envs.discrete_arm import (
    BLOCK,
    GOAL,
    LAYOUTS,
    SOLID,
    PushArmEnv,
    arm_rules,
)
from prototypes.models.schema import (
    canonical_rules,
    event_names,
    format_rules,
    learn_rules,
    recovery,
    schema_factor_graph,
)
from prototypes.planning.schema_planner import (
    SchemaPlanner,
    SchemaPlannerConfig,
    make_schema_planner,
    search,
)

EVAL_OFFSET = 1_000_000  # reset seeds of evaluation episodes start here (training: below)


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


@dataclass(frozen=True)
class SchemaArmConfig:
    seeds: str = arg("0", "comma-separated seeds; each collects its own data and learns its own")
    train_episodes: int = arg(100, "random-action episodes on the one-block training layout")
    eval_episodes: int = arg(50, "planned episodes per layout and seed")
    layouts: str = arg(
        "train,two_blocks,three_blocks,moved_walls,distractors",
        "comma-separated layouts to plan on (train must be among them: the ratios use it)",
    )
    horizon: int = arg(16, "steps of the relaxed max-product messages")
    max_nodes: int = arg(512, "states one search may expand before giving up")
    random_steps: int = arg(4, "random moves taken when every search fails, before the next")
    substeps: int = arg(150, "MuJoCo steps (2 ms) per macro-action")
    results_csv: str = arg("experiments/results/schema_arm.csv", "rows as CSV ('' for nowhere)")

    def __post_init__(self) -> None:
        try:
            seeds = [int(s) for s in _names(self.seeds)]
        except ValueError:
            check(False, f"seeds must be comma-separated integers, got {self.seeds!r}")
        check(bool(seeds), "seeds must name at least one seed")
        check(self.train_episodes >= 1, f"train_episodes must be >= 1, got {self.train_episodes}")
        check(self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}")
        for name in _names(self.layouts):
            check(
                name in LAYOUTS,
                f"unknown layout {name!r}: choose from {', '.join(LAYOUTS)}",
            )
        check("train" in _names(self.layouts), "layouts must include train (ratios use it)")
        check(self.horizon >= 1, f"horizon must be >= 1, got {self.horizon}")
        check(self.max_nodes >= 1, f"max_nodes must be >= 1, got {self.max_nodes}")
        check(self.random_steps >= 1, f"random_steps must be >= 1, got {self.random_steps}")
        check(self.substeps >= 2, f"substeps must be >= 2, got {self.substeps}")

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(int(s) for s in _names(self.seeds))

    @property
    def layout_list(self) -> tuple[str, ...]:
        return _names(self.layouts)


COMMAND = CommandLine(
    prog="schema_arm.py",
    description=__doc__,
    config=SchemaArmConfig,
    out="runs/schema_arm",
)
parse_config = COMMAND.parse

TARGET = (("block", 1), ("goal", 1))
FIELDS = (
    "seed",
    "layout",
    "model",
    "episodes",
    "successes",
    "success_rate",
    "ratio_to_train",
    "mean_steps",
    "seconds_per_step",
    "note",
)
NO_DBN = (
    "cannot take this layout: the DBN's variables are one block's and one goal's cells and the "
    "gripper's offset from that block; a second block has no variable"
)
DBN_NOT_RUN = (
    "not run: the DBN's abstraction (discrete_arm.arm_spec) has no variables for walls inside "
    "the grid; fitting it here needs another abstraction (left undone)"
)


def main(argv: list[str] | None = None) -> RunDir:
    return COMMAND.run(argv, train)


def collect(cfg: SchemaArmConfig, seed: int, progress: bool = False):
    """Random-action transitions on the training layout in MuJoCo: (states, actions,
    next_states, rewards > 0)."""
    env = PushArmEnv(LAYOUTS["train"], substeps=cfg.substeps)
    rng = np.random.default_rng(seed)
    data: list[list] = [[], [], [], []]
    bar = progress_bar(cfg.train_episodes, 0, progress, desc=f"seed {seed} data", unit="ep")
    for ep in range(cfg.train_episodes):
        s, _ = env.reset(seed=seed * 100_000 + ep)
        done = False
        while not done:
            a = int(rng.integers(4))
            s1, r, terminated, truncated, _ = env.step(a)
            for store, x in zip(data, (s, a, s1, r > 0), strict=True):
                store.append(x)
            s, done = s1, terminated or truncated
        bar.update(1)
    bar.close()
    return tuple(np.asarray(x) for x in data)


def _frozen(state: np.ndarray) -> np.ndarray:
    """Protect covered goals: their block and solid literals may not change."""
    covered = state[..., BLOCK] & state[..., GOAL]
    frozen = np.zeros_like(state)
    frozen[..., BLOCK] = frozen[..., SOLID] = covered
    return frozen


def run_episode(planner, env: PushArmEnv, seed: int, cfg: SchemaArmConfig) -> dict[str, Any]:
    """One planned episode in MuJoCo; success, steps, planning seconds."""
    rng = np.random.default_rng(seed)
    s, _ = env.reset(seed=seed)
    path: list[int] = []
    plan_time, steps, success, searches = 0.0, 0, False, 0
    for t in range(1, env.layout.max_steps + 1):
        steps = t
        start = time.perf_counter()
        if not path:
            frozen = _frozen(s)
            path, _ = search(planner, s, frozen, cfg.max_nodes)
            if not path and frozen.any():
                path, _ = search(planner, s, np.zeros_like(frozen), cfg.max_nodes)
            if not path:  # stuck (a dead end, or beyond the horizon): a few random moves
                path = [int(a) for a in rng.integers(4, size=cfg.random_steps)]
            searches += 1
        a = path.pop(0)
        predicted = np.asarray(planner.step(s, a)[0])
        plan_time += time.perf_counter() - start
        s1, _, terminated, truncated, _ = env.step(a)
        if not np.array_equal(s1, predicted):
            path = []  # the model was wrong here: search again from what happened
        s = s1
        if terminated:
            success = True
            break
        if truncated:
            break
    return {"success": success, "steps": steps, "plan_seconds": plan_time, "searches": searches}


def fit_unit(cfg: SchemaArmConfig, seed: int, run: RunDir, progress: bool) -> tuple[Any, dict]:
    """Collect, learn, compare with the true schemas, export to pgmpy; the rules and a record."""
    from prototypes.graphs.pgmpy_io import to_pgmpy_factor_graph

    data = collect(cfg, seed, progress)
    spec, true_rules = arm_rules()
    start = time.perf_counter()
    fit = learn_rules(spec, *data)
    seconds = time.perf_counter() - start
    (run.path / f"rules_seed{seed}.txt").write_text(format_rules(spec, fit.rules) + "\n")
    truth, got = canonical_rules(spec, true_rules), canonical_rules(spec, fit.rules)
    dyn = [e for e in event_names(spec) if e != "reward"]
    tp = sum(len(truth[e] & got[e]) for e in dyn)
    fp = sum(len(got[e] - truth[e]) for e in dyn)
    fn = sum(len(truth[e] - got[e]) for e in dyn)
    exported = 0
    for event in event_names(spec):
        graph = schema_factor_graph(spec, fit.rules, event)
        if graph is not None:
            to_pgmpy_factor_graph(graph).check_model()
            exported += 1
    rec = recovery(spec, true_rules, fit.rules)
    record = {
        "unit": f"fit/{seed}",
        "seed": seed,
        "transitions": len(data[0]),
        "fit_seconds": seconds,
        "dynamics_precision": tp / (tp + fp) if tp + fp else 1.0,
        "dynamics_recall": tp / (tp + fn) if tp + fn else 1.0,
        "all_precision": rec["precision"],
        "all_recall": rec["recall"],
        "leftover": sum(len(v) for v in fit.leftover.values()),
        "pgmpy_events_exported": exported,
    }
    return fit.rules, record


def eval_unit(cfg: SchemaArmConfig, seed: int, layout: str, planner, progress: bool) -> dict:
    env = PushArmEnv(LAYOUTS[layout], substeps=cfg.substeps)
    bar = progress_bar(cfg.eval_episodes, 0, progress, desc=f"seed {seed} {layout}", unit="ep")
    results = []
    for ep in range(cfg.eval_episodes):
        results.append(run_episode(planner, env, EVAL_OFFSET + seed * 10_000 + ep, cfg))
        bar.update(1)
        bar.set_postfix(success=f"{np.mean([r['success'] for r in results]):.2f}")
    bar.close()
    wins = [r for r in results if r["success"]]
    total_steps = sum(r["steps"] for r in results)
    return {
        "unit": f"eval/{seed}/{layout}",
        "seed": seed,
        "layout": layout,
        "episodes": len(results),
        "successes": len(wins),
        "success_rate": len(wins) / len(results),
        "mean_steps": float(np.mean([r["steps"] for r in wins])) if wins else None,
        "seconds_per_step": sum(r["plan_seconds"] for r in results) / max(total_steps, 1),
    }


def train(cfg: SchemaArmConfig, run: RunDir, *, resume: bool, progress: bool = True) -> RunDir:
    done = {m["unit"]: m for m in run.metrics()} if resume else {}
    rules_of: dict[int, Any] = {}
    for seed in cfg.seed_list:
        need = [f"eval/{seed}/{lay}" for lay in cfg.layout_list if f"eval/{seed}/{lay}" not in done]
        if f"fit/{seed}" not in done or need:
            rules, record = fit_unit(cfg, seed, run, progress)  # deterministic: refit on resume
            rules_of[seed] = rules
            if f"fit/{seed}" not in done:
                run.log(record)
                done[record["unit"]] = record
                run.save_checkpoint({"units": np.int64(len(done))})  # units are in metrics
        for layout in cfg.layout_list:
            unit = f"eval/{seed}/{layout}"
            if unit in done:
                continue
            if not isinstance(rules_of[seed], SchemaPlanner):  # one per seed: compiled once
                rules_of[seed] = make_schema_planner(
                    arm_rules()[0], rules_of[seed], SchemaPlannerConfig(horizon=cfg.horizon),
                    target=TARGET,
                )
            record = eval_unit(cfg, seed, layout, rules_of[seed], progress)
            run.log(record)
            done[unit] = record
            run.save_checkpoint({"units": np.int64(len(done))})
        _write(cfg, run, table(cfg, done))
    rows = table(cfg, done)
    print("schema_arm.py: seed  layout  model  success  ratio-to-train  note")
    for r in rows:
        print(
            f"schema_arm.py: {r['seed']}  {r['layout']:13s} {r['model']:6s} "
            f"{r['success_rate'] if r['success_rate'] != '' else '-':>5}  "
            f"{r['ratio_to_train'] if r['ratio_to_train'] != '' else '-':>5}  {r['note'][:40]}"
        )
    for seed in cfg.seed_list:
        fit = done[f"fit/{seed}"]
        print(
            f"schema_arm.py: seed {seed}: {fit['transitions']} transitions, dynamics schemas "
            f"precision {fit['dynamics_precision']:.3f} recall {fit['dynamics_recall']:.3f}, "
            f"with reward {fit['all_precision']:.3f} / {fit['all_recall']:.3f}"
        )
    return run


def _write(cfg: SchemaArmConfig, run: RunDir, rows: list[dict]) -> None:
    """The results CSV and the plot of the finished seeds."""
    if not rows:
        return
    if cfg.results_csv:
        path = Path(cfg.results_csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(FIELDS))
            writer.writeheader()
            writer.writerows(rows)
    _plot(cfg, run, rows)


def table(cfg: SchemaArmConfig, done: dict[str, dict]) -> list[dict]:
    """The CSV rows: per seed and layout, the schema planner's figures and the DBN's verdict."""
    rows = []
    for seed in cfg.seed_list:
        if not all(f"eval/{seed}/{lay}" in done for lay in cfg.layout_list):
            continue  # an unfinished seed (the table is rewritten after every seed)
        base = done[f"eval/{seed}/train"]["success_rate"]
        for layout in cfg.layout_list:
            m = done[f"eval/{seed}/{layout}"]
            ratio = round(m["success_rate"] / base, 4) if base > 0 else ""
            rows.append({
                "seed": seed,
                "layout": layout,
                "model": "schema",
                "episodes": m["episodes"],
                "successes": m["successes"],
                "success_rate": round(m["success_rate"], 4),
                "ratio_to_train": ratio,
                "mean_steps": "" if m["mean_steps"] is None else round(m["mean_steps"], 2),
                "seconds_per_step": round(m["seconds_per_step"], 4),
                "note": "zero-shot" if layout != "train" else "training layout",
            })
            rows.append({
                "seed": seed, "layout": layout, "model": "dbn", "episodes": 0, "successes": "",
                "success_rate": "", "ratio_to_train": "", "mean_steps": "",
                "seconds_per_step": "",
                "note": NO_DBN if LAYOUTS[layout].blocks > 1 else DBN_NOT_RUN,
            })
    return rows


def _plot(cfg: SchemaArmConfig, run: RunDir, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts = list(cfg.layout_list)
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    x = np.arange(len(layouts))
    seeds = sorted({r["seed"] for r in rows})
    for i, seed in enumerate(seeds):
        rates = [
            next(r["success_rate"] for r in rows
                 if r["seed"] == seed and r["layout"] == lay and r["model"] == "schema")
            for lay in layouts
        ]
        width = 0.8 / len(seeds)
        ax.bar(x + i * width - 0.4 + width / 2, rates, width, label=f"seed {seed}")
    base = np.mean([
        r["success_rate"] for r in rows if r["layout"] == "train" and r["model"] == "schema"
    ])
    ax.axhline(0.9 * base, color="k", linestyle="--", linewidth=1, label="0.9 x training layout")
    ax.set_xticks(x, layouts, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (all goals covered)")
    ax.set_title(
        f"schemas learned from {cfg.train_episodes} one-block episodes, planned zero-shot",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    run.plots_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(run.plots_dir / "schema_arm.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
