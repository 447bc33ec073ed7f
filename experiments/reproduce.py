"""Reproduce a published result: run (or read, if they exist) its runs; print ours beside theirs.

    python experiments/reproduce.py pets-reacher              # 5 seeds x 50 episodes of PETS
    python experiments/reproduce.py pets-pusher --jobs 2      # 5 seeds x 100 episodes
    python experiments/reproduce.py dyna-maze                 # Sutton & Barto Example 8.1
    python experiments/reproduce.py pets-reacher --gather-only   # only read what has run
    python experiments/reproduce.py pets-reacher --backend ray --address auto

Each reproduction is a sweep (experiments/sweep.py) over its seeds with the experiment's default
(paper-like) flags, in `<out>/<name>/` (default out: runs/reproduce): finished runs are read, not
rerun, and unfinished ones continue with --resume. Flags after `--` go to every run (for a quick
look: `reproduce.py dyna-maze -- --runs 3`; the numbers are then not the reproduction's).

The reference figures (DESIGN.md section 3) are printed next to ours:
- pets-reacher / pets-pusher: our return (per seed the mean of the last 10 episodes; across seeds
  the mean, or the interquartile mean from 4 seeds on, with a bootstrap 95% interval) and best
  episode, against CEM on the true simulator, model-free results at ~1M steps, the PETS paper
  (pusher), and zero and random actions. The plot is the sweep's, with the references drawn in.
- dyna-maze: episodes until the mean steps per episode (over the runs) first reaches
  near-optimal (<= 1.25 x the 14-step optimum), per planning steps n, against the book's "about
  25, 5 and 3 episodes" for n = 0, 5, 50; the figure is dyna_maze.py's Figure 8.2.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _load_sweep():
    """experiments/ is not a package: load sweep.py beside this file by path."""
    if "sweep_script" in sys.modules:
        return sys.modules["sweep_script"]
    spec = importlib.util.spec_from_file_location("sweep_script", HERE / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_script"] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Reference:
    label: str
    value: float  # drawn as a line on the plot
    text: str  # as printed ("-4.2 +- 1.0", "-3.6 to -2.6")
    source: str


@dataclass(frozen=True)
class Reproduction:
    script: str  # relative to the repository root
    args: tuple[str, ...]
    seeds: tuple[int, ...]
    what: str
    references: tuple[Reference, ...]
    last: int = 10  # a run's final value: mean of its last `last` episode returns


_DESIGN = "DESIGN.md section 3"
REPRODUCTIONS: dict[str, Reproduction] = {
    "pets-reacher": Reproduction(
        script="experiments/pets.py",
        args=("--env", "reacher", "--no-progress"),
        seeds=(0, 1, 2, 3, 4),
        what="PETS (5-member ensemble, CEM) on Reacher-v5, 50 episodes of 50 steps",
        references=(
            Reference("model-free SAC/TD3 ~1M steps", -3.1, "-3.6 to -2.6",
                      "gymnasium benchmarks, " + _DESIGN),
            Reference("CEM on the true simulator", -4.2, "-4.2 +- 1.0",
                      "measured here, seeds 0-4, " + _DESIGN),
            Reference("zero actions", -11.5, "-11.5", _DESIGN),
            Reference("random actions", -43.0, "-43", _DESIGN),
        ),
    ),
    "pets-pusher": Reproduction(
        script="experiments/pets.py",
        args=("--env", "pusher", "--no-progress"),
        seeds=(0, 1, 2, 3, 4),
        what="PETS (5-member ensemble, CEM) on Pusher-v5, 100 episodes of 100 steps",
        references=(
            Reference("model-free TD3 ~1M steps", -29.0, "-29", _DESIGN),
            Reference("CEM on the true simulator", -33.0, "-33 +- 10",
                      "measured here, seeds 0-4, " + _DESIGN),
            Reference("zero actions", -56.0, "-56", _DESIGN),
            Reference("PETS paper, max return", -73.5, "-80 to -67 (2.7k-15k steps)",
                      "Chua et al. 2018, their 7-DOF pusher (not Pusher-v5)"),
            Reference("random actions", -147.0, "-147", _DESIGN),
        ),
    ),
    "dyna-maze": Reproduction(
        script="experiments/dyna_maze.py",
        args=("--maze", "dyna", "--no-progress"),
        seeds=(0,),
        what="Dyna-Q on the Dyna maze (S&B Example 8.1, Fig. 8.2), 30 runs x 50 episodes",
        references=(
            Reference("n=0", 25, "about 25 episodes", "Sutton & Barto 2018, Example 8.1"),
            Reference("n=5", 5, "about 5 episodes", "Sutton & Barto 2018, Example 8.1"),
            Reference("n=50", 3, "about 3 episodes", "Sutton & Barto 2018, Example 8.1"),
        ),
        last=1,
    ),
}
OPTIMAL_STEPS = 14
NEAR_OPTIMAL = 1.25  # x the optimum: "(epsilon-)optimal" in the book's words


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def pets_report(rep: Reproduction, result: Any, extra: Sequence[str]) -> str:
    from prototypes.data.stats import summarize

    sweep = _load_sweep()
    finals = [r["final"] for r in result.rows if r["final"] != ""]
    best = []
    for s in result.specs:
        _, y = sweep.curve(sweep._read_metrics(s.out / "metrics.jsonl"), "env_steps", "return")
        if len(y):
            best.append(float(np.max(y)))
    steps = [r["last_x"] for r in result.rows if r["last_x"] != ""]
    lines = [f"{rep.what}" + (f" (extra flags: {' '.join(extra)})" if extra else "")]
    if not finals:
        return "\n".join(lines + ["no finished episodes yet"])
    rng = np.random.default_rng(0)
    f, b = summarize(finals, rng), summarize(best, rng)
    rows = [["", "return", "source"]]
    rows.append([f"ours: last-{rep.last} mean ({f.statistic} of {f.runs} seeds)",
                 f"{f.center:.1f} [{f.low:.1f}, {f.high:.1f}]",
                 f"{min(steps):.0f}-{max(steps):.0f} env steps per seed"])
    rows.append([f"ours: best episode ({b.statistic} of {b.runs} seeds)",
                 f"{b.center:.1f} [{b.low:.1f}, {b.high:.1f}]", "95% bootstrap CI"])
    rows += [[ref.label, ref.text, ref.source] for ref in rep.references]
    return "\n".join(lines + [_table(rows)])


def episodes_to_near_optimal(mean_steps: np.ndarray) -> int | None:
    """First episode (1-based) whose mean steps is <= NEAR_OPTIMAL x the optimum, or None."""
    hits = np.flatnonzero(mean_steps <= NEAR_OPTIMAL * OPTIMAL_STEPS)
    return int(hits[0]) + 1 if len(hits) else None


def dyna_report(rep: Reproduction, result: Any, extra: Sequence[str]) -> str:
    sweep = _load_sweep()
    records = [r for s in result.specs for r in sweep._read_metrics(s.out / "metrics.jsonl")]
    lines = [f"{rep.what}" + (f" (extra flags: {' '.join(extra)})" if extra else "")]
    rows = [["planning steps", "ours: episodes to near-optimal", "book", "ours: runs",
             "ours: steps in episode 2 / last"]]
    by_n: dict[int, list[list[int]]] = {}
    for r in records:
        n, lengths = r.get("planning_steps"), r.get("steps_per_episode")
        if isinstance(n, int) and isinstance(lengths, list):  # other lines are not ours
            by_n.setdefault(n, []).append(lengths)
    refs = {ref.label: ref for ref in rep.references}
    for n in sorted(by_n):
        mean = np.mean(np.array(by_n[n], dtype=float), axis=0)
        first = episodes_to_near_optimal(mean)
        ref = refs.get(f"n={n}")
        rows.append([f"n={n}", "never" if first is None else str(first),
                     ref.text if ref else "-", str(len(by_n[n])),
                     f"{mean[min(1, len(mean) - 1)]:.1f} / {mean[-1]:.1f}"])
    if not by_n:
        return "\n".join(lines + ["no finished runs yet"])
    lines.append(_table(rows))
    lines.append(f"near-optimal: mean steps per episode <= {NEAR_OPTIMAL} x {OPTIMAL_STEPS}; "
                 "book: Sutton & Barto 2018, Example 8.1")
    for s in result.specs:
        fig = s.out / "plots" / "fig8_2_steps_per_episode.png"
        if fig.exists():
            lines.append(f"figure: {fig}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reproduce.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(REPRODUCTIONS), help="which reproduction")
    p.add_argument("--out", type=Path, default=Path("runs") / "reproduce",
                   help="parent directory; runs go to <out>/<name>/ (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="override the reproduction's seeds")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default: 1)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes or a Ray cluster (default: local)")
    p.add_argument("--address", default=None, help="Ray cluster address")
    p.add_argument("--gather-only", action="store_true",
                   help="run nothing; report on the runs that exist")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run or read the reproduction and print the comparison; 0 if every run finished."""
    sweep = _load_sweep()
    own, extra = sweep.split_argv(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    ns = parser.parse_args(own)
    rep = REPRODUCTIONS[ns.name]
    seeds = tuple(ns.seeds) if ns.seeds else rep.seeds
    if ns.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {ns.jobs}")
    if len(set(seeds)) != len(seeds):
        parser.error(f"--seeds repeats a seed: {list(seeds)}")
    hlines = None if ns.name == "dyna-maze" else {f"{r.label} {r.text}": r.value
                                                   for r in rep.references}
    try:
        result = sweep.run_sweep(
            HERE.parent / rep.script, seeds, [], [*rep.args, *extra], ns.out / ns.name,
            jobs=ns.jobs, backend=ns.backend, address=ns.address, last=rep.last,
            execute=not ns.gather_only, hlines=hlines, x_key="env_steps", y_key="return")
    except sweep.SweepError as e:
        parser.error(str(e))
    report = dyna_report if ns.name == "dyna-maze" else pets_report
    print(report(rep, result, extra))
    if result.plot:
        print(f"plot: {result.plot}")
    unfinished = [r["run"] for r in result.rows if r["status"] != "done"]
    if unfinished:
        print(f"unfinished: {', '.join(unfinished)} (rerun to continue them)")
    return 1 if result.failed or unfinished else 0


if __name__ == "__main__":
    sys.exit(main())
