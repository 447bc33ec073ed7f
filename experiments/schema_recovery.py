"""Schema recovery: from how many transitions does the schema learner find the generating schemas?

    python experiments/schema_recovery.py --seeds 0,1,2 --samples 25,50,100,200,400,800,1600,3200

The world is prototypes/envs/schema_world.push_world: a gripper that moves and pushes blocks among
walls onto goals on a `--height` x `--width` grid, 24 attribute schemas (gripper and block turning
on and off, per direction) and 4 reward schemas, written as the prime implicants of each event.
Transitions are i.i.d.: every attribute of every cell is drawn independently (`--p-gripper`,
`--p-block`, `--p-wall`, `--p-goal`), actions uniformly. For each seed, one stream of
max(`--samples`) transitions is drawn and the learner (prototypes/models/schema.learn_rules) is
fit on each prefix, so a seed's curve is over nested data sets.

Reported per (seed, number of transitions): precision and recall of the learned schemas against
the generating ones, over all events, after canonicalising (sorted literals; reward schemas up to
translation), and whether the two sets are equal. The run directory gets config.json,
metrics.jsonl (one line per seed and sample count), plots/schema_recovery.png (precision and
recall against transitions, one thin line per seed and the mean) and rules_seed<s>.txt (the
schemas learned from the most transitions, readable); the same rows go to
experiments/results/schema_recovery.csv (`--results-csv`, '' to skip).
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments.cli import CommandLine, progress_bar
from prototypes.config import arg, check
from prototypes.data.runs import RunDir
from prototypes.envs.schema_world import push_world, sample_transitions
from prototypes.models.schema import format_rules, learn_rules, recovery


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


@dataclass(frozen=True)
class SchemaRecoveryConfig:
    seeds: str = arg("0,1,2", "comma-separated seeds; each draws its own transition stream")
    samples: str = arg(
        "25,50,100,200,400,800,1600,3200", "comma-separated numbers of transitions to learn from"
    )
    height: int = arg(6, "grid rows")
    width: int = arg(6, "grid columns")
    p_gripper: float = arg(0.2, "probability that a cell holds a gripper")
    p_block: float = arg(0.3, "probability that a cell holds a block")
    p_wall: float = arg(0.2, "probability that a cell is a wall")
    p_goal: float = arg(0.2, "probability that a cell is a goal")
    max_seeds: int = arg(16, "positive examples tried as seeds per learned schema")
    results_csv: str = arg(
        "experiments/results/schema_recovery.csv", "where the rows go as CSV ('' for nowhere)"
    )

    def __post_init__(self) -> None:
        try:
            seeds, samples = _ints(self.seeds), _ints(self.samples)
        except ValueError:
            check(
                False,
                f"seeds and samples must be comma-separated integers, got "
                f"{self.seeds!r} and {self.samples!r}",
            )
        check(bool(seeds), "seeds must name at least one seed")
        check(bool(samples) and min(samples) >= 1, f"samples must be >= 1, got {self.samples!r}")
        check(self.height >= 1, f"height must be >= 1, got {self.height}")
        check(self.width >= 1, f"width must be >= 1, got {self.width}")
        for name in ("p_gripper", "p_block", "p_wall", "p_goal"):
            p = getattr(self, name)
            check(0.0 <= p <= 1.0, f"{name} must be in [0, 1], got {p}")
        check(self.max_seeds >= 1, f"max_seeds must be >= 1, got {self.max_seeds}")

    @property
    def seed_list(self) -> tuple[int, ...]:
        return _ints(self.seeds)

    @property
    def sample_list(self) -> tuple[int, ...]:
        return tuple(sorted(set(_ints(self.samples))))

    @property
    def probs(self) -> tuple[float, float, float, float]:
        return (self.p_gripper, self.p_block, self.p_wall, self.p_goal)


COMMAND = CommandLine(
    prog="schema_recovery.py",
    description=__doc__,
    config=SchemaRecoveryConfig,
    out="runs/schema_recovery",
)
parse_config = COMMAND.parse  # argv -> (config, namespace)

FIELDS = (
    "seed",
    "transitions",
    "precision",
    "recall",
    "true_positives",
    "false_positives",
    "false_negatives",
    "exact",
    "leftover",
)


def main(argv: list[str] | None = None) -> RunDir:
    return COMMAND.run(argv, train)


def curve(cfg: SchemaRecoveryConfig, progress: bool = False) -> tuple[list[dict], dict[int, str]]:
    """The recovery rows (FIELDS, plus `seconds`) and each seed's last learned rules as text."""
    spec, true_rules = push_world()
    counts = cfg.sample_list
    bar = progress_bar(len(cfg.seed_list) * len(counts), 0, progress, desc="fits", unit="fit")
    rows, texts = [], {}
    for seed in cfg.seed_list:
        rng = np.random.default_rng(seed)
        data = sample_transitions(
            spec, true_rules, rng, counts[-1], (cfg.height, cfg.width), cfg.probs
        )
        for n in counts:
            start = time.perf_counter()
            fit = learn_rules(spec, *(x[:n] for x in data), max_seeds=cfg.max_seeds)
            seconds = time.perf_counter() - start
            rec = recovery(spec, true_rules, fit.rules)
            row = {"seed": seed, "transitions": n, **rec}
            row["leftover"] = sum(len(v) for v in fit.leftover.values())
            row["seconds"] = seconds
            rows.append(row)
            bar.update(1)
        texts[seed] = format_rules(spec, fit.rules)
    bar.close()
    return rows, texts


def train(cfg: SchemaRecoveryConfig, run: RunDir, *, resume: bool, progress: bool = True) -> RunDir:
    del resume  # one short pass: --resume reruns it
    rows, texts = curve(cfg, progress)
    for row in rows:
        run.log(row)
    for seed, text in texts.items():
        (run.path / f"rules_seed{seed}.txt").write_text(text + "\n")
    print("schema_recovery.py: transitions  precision (per seed)  recall (per seed)  exact seeds")
    for n in cfg.sample_list:
        at = [r for r in rows if r["transitions"] == n]
        prec = " ".join(f"{r['precision']:.3f}" for r in at)
        rec = " ".join(f"{r['recall']:.3f}" for r in at)
        exact = sum(int(r["exact"]) for r in at)
        print(f"schema_recovery.py: {n:6d}  {prec}  {rec}  {exact}/{len(at)}")
    if cfg.results_csv:
        path = Path(cfg.results_csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(FIELDS), extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow(
                    {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}
                )
    _plot(cfg, run, rows)
    return run


def _plot(cfg: SchemaRecoveryConfig, run: RunDir, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = list(cfg.sample_list)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for metric, colour in (("precision", "C0"), ("recall", "C1")):
        table = np.array(
            [[r[metric] for r in rows if r["seed"] == s] for s in cfg.seed_list]
        )  # [seeds, counts]
        for line in table:
            ax.plot(counts, line, color=colour, alpha=0.3, linewidth=1)
        ax.plot(counts, table.mean(0), color=colour, marker="o", markersize=3, label=metric)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(f"transitions (i.i.d., {cfg.height} x {cfg.width} grid)")
    ax.set_ylabel("schemas, against the generating set")
    ax.set_title(f"push-world schema recovery, seeds {cfg.seeds}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    run.plots_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(run.plots_dir / "schema_recovery.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
